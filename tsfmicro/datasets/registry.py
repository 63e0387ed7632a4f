"""The single-dataset adapters by name."""

from __future__ import annotations

from tsfmicro.datasets import casme2, casme3, mmew, samm, smic
from tsfmicro.datasets.adapter import DatasetAdapter
from tsfmicro.datasets.smic import SmicAdapter
from tsfmicro.errors import DataError

# SMIC has no spreadsheet: its adapter reads the clips from the folders (same interface).
Adapter = DatasetAdapter | SmicAdapter

ADAPTERS: dict[str, Adapter] = {
    a.name: a for a in (casme2.ADAPTER, samm.ADAPTER, casme3.ADAPTER, mmew.ADAPTER, smic.ADAPTER)
}


def get_adapter(name: str) -> Adapter:
    """The adapter of a single dataset (not composite)."""
    if name not in ADAPTERS:
        known = ", ".join([*ADAPTERS, "composite"])
        raise DataError(f"unknown dataset {name!r} (datasets: {known})")
    return ADAPTERS[name]
