"""Validating a dataset copy: load leniently, decode the frames used, say what is wrong."""

from __future__ import annotations

import os
from collections.abc import Mapping

from tsfmicro.datasets.api import load_dataset
from tsfmicro.datasets.base import Policies, SampleTable, UnreadableFrame
from tsfmicro.errors import DataError
from tsfmicro.faces.config import FaceCropConfig
from tsfmicro.faces.detect import frame_size_problem
from tsfmicro.fileio import load_frame

PathLike = str | os.PathLike[str]


def inspect_dataset(
    name: str,
    root: PathLike | Mapping[str, PathLike] | None,
    protocol: str | None = None,
    annotation: PathLike | Mapping[str, PathLike] | None = None,
    layout: str | Mapping[str, str] | None = None,
    policies: Policies | None = None,
    decode: bool = True,
) -> SampleTable:
    """Load a copy without failing on missing frames, and decode every onset and apex frame.

    Bad input that makes the copy unreadable (missing sheet or column, unknown label) still
    raises DataError. Everything else lands in the report; see `unusable_reasons`.
    """
    policies = policies or Policies()
    table = load_dataset(name, root, protocol, annotation, layout, policies, require_frames=False)
    if decode:
        decode_frames(table, policies)
    return table


def decode_frames(
    table: SampleTable, policies: Policies, face_config: FaceCropConfig | None = None
) -> None:
    """Decode each sample's onset and apex frame once; record failures, grayscale files and
    frames too small for face detection under `face_config` (default: the default crops)."""
    report = table.report
    face_config = face_config or FaceCropConfig()
    seen: set[str] = set()
    for sample in table.samples[["key", "onset_path", "apex_path"]].itertuples(index=False):
        for path in (sample.onset_path, sample.apex_path):
            if not path or path in seen:
                continue
            seen.add(path)
            try:
                image, was_gray = load_frame(path)
            except DataError as exc:
                report.unreadable_frames.append(UnreadableFrame(sample.key, path, str(exc)))
                continue
            report.frames_decoded += 1
            problem = frame_size_problem(image.shape, face_config)
            if problem is not None:
                report.small_frames.append(UnreadableFrame(sample.key, path, problem))
            if was_gray:
                report.grayscale_frames += 1
                if policies.grayscale == "error":
                    report.unreadable_frames.append(
                        UnreadableFrame(sample.key, path, "grayscale (Policies.grayscale='error')")
                    )


def published_check(table: SampleTable) -> dict[str, object] | None:
    """This copy's counts against the protocol's published ones (None when it declares none):
    samples, subjects and per class, and whether all of them match."""
    published = table.protocol.published
    if published is None:
        return None
    samples = table.samples
    found = {
        "samples": len(samples),
        "subjects": int(samples["subject"].nunique()),
        "per_class": table.class_counts(),
    }
    expected = {
        "samples": published.samples,
        "subjects": published.subjects,
        "per_class": dict(published.per_class),
    }
    return {"expected": expected, "found": found, "matches": found == expected}


def unusable_reasons(table: SampleTable) -> list[str]:
    """Why a copy cannot be trained on; empty when it can."""
    report = table.report
    reasons = []
    if len(table) == 0:
        reasons.append("no samples left after the protocol and policies")
    if report.missing_frames:
        rows = len({(m.file, m.row) for m in report.missing_frames})
        reasons.append(f"{len(report.missing_frames)} missing frame(s) in {rows} row(s)")
    if report.unreadable_frames:
        reasons.append(f"{len(report.unreadable_frames)} unreadable frame(s)")
    if report.small_frames:
        reasons.append(
            f"{len(report.small_frames)} frame(s) too small for face detection, "
            f"first {report.small_frames[0].path}"
        )
    return reasons
