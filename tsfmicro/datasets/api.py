"""The public entry points: datasets and protocols by name (composite included), loading."""

from __future__ import annotations

import os
from collections.abc import Mapping

from tsfmicro.datasets import composite, cross
from tsfmicro.datasets.base import Policies, Protocol, SampleTable
from tsfmicro.datasets.registry import ADAPTERS, get_adapter
from tsfmicro.errors import DataError

PathLike = str | os.PathLike[str]


def list_datasets() -> tuple[str, ...]:
    """Names load_dataset accepts."""
    return (*ADAPTERS, composite.NAME)


def list_protocols(dataset: str) -> tuple[Protocol, ...]:
    """The protocols of a dataset, the default first."""
    if dataset == composite.NAME:
        return (composite.PROTOCOL, composite.MEGC2019_PROTOCOL, cross.cross_protocol(cross.LODO))
    adapter = get_adapter(dataset)
    default = adapter.protocol()
    return (default, *(p for p in adapter.protocols if p is not default))


def get_protocol(dataset: str, name: str | None = None) -> Protocol:
    """A protocol by dataset and name ("5class"), or the dataset's default."""
    if dataset == composite.NAME and cross.is_cross(name):
        return cross.cross_protocol(str(name))  # tsfmicro.datasets.cross: lodo, A-to-B
    if dataset == composite.NAME:
        return composite.composite_protocol(name)
    return get_adapter(dataset).protocol(name)


def load_dataset(
    name: str,
    root: PathLike | Mapping[str, PathLike] | None,
    protocol: str | None = None,
    annotation: PathLike | Mapping[str, PathLike] | None = None,
    layout: str | Mapping[str, str] | None = None,
    policies: Policies | None = None,
    require_frames: bool = True,
) -> SampleTable:
    """Load a dataset copy as a SampleTable (see DatasetAdapter.load).

    For "composite", `root` is a folder with one sub-folder per part (casme2/, samm/) or a
    {part: folder} mapping, and `annotation` / `layout` are {part: value} mappings.
    """
    if name != composite.NAME:
        if isinstance(root, Mapping) or isinstance(annotation, Mapping):
            raise DataError(f"{name}: root and annotation are single paths, not mappings")
        if isinstance(layout, Mapping):
            raise DataError(f"{name}: layout is a single name, not a mapping")
        return get_adapter(name).load(root, protocol, annotation, layout, policies, require_frames)
    get_protocol(name, protocol)
    if cross.is_cross(protocol):
        where = "" if root is None or isinstance(root, Mapping) else str(root)
        parts = _composite_parts(root, annotation, layout)
        return cross.load_cross(str(protocol), parts, policies, require_frames, where)
    return composite.load_composite(
        _composite_parts(root, annotation, layout), policies, require_frames, protocol
    )


def _composite_parts(
    root: PathLike | Mapping[str, PathLike] | None,
    annotation: PathLike | Mapping[str, PathLike] | None,
    layout: str | Mapping[str, str] | None,
) -> dict[str, composite.PartSource]:
    if annotation is not None and not isinstance(annotation, Mapping):
        raise DataError("composite: annotation must map each part to its file")
    if layout is not None and not isinstance(layout, Mapping):
        raise DataError("composite: layout must map parts to layout names")
    annotations = dict(annotation or {})
    layouts = dict(layout or {})
    if root is None:
        roots: dict[str, PathLike | None] = {}
    elif isinstance(root, Mapping):
        roots = dict(root)
    else:
        roots = {k: v.root for k, v in composite.parts_in_folder(root).items()}
    names = list(dict.fromkeys([*roots, *annotations]))
    return {
        n: composite.PartSource(roots.get(n), annotations.get(n), layouts.get(n)) for n in names
    }
