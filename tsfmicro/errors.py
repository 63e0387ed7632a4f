"""Errors the library raises for bad input.

Every one of them is meant to be read by a person: the message names the field,
file, row or tensor that is wrong and what was expected. They subclass
ValueError so callers that only know the standard library still catch them.
"""


class TsfmicroError(ValueError):
    """Base class: an error caused by input, not by a bug."""


class ConfigError(TsfmicroError):
    """A configuration field has a value the model or trainer cannot use."""


class InputError(TsfmicroError):
    """Tensors or arrays handed to the model or trainer have the wrong shape, type or values."""


class DataError(TsfmicroError):
    """A dataset on disk (spreadsheet, frames, cache) is missing something or malformed."""
