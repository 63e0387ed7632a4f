"""The single-dataset adapters by name."""

from __future__ import annotations

from tsfmicro.datasets import casme2, casme3, mmew, samm
from tsfmicro.datasets.adapter import DatasetAdapter
from tsfmicro.errors import DataError

ADAPTERS: dict[str, DatasetAdapter] = {
    a.name: a for a in (casme2.ADAPTER, samm.ADAPTER, casme3.ADAPTER, mmew.ADAPTER)
}


def get_adapter(name: str) -> DatasetAdapter:
    """The adapter of a single dataset (not composite)."""
    if name not in ADAPTERS:
        known = ", ".join([*ADAPTERS, "composite"])
        raise DataError(f"unknown dataset {name!r} (datasets: {known})")
    return ADAPTERS[name]
