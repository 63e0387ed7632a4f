"""Micro-expression dataset adapters: real annotation spreadsheets and frame folders as shipped.

    from tsfmicro.datasets import load_dataset
    table = load_dataset("casme2", "/data/CASME2", protocol="5class")
    table.samples        # one row per sample, columns SAMPLE_COLUMNS
    table.class_names    # fixed class order of the protocol
    table.report.issues  # every quirk met and the policy applied

See docs/datasets.md for layouts, protocols and quirk policies.
"""

from tsfmicro.datasets.api import get_protocol, list_datasets, list_protocols, load_dataset
from tsfmicro.datasets.base import (
    SAMPLE_COLUMNS,
    Issue,
    LoadReport,
    MissingFrame,
    MissingFramesError,
    Policies,
    Protocol,
    SampleTable,
    UnreadableFrame,
    frame_path,
)
from tsfmicro.datasets.composite import PartSource, load_composite
from tsfmicro.datasets.inspection import inspect_dataset
from tsfmicro.datasets.registry import get_adapter
from tsfmicro.fileio import load_frame, read_frame

__all__ = [
    "SAMPLE_COLUMNS",
    "Issue",
    "LoadReport",
    "MissingFrame",
    "MissingFramesError",
    "PartSource",
    "Policies",
    "Protocol",
    "SampleTable",
    "UnreadableFrame",
    "frame_path",
    "get_adapter",
    "get_protocol",
    "inspect_dataset",
    "list_datasets",
    "list_protocols",
    "load_composite",
    "load_dataset",
    "load_frame",
    "read_frame",
]
