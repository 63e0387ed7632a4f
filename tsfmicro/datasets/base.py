"""Types shared by every dataset adapter: protocols, quirk policies, reports and the sample table.

A loader turns one annotation spreadsheet (plus, usually, a folder of frames) into a
`SampleTable`: a pandas DataFrame with one row per sample and the columns in
`SAMPLE_COLUMNS`, the `Protocol` that gave each row its label, and a `LoadReport` that
lists every quirk met on the way and what was done about it.
"""

from __future__ import annotations

import logging
import numbers
import re
import typing
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

import pandas as pd

from tsfmicro.errors import ConfigError, DataError
from tsfmicro.fileio import GrayscalePolicy

logger = logging.getLogger("tsfmicro.datasets")

# Columns of the sample table, in order.
SAMPLE_COLUMNS: tuple[str, ...] = (
    "dataset",  # adapter name: casme2, samm, casme3, mmew
    "subject",  # on-disk subject folder (sub01, 006, spNO.1); composite: casme2/sub01
    "clip",  # the spreadsheet's Filename (EP02_01f, 006_1_2, a)
    "onset",  # frame numbers as in the file names; apex after the apex policies
    "apex",
    "offset",
    "emotion",  # source label, trimmed and lower-cased
    "label",  # class id in the protocol: index into Protocol.class_names
    "label_name",  # Protocol.class_names[label]
    "key",  # unique sample id: dataset/subject/clip (CAS(ME)3 adds /onset)
    "source_row",  # spreadsheet row number as Excel shows it
    "onset_path",  # absolute path of the onset frame; "" when unresolved or missing
    "apex_path",  # absolute path of the apex frame; "" when unresolved or missing
    "clip_dir",  # absolute folder of the clip's frames; "" when unresolved
    "frame_template",  # frame file name with an {n} field, e.g. reg_img{n}.jpg
    "action_units",  # the spreadsheet's AU string, "" when blank
    "quirks",  # comma-separated issue kinds applied to this row, "" when none
)

MissingApexPolicy = Literal["middle", "max_difference", "drop", "error"]
ApexRangePolicy = Literal["middle", "clamp", "max_difference", "keep", "drop", "error"]
ApexOnsetPolicy = Literal["keep", "middle", "max_difference", "drop", "error"]
OffsetPolicy = Literal["apex", "drop", "error"]
LabelSpellingPolicy = Literal["fold", "error"]
DuplicatePolicy = Literal["keep_first", "drop_all", "error"]
UnannotatedApexPolicy = Literal["middle", "max_difference"]
FrameNaming = Literal["auto", "padded", "unpadded"]


@dataclass(frozen=True)
class Policies:
    """What a loader does with each known annotation quirk. Every application is logged and
    recorded in the report; "error" turns the quirk into a DataError naming file and row.

    middle = (onset + offset) // 2; max_difference = the frame in onset..offset that differs
    most from the onset frame (reads the clip, so it needs frames; without them it falls back
    to middle, and says so); clamp = nearest of onset/offset.
    """

    # Apex blank or not a frame number (CASME II sub04 EP12_01f has "/").
    missing_apex: MissingApexPolicy = "middle"
    # Apex before onset or after offset (SAMM 028_4_1, 032_3_1; a few CAS(ME)3 rows).
    apex_out_of_range: ApexRangePolicy = "middle"
    # Apex equal to onset, i.e. an all-zero onset/apex difference (CASME II sub05 EP09_05f,
    # dozens of CAS(ME)3 rows). Kept by default: that is what the published protocols used.
    apex_equals_onset: ApexOnsetPolicy = "keep"
    # Offset blank, 0 or before onset (a few CAS(ME)3 rows): "apex" ends the clip at the apex.
    bad_offset: OffsetPolicy = "apex"
    # Label that matches a known one only after trimming/case-folding (CAS(ME)3 "Others").
    label_spelling: LabelSpellingPolicy = "fold"
    # Two rows with the same sample key: keep the first, drop both, or fail.
    duplicate_key: DuplicatePolicy = "keep_first"
    # SAMM frame numbers zero-padded to 5 digits (as released) or not; auto accepts both.
    frame_naming: FrameNaming = "auto"
    # One-channel frames (SAMM): replicate to RGB, or fail.
    grayscale: GrayscalePolicy = "to_rgb"
    # Datasets without any apex annotation (SMIC): the apex every clip gets.
    unannotated_apex: UnannotatedApexPolicy = "middle"

    def __post_init__(self) -> None:
        for name, allowed in self.options().items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(
                    f"Policies.{name}={value!r}: expected one of {', '.join(allowed)}"
                )

    @classmethod
    def options(cls) -> dict[str, tuple[str, ...]]:
        """Every policy field with the values it accepts, the default first."""
        hints = typing.get_type_hints(cls)
        return {f.name: typing.get_args(hints[f.name]) for f in fields(cls)}

    @classmethod
    def from_dict(cls, values: Mapping[str, str]) -> Policies:
        """Policies with some fields set by name (e.g. from `--policy FIELD=VALUE`); an
        unknown field is a ConfigError that lists every field and its values."""
        options = cls.options()
        unknown = [name for name in values if name not in options]
        if unknown:
            listed = "; ".join(f"{name}: {', '.join(allowed)}" for name, allowed in options.items())
            raise ConfigError(f"unknown quirk policy {unknown[0]!r} (policies: {listed})")
        return cls(**values)


@dataclass(frozen=True)
class Published:
    """The counts a correct copy gives under a protocol, as published (checked by inspection)."""

    samples: int
    subjects: int
    per_class: tuple[tuple[str, int], ...]  # in the protocol's class order

    def line(self) -> str:
        classes = ", ".join(f"{name} {n}" for name, n in self.per_class)
        return f"{self.samples} samples, {self.subjects} subjects ({classes})"


@dataclass(frozen=True)
class Protocol:
    """A labelling of one dataset: which source emotions form which class, in a fixed order.

    `classes` pairs each class name with the source emotions (lower case) it takes; the class
    id is the position in that tuple. Emotions in `dropped` are removed by the protocol, not
    errors; any other emotion not in a class is an unknown label. A protocol with a
    `sample_list` (e.g. "megc2019") keeps only the samples of that published list
    (tsfmicro.datasets.lists); `published` holds the counts a correct copy gives.
    """

    dataset: str
    name: str
    classes: tuple[tuple[str, tuple[str, ...]], ...]
    dropped: frozenset[str] = frozenset()
    description: str = ""
    sample_list: str | None = None
    published: Published | None = None

    @property
    def id(self) -> str:
        return f"{self.dataset}-{self.name}"

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.classes)

    @property
    def emotions(self) -> frozenset[str]:
        """Every source emotion this protocol knows, kept or dropped."""
        kept = {emotion for _, group in self.classes for emotion in group}
        return frozenset(kept) | self.dropped

    def label_of(self, emotion: str) -> int | None:
        """Class id of a normalised emotion, None if the protocol drops it.

        Raises KeyError for an emotion the protocol does not know.
        """
        for label, (_, group) in enumerate(self.classes):
            if emotion in group:
                return label
        if emotion in self.dropped:
            return None
        raise KeyError(emotion)


def make_protocol(
    dataset: str,
    name: str,
    classes: Mapping[str, tuple[str, ...]],
    dropped: tuple[str, ...] = (),
    description: str = "",
    sample_list: str | None = None,
    published: tuple[int, int, tuple[int, ...]] | None = None,
) -> Protocol:
    """Build a Protocol from an ordered {class name: source emotions} mapping; `published` is
    (samples, subjects, per-class counts in class order)."""
    counts = None
    if published is not None:
        samples, subjects, per_class = published
        counts = Published(samples, subjects, tuple(zip(classes, per_class, strict=True)))
    return Protocol(
        dataset=dataset,
        name=name,
        classes=tuple((k, tuple(v)) for k, v in classes.items()),
        dropped=frozenset(dropped),
        description=description,
        sample_list=sample_list,
        published=counts,
    )


@dataclass(frozen=True)
class Issue:
    """One annotation quirk met in one row, and the policy's action."""

    kind: str  # a Policies field name, or non_sample_row
    file: str  # annotation spreadsheet
    row: int  # spreadsheet row number
    key: str  # sample key, or the clip when no key could be formed
    detail: str  # what was found
    action: str  # what was done

    def line(self) -> str:
        return f"{self.file} row {self.row} ({self.key}): {self.kind}: {self.detail}; {self.action}"


@dataclass(frozen=True)
class MissingFrame:
    """An onset or apex frame named by a row that is not on disk."""

    file: str
    row: int
    key: str
    which: Literal["onset", "apex"]
    frame: int
    path: str  # where the canonical file name would be

    def line(self) -> str:
        where = f"{self.file} row {self.row} ({self.key})"
        return f"{where}: {self.which} frame {self.frame} missing: {self.path}"


@dataclass(frozen=True)
class UnreadableFrame:
    """A frame file that exists but cannot be used (found by inspection): it cannot be decoded
    (LoadReport.unreadable_frames), or it is too small for face detection (small_frames)."""

    key: str
    path: str
    reason: str

    def line(self) -> str:
        return f"{self.key}: {self.path}: {self.reason}"


@dataclass
class LoadReport:
    """Everything a loader noticed. Filled while loading; read by `datasets inspect`."""

    dataset: str
    protocol: str
    annotation: str
    rows_read: int = 0
    frames_dir: str | None = None  # None: frames not resolved
    layout: str | None = None
    dropped_by_protocol: dict[str, int] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    missing_frames: list[MissingFrame] = field(default_factory=list)
    unreadable_frames: list[UnreadableFrame] = field(default_factory=list)
    small_frames: list[UnreadableFrame] = field(default_factory=list)  # set by inspection only
    frames_decoded: int = 0  # set by inspection only
    grayscale_frames: int = 0  # set by inspection only
    parts: list[LoadReport] = field(default_factory=list)  # composite only
    # Samples of the protocol's published list (Protocol.sample_list) not in this copy.
    list_missing: list[str] = field(default_factory=list)

    def add(self, issue: Issue) -> None:
        """Record an issue and log it, one line per affected row."""
        self.issues.append(issue)
        level = logging.INFO if issue.kind in _BENIGN_KINDS else logging.WARNING
        logger.log(level, issue.line())

    def issue_counts(self) -> dict[str, int]:
        return dict(Counter(issue.kind for issue in self.issues))


# Issues that change no number: logged at INFO so a large copy does not flood warnings.
_BENIGN_KINDS = frozenset({"label_spelling", "frame_naming", "unannotated_apex"})


class MissingFramesError(DataError):
    """Strict loading found rows whose onset or apex frame is missing; `report` lists all."""

    def __init__(self, message: str, report: LoadReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class SampleTable:
    """The result of loading: samples (one row each), the protocol, and the report."""

    samples: pd.DataFrame
    protocol: Protocol
    report: LoadReport

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.protocol.class_names

    def __len__(self) -> int:
        return len(self.samples)

    def frame_path(self, index: int, n: int) -> Path:
        """Path of frame n of the clip of the sample at row position `index`."""
        return frame_path(self.samples.iloc[index], n)

    def class_counts(self) -> dict[str, int]:
        counts = self.samples["label_name"].value_counts()
        return {name: int(counts.get(name, 0)) for name in self.class_names}


def frame_path(sample: Mapping[str, object], n: int) -> Path:
    """Path of frame n of a sample's clip (any frame, e.g. for jitter over onset..offset).

    `sample` is a row of the sample table (a Series or dict with clip_dir and
    frame_template). Does not check that the file exists.
    """
    clip_dir = str(sample["clip_dir"] or "")
    if not clip_dir:
        raise DataError(
            f"sample {sample['key']}: frames were not resolved (loaded without a dataset folder)"
        )
    return Path(clip_dir) / str(sample["frame_template"]).format(n=int(n))


def normalise_label(value: object) -> str:
    """Text compared loosely (labels, headers): trimmed, inner spaces collapsed, case-folded."""
    return re.sub(r"\s+", " ", str(value)).strip().casefold()


def as_int(value: object) -> int | None:
    """A cell as a whole number, or None when it is blank or not one ("/", "12a", 3.5)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return int(value) if float(value).is_integer() else None
    text = str(value).strip()
    return int(text) if text.isdigit() else None


def cell_text(value: object) -> str:
    """A cell as trimmed text; whole-number floats lose their ".0" (6.0 -> "6")."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()
