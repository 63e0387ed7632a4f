"""The dataset adapter: everything that differs between datasets, as data, plus `load`.

Each dataset module (casme2, samm, casme3, mmew) defines one `DatasetAdapter`. Loading is
the same for all: read the sheet into a record table, map labels through the protocol,
apply the quirk policies, resolve frames (`tsfmicro.datasets.samples`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from tsfmicro.datasets.base import (
    LoadReport,
    MissingFramesError,
    Policies,
    Protocol,
    SampleTable,
    as_int,
    normalise_label,
)
from tsfmicro.datasets.frames import (
    FrameFinder,
    FrameLayout,
    Probe,
    check_dataset_folder,
    locate_frames,
)
from tsfmicro.datasets.lists import keep_listed
from tsfmicro.datasets.samples import build_samples
from tsfmicro.datasets.sheets import SheetSpec, read_sheet
from tsfmicro.errors import DataError

PathLike = str | os.PathLike[str]
LabelStyle = Literal["lower", "capitalized", "any"]

# How many missing frames a strict-mode error message lists before "... and N more".
_MESSAGE_LINES = 20
# How many rows are tried when recognising a layout from the files themselves.
_PROBES = 5


def find_protocol(title: str, protocols: tuple[Protocol, ...], wanted: str) -> Protocol:
    """The protocol of a dataset called `wanted` (its name or its id), or a DataError naming
    the dataset (`title`) and its protocols."""
    for protocol in protocols:
        if wanted in (protocol.name, protocol.id):
            return protocol
    names = ", ".join(p.name for p in protocols)
    raise DataError(f"{title} has no protocol {wanted!r} (protocols: {names})")


@dataclass(frozen=True)
class DatasetAdapter:
    """What one dataset looks like on disk and how its labels map to protocols."""

    name: str  # registry name, also the `dataset` column and key prefix
    title: str  # for messages: "CASME II"
    fps: int
    annotation_file: str  # the spreadsheet's real file name, looked for in the dataset folder
    sheet: SheetSpec
    layouts: tuple[FrameLayout, ...]
    protocols: tuple[Protocol, ...]
    default_protocol: str
    # Subject cell -> on-disk subject folder name; raises ValueError for a bad cell.
    subject_folder: Callable[[object], str]
    # How the source spells labels; other spellings are label_spelling quirks.
    label_style: LabelStyle
    key_with_onset: bool = False  # CAS(ME)3: (subject, clip) is not unique

    @property
    def emotions(self) -> frozenset[str]:
        """Every source emotion (normalised) that some protocol of this dataset knows."""
        return frozenset().union(*(p.emotions for p in self.protocols))

    def protocol(self, name: str | None = None) -> Protocol:
        """A protocol by name (e.g. "5class"), or the default one."""
        return find_protocol(self.title, self.protocols, name or self.default_protocol)

    def spelling(self, emotion: str) -> str | None:
        """How the source spells a normalised label, None when it has no fixed style."""
        if self.label_style == "lower":
            return emotion
        if self.label_style == "capitalized":
            return emotion.capitalize()
        return None

    def header(self, field: str) -> str:
        """The spreadsheet header of a record field, for messages."""
        for column in self.sheet.columns:
            if column.field == field:
                return column.headers[0]
        return field

    def read_annotation(self, path: PathLike) -> pd.DataFrame:
        """Read the spreadsheet into a record table: one row per sheet row, values as stored.

        Columns are the sheet spec's fields plus `source_row`. `subject` is converted to the
        on-disk folder name and `clip` to a trimmed string ("" when blank); every other field
        keeps the cell's value (int, str or None), so quirks stay visible.
        """
        path = Path(path)
        table = []
        for sheet_row in read_sheet(path, self.sheet):
            values = dict(sheet_row.values)
            values["subject"] = self._subject(path, sheet_row.row, values["subject"])
            clip = values["clip"]
            values["clip"] = "" if clip is None else str(clip).strip()
            values["source_row"] = sheet_row.row
            table.append(values)
        return pd.DataFrame(table, dtype=object)

    def find_annotation(self, root: Path) -> Path:
        """The annotation spreadsheet in a dataset folder, by its real file name."""
        places = [root] + [root / layout.folder for layout in self.layouts]
        for place in places:
            candidate = place / self.annotation_file
            if candidate.is_file():
                return candidate
        raise DataError(
            f"no annotation spreadsheet {self.annotation_file!r} in {root}; "
            "pass annotation= (CLI: --annotation FILE)"
        )

    def load(
        self,
        root: PathLike | None,
        protocol: str | None = None,
        annotation: PathLike | None = None,
        layout: str | None = None,
        policies: Policies | None = None,
        require_frames: bool = True,
    ) -> SampleTable:
        """Load a dataset copy into a SampleTable.

        With require_frames=True (training) the frames must be under `root` and any row whose
        onset or apex frame is missing raises one MissingFramesError listing them all. With
        require_frames=False the table is built anyway: frames are resolved when `root` is
        given (missing ones only reported), and left unresolved ("") when it is None.
        """
        policies = policies or Policies()
        chosen = self.protocol(protocol)
        root_path = Path(root) if root is not None else None
        if root_path is None and require_frames:
            raise DataError(
                f"{self.title}: no dataset folder given; frames are required "
                "(use require_frames=False to read the annotation alone)"
            )
        if root_path is None and annotation is None:
            raise DataError(f"{self.title}: give a dataset folder or an annotation file")
        if root_path is not None:
            check_dataset_folder(root_path)
        annotation_path = (
            Path(annotation) if annotation is not None else self.find_annotation(root_path)
        )
        records = self.read_annotation(annotation_path)
        report = LoadReport(
            dataset=self.name,
            protocol=chosen.id,
            annotation=str(annotation_path),
            rows_read=len(records),
        )
        finder = None
        if root_path is not None:
            base, found = locate_frames(
                root_path,
                self.layouts,
                layout,
                policies.frame_naming,
                self._probes(records),
                self.title,
            )
            finder = FrameFinder(base.resolve(), found, policies.frame_naming)
            report.frames_dir = str(base.resolve())
            report.layout = found.name
        samples = build_samples(self, records, annotation_path, chosen, policies, finder, report)
        samples = keep_listed(samples, chosen, report)
        if require_frames and report.missing_frames:
            raise MissingFramesError(missing_frames_message(report), report)
        return SampleTable(samples=samples, protocol=chosen, report=report)

    def _subject(self, path: Path, row: int, value: object) -> str:
        if value is None:
            return ""
        try:
            return self.subject_folder(value)
        except ValueError as exc:
            raise DataError(
                f"{path}, row {row}, column {self.header('subject')!r}: "
                f"subject {value!r} is not a {self.title} subject ({exc})"
            ) from exc

    def _probes(self, records: pd.DataFrame) -> list[Probe]:
        probes = []
        for rec in records.itertuples(index=False):
            onset = as_int(rec.onset)
            if rec.subject and rec.clip and onset is not None and rec.emotion is not None:
                probes.append(Probe(rec.subject, rec.clip, normalise_label(rec.emotion), onset))
            if len(probes) == _PROBES:
                break
        return probes


def missing_frames_message(report: LoadReport) -> str:
    """One error message for strict loading: the count, then the first missing frames."""
    missing = report.missing_frames
    rows = len({(m.file, m.row) for m in missing})
    lines = [m.line() for m in missing[:_MESSAGE_LINES]]
    if len(missing) > _MESSAGE_LINES:
        lines.append(f"... and {len(missing) - _MESSAGE_LINES} more")
    head = (
        f"{len(missing)} frame(s) missing in {rows} row(s) of {report.annotation} "
        f"under {report.frames_dir}:"
    )
    return "\n  ".join([head, *lines])
