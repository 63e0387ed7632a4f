"""From a record table to the sample table: labels, quirk policies, keys, frames.

The steps, in order: map each row's emotion through the protocol (unknown labels are
errors, dropped ones are counted); read the onset and form the key; check the label's
spelling; apply the offset and apex policies; apply the duplicate-key policy; resolve
frames and record every missing one; settle apexes that wait for frames (max_difference).
Errors found in rows are collected and raised together, so one run shows them all."""

from __future__ import annotations

import typing
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from tsfmicro.datasets.base import (
    SAMPLE_COLUMNS,
    Issue,
    LoadReport,
    MissingFrame,
    Policies,
    Protocol,
    as_int,
    normalise_label,
)
from tsfmicro.datasets.frames import FrameFinder
from tsfmicro.errors import DataError
from tsfmicro.fileio import load_frame

# How many row errors one DataError lists before "... and N more".
_ERROR_LINES = 20


class SampleSource(typing.Protocol):
    """What building samples needs to know of the dataset the rows come from.

    `tsfmicro.datasets.adapter.DatasetAdapter` is the one implementation; it is named here
    only by this interface, so that the adapter can import this module and not the reverse.
    """

    @property
    def name(self) -> str:
        """Registry name: the `dataset` column and the key prefix."""
        ...

    @property
    def key_with_onset(self) -> bool:
        """Whether the onset is part of the sample key ((subject, clip) is not unique)."""
        ...

    def header(self, field: str) -> str:
        """The spreadsheet header of a record field, for messages."""
        ...

    def spelling(self, emotion: str) -> str | None:
        """How the source spells a normalised label, None when it has no fixed style."""
        ...


class _Drop(Exception):
    """A policy removed the row (already logged)."""


class _Reject(Exception):
    """The row is an error in one field; file and row are added when it is reported."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name


@dataclass
class _Sample:
    """A row on its way into the table."""

    row: int
    subject: str
    clip: str
    emotion: str
    label: int
    onset: int
    apex: int | None  # None while waiting for max_difference
    offset: int
    action_units: str
    key: str
    quirks: list[str] = field(default_factory=list)
    pending: tuple[str, str] | None = None  # (issue kind, detail) for max_difference
    clip_dir: str = ""
    frame_template: str = ""
    onset_path: str = ""
    apex_path: str = ""


@dataclass
class _Context:
    """What every step needs: where issues go, and the file and row they concern."""

    adapter: SampleSource
    file: str
    policies: Policies
    report: LoadReport
    errors: list[str] = field(default_factory=list)

    def note(self, sample: _Sample, kind: str, detail: str, action: str) -> None:
        """Record a quirk of a sample's row and the action taken."""
        self.report.add(Issue(kind, self.file, sample.row, sample.key, detail, action))
        sample.quirks.append(kind)

    def error(self, row: int, field_name: str, message: str) -> None:
        header = self.adapter.header(field_name)
        self.errors.append(f"{self.file}, row {row}, column {header!r}: {message}")

    def raise_errors(self) -> None:
        if not self.errors:
            return
        if len(self.errors) == 1:
            raise DataError(self.errors[0])
        lines = self.errors[:_ERROR_LINES]
        if len(self.errors) > _ERROR_LINES:
            lines.append(f"... and {len(self.errors) - _ERROR_LINES} more")
        raise DataError("\n  ".join([f"{len(self.errors)} bad rows in {self.file}:", *lines]))


def build_samples(
    adapter: SampleSource,
    records: pd.DataFrame,
    annotation: Path,
    protocol: Protocol,
    policies: Policies,
    finder: FrameFinder | None,
    report: LoadReport,
) -> pd.DataFrame:
    """Turn a record table into the sample table, filling `report` on the way."""
    ctx = _Context(adapter=adapter, file=str(annotation), policies=policies, report=report)
    dropped: Counter[str] = Counter()
    samples = []
    for rec in records.to_dict("records"):
        sample = _parse_row(ctx, protocol, rec, dropped)
        if sample is not None:
            samples.append(sample)
    ctx.raise_errors()
    samples = _apply_duplicate_policy(ctx, samples)
    ctx.raise_errors()
    report.dropped_by_protocol = dict(dropped)
    if finder is not None:
        for sample in samples:
            _resolve_onset(ctx, finder, sample)
    for sample in samples:
        if sample.pending is not None:
            _settle_max_difference(ctx, finder, sample)
    if finder is not None:
        for sample in samples:
            _resolve_apex(ctx, finder, sample)
        report.missing_frames.sort(key=lambda m: (m.row, m.which != "onset"))
    report.issues.sort(key=lambda issue: issue.row)
    return _to_frame(adapter.name, protocol, samples)


def _parse_row(
    ctx: _Context, protocol: Protocol, rec: dict, dropped: Counter[str]
) -> _Sample | None:
    row, subject, clip = rec["source_row"], rec["subject"], rec["clip"]
    if not subject and not clip:
        ctx.report.add(
            Issue(
                "non_sample_row",
                ctx.file,
                row,
                "-",
                "Subject and Filename are blank",
                "row skipped",
            )
        )
        return None
    if not subject or not clip:
        ctx.error(row, "subject" if not subject else "clip", "blank")
        return None
    raw_label = rec["emotion"]
    if raw_label is None:
        ctx.error(row, "emotion", "emotion label is blank")
        return None
    emotion = normalise_label(raw_label)
    try:
        label = protocol.label_of(emotion)
    except KeyError:
        known = ", ".join(sorted(protocol.emotions))
        ctx.error(
            row,
            "emotion",
            f"unknown emotion label {raw_label!r} (protocol {protocol.id} knows: {known})",
        )
        return None
    if label is None:
        dropped[emotion] += 1
        return None
    onset = as_int(rec["onset"])
    if onset is None:
        ctx.error(row, "onset", f"onset {rec['onset']!r} is not a frame number")
        return None
    key = f"{ctx.adapter.name}/{subject}/{clip}"
    sample = _Sample(
        row=row,
        subject=subject,
        clip=clip,
        emotion=emotion,
        label=label,
        key=f"{key}/{onset}" if ctx.adapter.key_with_onset else key,
        onset=onset,
        apex=None,
        offset=onset,
        action_units=_text(rec.get("action_units")),
    )
    try:
        _check_spelling(ctx, sample, raw_label)
        apex = as_int(rec["apex"])
        sample.offset = _fixed_offset(ctx, sample, apex, rec["offset"])
        sample.apex = _fixed_apex(ctx, sample, apex, rec["apex"])
    except _Reject as exc:
        ctx.error(row, exc.field_name, str(exc))
        return None
    except _Drop:
        return None
    return sample


def _check_spelling(ctx: _Context, sample: _Sample, raw_label: object) -> None:
    expected = ctx.adapter.spelling(sample.emotion)
    if expected is None or str(raw_label) == expected:
        return
    if ctx.policies.label_spelling == "error":
        raise _Reject(
            "emotion",
            f"label {raw_label!r} is not spelled {expected!r} (Policies.label_spelling='error')",
        )
    ctx.note(
        sample,
        "label_spelling",
        f"label {raw_label!r} differs from {expected!r} in case or spaces",
        f"read as {sample.emotion!r}",
    )


def _fixed_offset(ctx: _Context, sample: _Sample, apex: int | None, raw: object) -> int:
    onset = sample.onset
    offset = as_int(raw)
    if offset is not None and offset > 0 and offset >= onset:
        return offset
    if offset is None:
        detail = f"offset {raw!r} is not a frame number"
    elif offset == 0:
        detail = "offset is 0"
    else:
        detail = f"offset {offset} is before onset {onset}"
    policy = ctx.policies.bad_offset
    if policy == "error":
        raise _Reject("offset", f"{detail} (Policies.bad_offset='error')")
    if policy == "apex" and apex is not None and apex >= onset:
        ctx.note(sample, "bad_offset", detail, f"offset set to the apex, {apex}")
        return apex
    reason = "row dropped" if policy == "drop" else "no usable apex to end the clip at; row dropped"
    ctx.note(sample, "bad_offset", detail, reason)
    raise _Drop


def _fixed_apex(ctx: _Context, sample: _Sample, apex: int | None, raw: object) -> int | None:
    onset, offset = sample.onset, sample.offset
    if apex is None:
        detail = "apex is blank" if raw is None else f"apex {raw!r} is not a frame number"
        apex = _repair(ctx, sample, "missing_apex", ctx.policies.missing_apex, detail, None)
    elif apex < onset or apex > offset:
        detail = f"apex {apex} is outside onset..offset {onset}..{offset}"
        apex = _repair(
            ctx, sample, "apex_out_of_range", ctx.policies.apex_out_of_range, detail, apex
        )
    if apex is not None and apex == onset:
        apex = _repair(
            ctx,
            sample,
            "apex_equals_onset",
            ctx.policies.apex_equals_onset,
            f"apex {apex} equals onset",
            apex,
        )
    return apex


def _repair(
    ctx: _Context, sample: _Sample, kind: str, policy: str, detail: str, apex: int | None
) -> int | None:
    """Apply one apex policy; returns the new apex, None when it waits for frames."""
    onset, offset = sample.onset, sample.offset
    if policy == "error":
        raise _Reject("apex", f"{detail} (Policies.{kind}='error')")
    if policy == "drop":
        ctx.note(sample, kind, detail, "row dropped")
        raise _Drop
    if policy == "keep":
        ctx.note(sample, kind, detail, "kept as annotated")
        return apex
    if policy == "clamp" and apex is not None:
        clamped = min(max(apex, onset), offset)
        ctx.note(sample, kind, detail, f"apex clamped to {clamped}")
        return clamped
    if policy == "max_difference":
        sample.pending = (kind, detail)
        return None
    middle = (onset + offset) // 2
    ctx.note(sample, kind, detail, f"apex set to the middle frame {middle}")
    return middle


def _apply_duplicate_policy(ctx: _Context, samples: list[_Sample]) -> list[_Sample]:
    first: dict[str, _Sample] = {}
    repeated: set[str] = set()
    for sample in samples:
        if sample.key in first:
            repeated.add(sample.key)
        else:
            first[sample.key] = sample
    if not repeated:
        return samples
    policy = ctx.policies.duplicate_key
    kept = []
    for sample in samples:
        if sample.key not in repeated:
            kept.append(sample)
            continue
        original = first[sample.key]
        if policy == "error":
            if sample is not original:
                ctx.error(
                    sample.row,
                    "clip",
                    f"sample {sample.key} repeats row {original.row} "
                    "(Policies.duplicate_key='error')",
                )
        elif policy == "drop_all":
            ctx.note(
                sample,
                "duplicate_key",
                f"key {sample.key} appears more than once",
                "row dropped",
            )
        elif sample is original:
            kept.append(sample)
        else:
            ctx.note(
                sample,
                "duplicate_key",
                f"key repeats row {original.row}",
                f"row dropped, row {original.row} kept",
            )
    return kept


def _resolve_onset(ctx: _Context, finder: FrameFinder, sample: _Sample) -> None:
    """Find the clip folder, the frame name in use, and the onset frame."""
    clip_dir = finder.clip_dir(sample.subject, sample.clip, sample.emotion)
    onset_path, index = finder.find(clip_dir, sample.subject, sample.onset)
    if onset_path is None and sample.apex is not None:
        _, index = finder.find(clip_dir, sample.subject, sample.apex)
    sample.clip_dir = str(clip_dir)
    sample.frame_template = finder.template(sample.subject, index)
    if index > 0:
        ctx.note(
            sample,
            "frame_naming",
            f"frames named like {sample.frame_template!r}",
            f"accepted (Policies.frame_naming={ctx.policies.frame_naming!r})",
        )
    if onset_path is None:
        _missing(ctx, sample, "onset", sample.onset)
    else:
        sample.onset_path = str(onset_path)


def _resolve_apex(ctx: _Context, finder: FrameFinder, sample: _Sample) -> None:
    path = Path(sample.clip_dir) / sample.frame_template.format(n=sample.apex)
    if path.is_file():
        sample.apex_path = str(path)
        return
    found, _ = finder.find(Path(sample.clip_dir), sample.subject, sample.apex)
    if found is None:
        _missing(ctx, sample, "apex", sample.apex)
    else:
        sample.apex_path = str(found)


def _missing(ctx: _Context, sample: _Sample, which: str, frame: int) -> None:
    path = Path(sample.clip_dir) / sample.frame_template.format(n=frame)
    ctx.report.missing_frames.append(
        MissingFrame(ctx.file, sample.row, sample.key, which, frame, str(path))
    )


def _settle_max_difference(ctx: _Context, finder: FrameFinder | None, sample: _Sample) -> None:
    """Set a pending apex to the frame most different from onset, or middle without frames."""
    kind, detail = sample.pending
    sample.pending = None
    reason = "the clip's frames are not available"
    if finder is not None and sample.onset_path:
        try:
            sample.apex = largest_difference_frame(
                Path(sample.clip_dir), sample.frame_template, sample.onset, sample.offset
            )
            ctx.note(
                sample,
                kind,
                detail,
                f"apex set to the frame of largest difference from onset, {sample.apex}",
            )
            return
        except DataError as exc:
            reason = str(exc)
    sample.apex = (sample.onset + sample.offset) // 2
    ctx.note(
        sample,
        kind,
        detail,
        f"max_difference impossible ({reason}); apex set to the middle frame {sample.apex}",
    )


def largest_difference_frame(clip_dir: Path, template: str, onset: int, offset: int) -> int:
    """The frame in onset..offset whose mean absolute gray difference from onset is largest.

    Frames missing on disk are skipped; raises DataError if the onset frame cannot be read.
    """
    reference = _gray(clip_dir / template.format(n=onset))
    best, best_score = onset, -1.0
    for n in range(onset + 1, offset + 1):
        path = clip_dir / template.format(n=n)
        if not path.is_file():
            continue
        image = _gray(path)
        if image.shape != reference.shape:
            raise DataError(f"frame {path} has size {image.shape}, onset frame {reference.shape}")
        score = float(np.abs(image - reference).mean())
        if score > best_score:
            best, best_score = n, score
    return best


def _gray(path: Path) -> np.ndarray:
    image, _ = load_frame(path)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _to_frame(dataset: str, protocol: Protocol, samples: list[_Sample]) -> pd.DataFrame:
    names = protocol.class_names
    rows = [
        {
            "dataset": dataset,
            "subject": s.subject,
            "clip": s.clip,
            "onset": s.onset,
            "apex": s.apex,
            "offset": s.offset,
            "emotion": s.emotion,
            "label": s.label,
            "label_name": names[s.label],
            "key": s.key,
            "source_row": s.row,
            "onset_path": s.onset_path,
            "apex_path": s.apex_path,
            "clip_dir": s.clip_dir,
            "frame_template": s.frame_template,
            "action_units": s.action_units,
            "quirks": ",".join(s.quirks),
        }
        for s in samples
    ]
    frame = pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
    int_columns = ["onset", "apex", "offset", "label", "source_row"]
    frame[int_columns] = frame[int_columns].astype("int64")
    return frame
