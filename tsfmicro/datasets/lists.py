"""Published sample lists shipped as package data, and keeping a table to one of them.

A protocol whose selection cannot be derived from the annotation alone names a list
(`Protocol.sample_list`). The only one is `megc2019`: the MEGC 2019 composite (CASME II 145,
SAMM 133, SMIC-HS 164 samples), in `data/megc2019.csv` with its source in the file's header.
The CASME II part is why it ships: on the 2019-07-01 sheet the emotion mapping alone keeps 150
samples; the list leaves out sub04 EP12_01f, sub05 EP09_05f and three surprise clips of sub24.
"""

from __future__ import annotations

import functools
from importlib import resources

import pandas as pd

from tsfmicro.datasets.base import LoadReport, Protocol
from tsfmicro.errors import DataError

LISTS = {"megc2019": "megc2019.csv"}


@functools.cache
def sample_list(name: str) -> pd.DataFrame:
    """A shipped list: columns dataset, subject, clip, class (one row per sample)."""
    if name not in LISTS:
        raise DataError(f"unknown sample list {name!r} (lists: {', '.join(LISTS)})")
    with resources.files("tsfmicro.datasets").joinpath("data", LISTS[name]).open() as handle:
        table = pd.read_csv(handle, comment="#", dtype=str)
    return table


def list_classes(name: str, dataset: str) -> dict[tuple[str, str], str]:
    """{(subject folder, clip): class} of one dataset's part of a list."""
    rows = sample_list(name)
    rows = rows[rows["dataset"] == dataset]
    return dict(zip(zip(rows["subject"], rows["clip"], strict=True), rows["class"], strict=True))


def keep_listed(samples: pd.DataFrame, protocol: Protocol, report: LoadReport) -> pd.DataFrame:
    """The samples of `protocol.sample_list`; the rest are counted as dropped by the protocol
    (`<emotion> (not in the <list> list)`), listed samples absent from the copy go to
    `report.list_missing`. A listed sample whose class differs from the list's is an error
    naming it: the copy is not the one the list was made from."""
    name = protocol.sample_list
    if name is None:
        return samples
    listed = list_classes(name, protocol.dataset)
    pairs = list(zip(samples["subject"], samples["clip"], strict=True))
    keep = [pair in listed for pair in pairs]
    wrong = [
        f"{key} (row {row}): {label!r} here, {listed[pair]!r} in the {name} list"
        for pair, key, row, label, kept in zip(
            pairs, samples["key"], samples["source_row"], samples["label_name"], keep, strict=True
        )
        if kept and listed[pair] != label
    ]
    if wrong:
        shown = wrong[:20] + ([f"... and {len(wrong) - 20} more"] if len(wrong) > 20 else [])
        raise DataError(
            "\n  ".join(
                [f"{len(wrong)} sample(s) of {report.annotation} disagree with the {name} list:"]
                + shown
            )
        )
    for emotion in samples.loc[[not k for k in keep], "emotion"]:
        tag = f"{emotion} (not in the {name} list)"
        report.dropped_by_protocol[tag] = report.dropped_by_protocol.get(tag, 0) + 1
    found = set(pairs)
    report.list_missing = [
        f"{protocol.dataset}/{subject}/{clip}"
        for subject, clip in listed
        if (subject, clip) not in found
    ]
    kept = samples[keep].reset_index(drop=True)
    keys = set(kept["key"])
    report.missing_frames = [m for m in report.missing_frames if m.key in keys]
    return kept
