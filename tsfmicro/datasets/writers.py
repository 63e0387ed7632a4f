"""Writing annotation spreadsheets in each dataset's real format, and where frames go.

For synthetic copies of the datasets (a generator writes whole fake datasets in the real
layouts) and for round-trip tests: what `write_annotation` writes, the dataset's adapter
reads back to the same record table, and `frame_file` is exactly where the adapter looks.

Input is any sample-like table (the record table of `DatasetAdapter.read_annotation`, a
sample table, or a hand-made DataFrame) with columns subject, clip, onset, apex, offset,
emotion; optional: action_units, objective_class, and for SAMM inducement_code, micro,
notes. Values are written as given, so quirks (an apex of "/") can be written on purpose.
"""

from __future__ import annotations

import io
import math
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import openpyxl
import pandas as pd

from tsfmicro.datasets.adapter import DatasetAdapter
from tsfmicro.datasets.base import FrameNaming, normalise_label
from tsfmicro.datasets.registry import get_adapter
from tsfmicro.errors import DataError

PathLike = str | os.PathLike[str]
EmotionStyle = Literal["canonical", "verbatim"]

REQUIRED_COLUMNS = ("subject", "clip", "onset", "apex", "offset", "emotion")

# Objective class (Davison et al. 2018) written when the table has none. The real classes
# come from action units, not emotions; this is only a plausible filler for fake data.
DEFAULT_OBJECTIVE_CLASS = {
    "happiness": 1,
    "happy": 1,
    "surprise": 2,
    "anger": 3,
    "disgust": 4,
    "fear": 5,
    "sadness": 6,
    "sad": 6,
    "contempt": 7,
    "repression": 7,
    "others": 7,
    "other": 7,
}
_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII")

# SAMM's notes above the header: 13 rows, so the header lands on row 14 as in the release.
_SAMM_PREAMBLE: tuple[str | None, ...] = (
    "SAMM Dataset - Master FACS Codes",
    None,
    "Written by tsfmicro in the layout of SAMM_Micro_FACS_Codes_v2.xlsx",
    None,
    None,
    "Symbol Key:",
    '"/" = or',
    '"?" = unclear offset',
    None,
    "AU Help:",
    '"L2 or R2" = unilateral AU 2',
    '"A2" = asymmetric AU 2',
    None,
)

Row = dict[str, object]


@dataclass(frozen=True)
class _Format:
    """One dataset's sheet: name, rows above the header, header, and how a row is written."""

    sheet: str
    header: tuple[str | None, ...]  # None: the unnamed blank columns of CASME II
    cells: Callable[[Row, int, DatasetAdapter, EmotionStyle], list[object]]
    text_columns: tuple[int, ...] = (1,)  # 1-based columns stored as text ("01", "006")
    preamble: tuple[str | None, ...] = ()
    extra_sheets: tuple[str, ...] = ()


def _casme2_cells(row: Row, excel_row: int, adapter: DatasetAdapter, style: EmotionStyle):
    subject = adapter.subject_folder(row["subject"]).removeprefix("sub")
    return [
        subject,
        row["clip"],
        None,
        row["onset"],
        row["apex"],
        row["offset"],
        None,
        row.get("action_units"),
        _emotion(row, adapter, style),
        _objective(row),
    ]


def _samm_cells(row: Row, excel_row: int, adapter: DatasetAdapter, style: EmotionStyle):
    return [
        adapter.subject_folder(row["subject"]),
        row["clip"],
        _inducement(row),
        row["onset"],
        row["apex"],
        row["offset"],
        f"=SUM(F{excel_row}-D{excel_row})+1",
        row.get("micro") or "Micro - 1/2",
        row.get("action_units"),
        _emotion(row, adapter, style),
        _objective(row),
        row.get("notes"),
    ]


def _casme3_cells(row: Row, excel_row: int, adapter: DatasetAdapter, style: EmotionStyle):
    objective = _objective(row)
    if isinstance(objective, numbers.Integral) and 1 <= objective <= len(_ROMAN):
        objective = _ROMAN[int(objective) - 1]
    return [
        adapter.subject_folder(row["subject"]),
        row["clip"],
        row["onset"],
        row["apex"],
        row["offset"],
        row.get("action_units"),
        objective,
        _emotion(row, adapter, style),
    ]


def _mmew_cells(row: Row, excel_row: int, adapter: DatasetAdapter, style: EmotionStyle):
    return [
        adapter.subject_folder(row["subject"]),
        row["clip"],
        row["onset"],
        row["apex"],
        row["offset"],
        row.get("action_units"),
        _emotion(row, adapter, style),
    ]


_FORMATS: dict[str, _Format] = {
    "casme2": _Format(
        sheet="Sheet1",
        header=(
            "Subject",
            "Filename",
            None,
            "OnsetFrame",
            "ApexFrame",
            "OffsetFrame",
            None,
            "Action Units",
            "Estimated Emotion",
            "Objective Classes",
        ),
        cells=_casme2_cells,
        extra_sheets=("Sheet2", "Sheet3"),
    ),
    "samm": _Format(
        sheet="MICRO_ONLY",
        header=(
            "Subject",
            "Filename",
            "Inducement Code",
            "Onset Frame",
            "Apex Frame",
            "Offset Frame",
            "Duration",
            "Micro",
            "Action Units",
            "Estimated Emotion",
            "Objective Classes",
            "Notes",
        ),
        cells=_samm_cells,
        preamble=_SAMM_PREAMBLE,
    ),
    "casme3": _Format(
        sheet="label",
        header=(
            "Subject",
            "Filename",
            "Onset",
            "Apex",
            "Offset",
            "AU",
            "Objective class",
            "emotion",
        ),
        cells=_casme3_cells,
    ),
    "mmew": _Format(
        sheet="Sheet1",
        header=(
            "Subject",
            "Filename",
            "OnsetFrame",
            "ApexFrame",
            "OffsetFrame",
            "Action Units",
            "Estimated Emotion",
        ),
        cells=_mmew_cells,
    ),
}


def write_annotation(
    dataset: str,
    table: pd.DataFrame,
    path: PathLike,
    emotion_style: EmotionStyle = "canonical",
) -> Path:
    """Write `table` as `dataset`'s annotation spreadsheet at `path`; returns the path.

    emotion_style="canonical" spells labels as the dataset does (SAMM "Anger", CASME II
    "anger"); "verbatim" writes the emotion column unchanged (to write spelling quirks).
    """
    adapter = get_adapter(dataset)
    if adapter.name not in _FORMATS:
        raise DataError(f"{adapter.title} has no annotation spreadsheet to write")
    fmt = _FORMATS[adapter.name]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"cannot write {adapter.title} annotation: table lacks {missing}")
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = fmt.sheet
    for index, note in enumerate(fmt.preamble, start=1):
        sheet.cell(row=index, column=1, value=note)
    header_row = len(fmt.preamble) + 1
    for column, name in enumerate(fmt.header, start=1):
        sheet.cell(row=header_row, column=column, value=name)
    for offset, row in enumerate(table.to_dict("records"), start=1):
        excel_row = header_row + offset
        try:
            values = fmt.cells(
                {k: _plain(v) for k, v in row.items()}, excel_row, adapter, emotion_style
            )
        except ValueError as exc:
            raise DataError(
                f"cannot write {adapter.title} row {offset}: subject {row['subject']!r}: {exc}"
            ) from exc
        for column, value in enumerate(values, start=1):
            cell = sheet.cell(row=excel_row, column=column, value=value)
            if column in fmt.text_columns:
                cell.number_format = "@"
    for name in fmt.extra_sheets:
        workbook.create_sheet(name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Built in memory and written in one call: a failed write (a full disk) then leaves no
    # half-closed zip archive behind to fail again when it is collected.
    buffer = io.BytesIO()
    workbook.save(buffer)
    path.write_bytes(buffer.getvalue())
    return path


def annotation_path(dataset: str, root: PathLike) -> Path:
    """Where the loader looks for the annotation by default: the real file name in `root`."""
    adapter = get_adapter(dataset)
    if adapter.annotation_file is None:
        raise DataError(f"{adapter.title} has no annotation spreadsheet")
    return Path(root) / adapter.annotation_file


def frame_file(
    dataset: str,
    root: PathLike,
    subject: str,
    clip: str,
    n: int,
    layout: str | None = None,
    emotion: str = "",
    naming: FrameNaming = "padded",
) -> Path:
    """Where the loader expects frame n of a clip in a copy rooted at `root`.

    `subject` is the folder name (sub01, 006, spNO.1); `layout` defaults to the dataset's
    first (CASME II raw); `emotion` is needed for MMEW, whose folders are per emotion;
    `naming` picks SAMM's padded (as released) or unpadded frame numbers.
    """
    adapter = get_adapter(dataset)
    chosen = adapter.layouts[0]
    if layout is not None:
        matches = [lay for lay in adapter.layouts if lay.name == layout]
        if not matches:
            names = ", ".join(lay.name for lay in adapter.layouts)
            raise DataError(f"{adapter.title} has no layout {layout!r} (layouts: {names})")
        chosen = matches[0]
    if "{emotion}" in chosen.clip_parts and not emotion:
        raise DataError(f"{adapter.title} frames are filed by emotion: pass emotion=")
    folder = chosen.clip_relpath(subject, clip, normalise_label(emotion))
    template = chosen.templates(subject, naming)[0]
    return Path(root) / chosen.folder / folder / template.format(n=int(n))


def _emotion(row: Row, adapter: DatasetAdapter, style: EmotionStyle) -> object:
    raw = row["emotion"]
    if style == "verbatim" or raw is None:
        return raw
    emotion = normalise_label(raw)
    return adapter.spelling(emotion) or emotion


def _objective(row: Row) -> object:
    value = row.get("objective_class")
    if value is None and row.get("emotion") is not None:
        return DEFAULT_OBJECTIVE_CLASS.get(normalise_label(row["emotion"]))
    return value


def _inducement(row: Row) -> object:
    """SAMM's inducement code, or the middle number of the clip name (006_1_2 -> 1)."""
    value = row.get("inducement_code")
    if value is not None:
        return value
    parts = str(row["clip"]).split("_")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _plain(value: object) -> object:
    """numpy scalars -> Python values, NaN and blank text -> None, for plain cells."""
    if isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return None if math.isnan(float(value)) else float(value)
    return value
