"""Cross-dataset protocols of the composite: folds by dataset instead of by subject.

Two kinds, both protocols of the `composite` dataset (its parts are found as usual: the
dataset-named sub-folders of one folder, or a {part: folder} mapping):

- `lodo`: leave one dataset out. Every part given is a fold: its model trains on all the other
  parts and is tested on the held-out part. The parts go through their `3class` protocols, as
  in the composite (negative, positive, surprise).
- `A-to-B`: train on dataset A, test on dataset B (`casme2-to-samm`); A may be several datasets
  joined with `+` (`casme2+mmew-to-samm`), each name may carry its protocol after a colon
  (`casme2:5class-to-samm:5class`; default `3class`, or the dataset's default protocol
  where it has no `3class`). The classes are those every named
  protocol shares, by name, in the test protocol's order; samples of the other classes are
  dropped and counted in the report. One fold: the test dataset.

The sample table carries a `fold` column (FOLD_COLUMN), the fold key: the held-out dataset of a
sample, or "" for a sample that is only trained on (A's samples in `A-to-B`). The training
engine groups by it (`tsfmicro.training.data.PairSet.folds`) instead of by subject; subjects
stay prefixed by the dataset (`samm/006`), so the subject-bootstrap intervals still resample
the test datasets' subjects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from tsfmicro.datasets import composite
from tsfmicro.datasets.adapter import missing_frames_message
from tsfmicro.datasets.base import (
    MissingFramesError,
    Policies,
    Protocol,
    SampleTable,
    make_protocol,
)
from tsfmicro.datasets.registry import ADAPTERS
from tsfmicro.errors import DataError

PathLike = str | os.PathLike[str]

LODO = "lodo"
ARROW = "-to-"
FOLD_COLUMN = "fold"  # the fold key column of a cross-dataset sample table
TRAIN_ONLY = ""  # the fold key of a sample that is never held out


# How `tsfmicro datasets list` describes the A-to-B family (one protocol per pair of datasets)
A_TO_B = (
    "A-to-B",
    "train on dataset A, test on dataset B (one fold: B), e.g. casme2-to-samm; A may join "
    "several (casme2+mmew-to-samm) and each may name its protocol (casme2:5class-to-samm:5class; "
    "default 3class); the classes are those the named protocols share by name (fewer than two "
    "shared is an error); fold key: the test dataset.",
)


def is_cross(protocol: str | None) -> bool:
    """Whether a composite protocol name is a cross-dataset one (`lodo`, `A-to-B`)."""
    return bool(protocol) and (protocol == LODO or ARROW in str(protocol))


@dataclass(frozen=True)
class CrossSpec:
    """A parsed cross-dataset protocol name: the (dataset, protocol) pairs to train on and the
    one to test on; both empty for `lodo` (every part given is a fold)."""

    name: str
    train: tuple[tuple[str, str], ...] = ()
    test: tuple[str, str] | None = None

    @property
    def lodo(self) -> bool:
        return self.test is None

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(d for d, _ in self.train) + ((self.test[0],) if self.test else ())


def parse(name: str) -> CrossSpec:
    """`lodo` or `A[:P][+A2[:P2]...]-to-B[:P]`; an unknown dataset or part protocol, a test
    dataset also trained on, or a part named twice is a DataError naming it."""
    if name == LODO:
        return CrossSpec(name)
    sides = name.split(ARROW)
    if len(sides) != 2 or not sides[0] or not sides[1] or "+" in sides[1]:
        raise DataError(
            f"composite protocol {name!r}: expected {LODO} or TRAIN-to-TEST, e.g. "
            "casme2-to-samm or casme2+mmew-to-samm (one test dataset)"
        )
    train = tuple(_part(name, text) for text in sides[0].split("+"))
    test = _part(name, sides[1])
    named = [d for d, _ in train] + [test[0]]
    twice = sorted({d for d in named if named.count(d) > 1})
    if twice:
        raise DataError(
            f"composite protocol {name!r} names {', '.join(twice)} more than once: the test "
            "dataset must not be trained on"
        )
    return CrossSpec(name, train, test)


def _part(name: str, text: str) -> tuple[str, str]:
    dataset, _, protocol = text.partition(":")
    if dataset not in ADAPTERS:
        raise DataError(
            f"composite protocol {name!r}: unknown dataset {dataset!r} "
            f"(datasets: {', '.join(ADAPTERS)})"
        )
    adapter = ADAPTERS[dataset]
    if not protocol:  # the composite's part protocol, else the dataset's default (SMIC's)
        names = {p.name for p in getattr(adapter, "protocols", ())}
        protocol = composite.PART_PROTOCOL if composite.PART_PROTOCOL in names else None
    try:
        return dataset, adapter.protocol(protocol).name
    except DataError as exc:
        raise DataError(f"composite protocol {name!r}: {exc}") from None


def shared_classes(name: str, protocols: Mapping[str, Protocol]) -> tuple[str, ...]:
    """The class names every protocol has, in the order of the last one (the test dataset's);
    a DataError naming the datasets and their classes when fewer than two are shared."""
    *_, last = protocols.values()
    shared = tuple(
        c for c in last.class_names if all(c in p.class_names for p in protocols.values())
    )
    if len(shared) < 2:
        listed = "; ".join(
            f"{dataset} {p.name}: {', '.join(p.class_names)}" for dataset, p in protocols.items()
        )
        found = f"share only {shared[0]!r}" if shared else "share no class"
        raise DataError(
            f"composite protocol {name!r}: {' and '.join(protocols)} {found} ({listed}); a "
            "cross-dataset protocol needs at least two classes with the same name in every "
            "dataset (their 3class protocols share negative, positive, surprise)"
        )
    return shared


def cross_protocol(name: str) -> Protocol:
    """The Protocol of a cross-dataset name: its classes (shared by the named datasets' part
    protocols; the composite's for `lodo`), with each class's source emotions pooled."""
    spec = parse(name)
    if spec.lodo:
        return make_protocol(
            composite.NAME,
            LODO,
            dict(composite.PROTOCOL.classes),
            dropped=tuple(sorted(composite.PROTOCOL.dropped)),
            description="leave one dataset out: each part given is held out in turn, trained "
            "on the other parts; every part through its 3class protocol (negative, positive, "
            "surprise); fold key: the dataset.",
        )
    parts = _part_protocols(spec)
    classes = shared_classes(name, parts)
    pooled = {
        c: tuple(sorted({e for p in parts.values() for e in dict(p.classes)[c]})) for c in classes
    }
    train = " + ".join(f"{d} {p}" for d, p in spec.train)
    return make_protocol(
        composite.NAME,
        name,
        pooled,
        dropped=tuple(
            sorted(
                set().union(*(p.emotions for p in parts.values()))
                - {e for group in pooled.values() for e in group}
            )
        ),
        description=f"train on {train}, test on {spec.test[0]} {spec.test[1]}; classes shared "
        "by name; fold key: the test dataset (one fold).",
    )


def _part_protocols(spec: CrossSpec) -> dict[str, Protocol]:
    parts = {d: ADAPTERS[d].protocol(p) for d, p in spec.train}
    assert spec.test is not None
    parts[spec.test[0]] = ADAPTERS[spec.test[0]].protocol(spec.test[1])
    return parts


def load_cross(
    name: str,
    parts: Mapping[str, composite.PartSource],
    policies: Policies | None = None,
    require_frames: bool = True,
    where: str = "",
) -> SampleTable:
    """The sample table of cross-dataset protocol `name` over the composite's `parts`, with
    the fold key column FOLD_COLUMN. `where` names the folder the parts came from, for the
    error about a missing part."""
    spec = parse(name)
    protocol = cross_protocol(name)
    source = f"composite {where}" if where else "composite"
    found = ", ".join(parts) or "none"
    if spec.lodo:
        if len(parts) < 2:
            raise DataError(
                f"{source}: protocol {LODO} holds out one dataset at a time and needs at least "
                f"two parts; found {found} (expected sub-folders named "
                f"{', '.join(composite.PARTS)})"
            )
        table = composite.load_composite(parts, policies, require_frames)
        samples = table.samples.assign(**{FOLD_COLUMN: table.samples["dataset"].astype(str)})
        report = table.report
        report.protocol = protocol.id
        return SampleTable(samples=samples, protocol=protocol, report=report)
    missing = [d for d in spec.datasets if d not in parts]
    if missing:
        raise DataError(
            f"{source}: protocol {name!r} needs the part(s) {', '.join(missing)}, which the "
            f"composite does not have (parts found: {found})"
        )
    frames, reports = [], []
    for dataset, part_protocol in (*spec.train, spec.test):
        loaded = composite.load_part(
            dataset, parts[dataset], part_protocol, policies, require_frames
        )
        kept = loaded.samples["label_name"].isin(protocol.class_names)
        for class_name, n in loaded.samples.loc[~kept, "label_name"].value_counts().items():
            loaded.report.dropped_by_protocol[f"{class_name} (not shared)"] = int(n)
        fold = dataset if dataset == spec.test[0] else TRAIN_ONLY
        frames.append(loaded.samples[kept].assign(**{FOLD_COLUMN: fold}))
        reports.append(loaded.report)
    samples = pd.concat(frames, ignore_index=True)
    samples["subject"] = samples["dataset"] + "/" + samples["subject"]
    samples["label"] = samples["label_name"].map(protocol.class_names.index).astype("int64")
    report = composite.pool_reports(reports, protocol)
    if require_frames and report.missing_frames:
        raise MissingFramesError(missing_frames_message(report), report)
    for dataset, _ in (*spec.train, spec.test):
        if not (samples["dataset"] == dataset).any():
            raise DataError(
                f"{source}: part {dataset} has no sample of the shared classes "
                f"({', '.join(protocol.class_names)}) under protocol {name!r}"
            )
    return SampleTable(samples=samples, protocol=protocol, report=report)


def fold_counts(samples: pd.DataFrame) -> dict[str, int]:
    """Samples per fold key of a cross-dataset table ("train only" for TRAIN_ONLY)."""
    keys = samples[FOLD_COLUMN].astype(str).replace(TRAIN_ONLY, "train only")
    return {str(k): int(v) for k, v in keys.value_counts(sort=False).sort_index().items()}
