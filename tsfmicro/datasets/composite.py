"""Composite protocols (MEGC 2019): negative / positive / surprise pooled over datasets.

Each part is loaded with its own protocol of the same class order, subjects are prefixed with
the dataset (`casme2/sub01`) so leave-one-subject-out runs over all subjects of all parts, and
the `dataset` column keeps the part for per-part metrics.

- `3class`: the parts given (a mapping, or the dataset-named sub-folders present in one
  folder), each through its `3class` protocol: CASME II (156), SAMM (133), SMIC-HS (164),
  CAS(ME)3, MMEW.
- `megc2019`: exactly the MEGC 2019 composite: CASME II 145, SAMM 133 and SMIC-HS 164 (442
  samples, 68 subjects), each part through its `megc2019` protocol, which keeps the samples of
  the shipped MEGC 2019 list (tsfmicro.datasets.lists) with the published emotion-to-class
  mapping. All three parts are required.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tsfmicro.datasets.adapter import missing_frames_message
from tsfmicro.datasets.base import (
    LoadReport,
    MissingFramesError,
    Policies,
    Protocol,
    SampleTable,
    make_protocol,
)
from tsfmicro.datasets.registry import ADAPTERS
from tsfmicro.errors import DataError

NAME = "composite"
PathLike = str | os.PathLike[str]

# Every dataset can be a part: each has a 3class protocol with the composite's class order.
PARTS = ADAPTERS
PART_PROTOCOL = "3class"
CLASS_NAMES = ("negative", "positive", "surprise")


def _pooled_emotions(class_name: str) -> tuple[str, ...]:
    """The source emotions that some part's 3class protocol puts in `class_name`."""
    emotions = set()
    for adapter in PARTS.values():
        emotions.update(dict(adapter.protocol(PART_PROTOCOL).classes)[class_name])
    return tuple(sorted(emotions))


PROTOCOL = make_protocol(
    NAME,
    "3class",
    {name: _pooled_emotions(name) for name in CLASS_NAMES},
    dropped=tuple(
        sorted(set().union(*(a.protocol(PART_PROTOCOL).dropped for a in PARTS.values())))
    ),
    description="negative / positive / surprise pooled over the parts given (MEGC 2019 style: "
    "CASME II, SAMM, SMIC-HS), each through its own 3class protocol; subjects prefixed by dataset.",
)

MEGC2019 = "megc2019"
MEGC2019_PARTS = ("casme2", "samm", "smic")
MEGC2019_PROTOCOL = make_protocol(
    NAME,
    MEGC2019,
    {
        name: tuple(
            sorted(
                {e for d in MEGC2019_PARTS for e in dict(PARTS[d].protocol(MEGC2019).classes)[name]}
            )
        )
        for name in CLASS_NAMES
    },
    dropped=tuple(
        sorted(set().union(*(PARTS[d].protocol(MEGC2019).dropped for d in MEGC2019_PARTS)))
    ),
    description="The MEGC 2019 composite exactly: CASME II 145 + SAMM 133 + SMIC-HS 164 "
    "samples of the shipped MEGC 2019 list, 3 classes, LOSO over all 68 subjects. "
    "442 samples, 68 subjects.",
    sample_list=MEGC2019,
    published=(442, 68, (250, 109, 83)),
)
PROTOCOLS = {PROTOCOL.name: PROTOCOL, MEGC2019: MEGC2019_PROTOCOL}


def composite_protocol(name: str | None = None) -> Protocol:
    """A composite protocol by name or id (3class by default)."""
    if name is None:
        return PROTOCOL
    for protocol in PROTOCOLS.values():
        if name in (protocol.name, protocol.id):
            return protocol
    raise DataError(
        f"composite has no protocol {name!r} (protocols: {', '.join(PROTOCOLS)}; cross-dataset: "
        "lodo, or A-to-B such as casme2-to-samm)"
    )


@dataclass(frozen=True)
class PartSource:
    """Where one part of the composite is: its folder, and optionally its sheet and layout."""

    root: PathLike | None = None
    annotation: PathLike | None = None
    layout: str | None = None


def parts_in_folder(root: PathLike) -> dict[str, PartSource]:
    """Parts found as sub-folders named after the datasets (casme2/, samm/, ...)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}")
    by_name = {p.name.casefold(): p for p in root.iterdir() if p.is_dir()}
    found = {name: PartSource(by_name[name]) for name in PARTS if name in by_name}
    if not found:
        raise DataError(
            f"{root}: no composite parts found (expected sub-folders named {', '.join(PARTS)})"
        )
    return found


def load_composite(
    parts: Mapping[str, PartSource | PathLike] | None = None,
    policies: Policies | None = None,
    require_frames: bool = True,
    protocol: str | None = None,
) -> SampleTable:
    """Load and pool the parts; see the module docstring.

    `parts` maps a dataset name to its PartSource (or just its folder). Missing frames of
    all parts are gathered before a strict load fails.
    """
    chosen = composite_protocol(protocol)
    part_protocol = PART_PROTOCOL if chosen is PROTOCOL else chosen.name
    if not parts:
        raise DataError(f"composite: no parts given (choose from {', '.join(PARTS)})")
    if chosen is MEGC2019_PROTOCOL:
        missing = [name for name in MEGC2019_PARTS if name not in parts]
        extra = [name for name in parts if name not in MEGC2019_PARTS]
        if missing or extra:
            problem = f"missing part {', '.join(missing)}" if missing else ""
            problem += ("; " if missing and extra else "") + (
                f"part {', '.join(extra)} is not in it" if extra else ""
            )
            raise DataError(
                f"composite megc2019: {problem} (the MEGC 2019 composite is "
                f"{', '.join(MEGC2019_PARTS)}: sub-folders of that name, or --part NAME=PATH)"
            )
    tables = []
    for name, source in parts.items():
        if name not in PARTS:
            raise DataError(f"composite: unknown part {name!r} (parts: {', '.join(PARTS)})")
        if not isinstance(source, PartSource):
            source = PartSource(root=source)
        tables.append(load_part(name, source, part_protocol, policies, require_frames))
    table = SampleTable(
        samples=_pool([t.samples for t in tables]),
        protocol=chosen,
        report=pool_reports([t.report for t in tables], chosen),
    )
    if require_frames and table.report.missing_frames:
        raise MissingFramesError(missing_frames_message(table.report), table.report)
    return table


def load_part(
    name: str,
    source: PartSource,
    protocol: str,
    policies: Policies | None,
    require_frames: bool,
) -> SampleTable:
    """One part of the composite under its own `protocol`, missing frames only reported (the
    caller pools them over the parts before a strict load fails)."""
    if require_frames and source.root is None:
        raise DataError(f"composite part {name}: no dataset folder given; frames are required")
    return PARTS[name].load(
        source.root,
        protocol=protocol,
        annotation=source.annotation,
        layout=source.layout,
        policies=policies,
        require_frames=False,
    )


def _pool(frames: list[pd.DataFrame]) -> pd.DataFrame:
    pooled = pd.concat(frames, ignore_index=True)
    pooled["subject"] = pooled["dataset"] + "/" + pooled["subject"]
    pooled["label"] = pooled["label_name"].map(PROTOCOL.class_names.index).astype("int64")
    return pooled


def pool_reports(reports: list[LoadReport], protocol: Protocol) -> LoadReport:
    """One load report of the composite under `protocol`, from its parts' reports (kept in
    `parts`); also the cross-dataset protocols' (tsfmicro.datasets.cross)."""
    frames_dirs = [r.frames_dir for r in reports if r.frames_dir]
    return LoadReport(
        dataset=NAME,
        protocol=protocol.id,
        annotation="; ".join(r.annotation for r in reports),
        rows_read=sum(r.rows_read for r in reports),
        frames_dir="; ".join(frames_dirs) if frames_dirs else None,
        layout="; ".join(f"{r.dataset}:{r.layout}" for r in reports if r.layout) or None,
        dropped_by_protocol={
            f"{r.dataset}/{emotion}": n
            for r in reports
            for emotion, n in r.dropped_by_protocol.items()
        },
        issues=[issue for r in reports for issue in r.issues],
        missing_frames=[m for r in reports for m in r.missing_frames],
        list_missing=[key for r in reports for key in r.list_missing],
        parts=reports,
    )
