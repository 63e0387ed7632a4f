"""Reading annotation spreadsheets by header name, keeping the row numbers a person sees.

The sheets differ in where the header is (CASME II row 1, SAMM row 14 below notes) and in
spelling of headers; they agree in having a header cell `Subject`. The header row is found
as the first row holding that cell, and columns are matched by name after trimming and
case-folding, so blank unnamed columns and column order do not matter.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import openpyxl

from tsfmicro.datasets.base import normalise_label
from tsfmicro.errors import DataError

# How far down to look for the header row.
_HEADER_SEARCH_ROWS = 50


@dataclass(frozen=True)
class Column:
    """A spreadsheet column: the field it fills and the header names it may carry."""

    field: str  # name in the record table
    headers: tuple[str, ...]  # accepted header spellings (matched trimmed, case-folded)
    required: bool = True


@dataclass(frozen=True)
class SheetSpec:
    """Where the annotation sits in the workbook and which columns it must have."""

    sheet: str | None  # None: the first sheet
    columns: tuple[Column, ...]
    header_cell: str = "Subject"  # the header row is the first row holding this cell


@dataclass(frozen=True)
class SheetRow:
    """One data row: its spreadsheet row number and the values of the spec's fields."""

    row: int
    values: dict[str, object]


def read_sheet(path: Path, spec: SheetSpec) -> list[SheetRow]:
    """Read the data rows of an annotation sheet.

    Fully blank rows are skipped. Raises DataError naming the file for a missing or
    unreadable file, a missing sheet, no header row, or missing required columns.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"annotation spreadsheet not found: {path}")
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .xlsx workbook ({exc})") from exc
    try:
        sheet_name = spec.sheet or workbook.sheetnames[0]
        if sheet_name not in workbook.sheetnames:
            raise DataError(
                f"{path}: no sheet {sheet_name!r} (sheets: {', '.join(workbook.sheetnames)})"
            )
        rows = list(workbook[sheet_name].iter_rows(values_only=True))
    finally:
        workbook.close()
    header_index = _find_header(path, sheet_name, rows, spec.header_cell)
    positions = _column_positions(path, sheet_name, header_index, rows[header_index], spec)
    records = []
    for index in range(header_index + 1, len(rows)):
        cells = rows[index]
        if all(_blank(cell) for cell in cells):
            continue
        values = {
            name: _clean(cells[pos]) if pos is not None and pos < len(cells) else None
            for name, pos in positions.items()
        }
        records.append(SheetRow(row=index + 1, values=values))
    if not records:
        raise DataError(
            f"{path}, sheet {sheet_name!r}: no data rows below the header (row {header_index + 1})"
        )
    return records


def _find_header(path: Path, sheet: str, rows: list[tuple], header_cell: str) -> int:
    wanted = normalise_label(header_cell)
    for index, cells in enumerate(rows[:_HEADER_SEARCH_ROWS]):
        if any(not _blank(c) and normalise_label(c) == wanted for c in cells):
            return index
    raise DataError(
        f"{path}, sheet {sheet!r}: no header row (a row with a {header_cell!r} cell) "
        f"in the first {_HEADER_SEARCH_ROWS} rows"
    )


def _column_positions(
    path: Path, sheet: str, header_index: int, header: tuple, spec: SheetSpec
) -> dict[str, int | None]:
    by_name = {normalise_label(c): i for i, c in enumerate(header) if not _blank(c)}
    positions: dict[str, int | None] = {}
    missing = []
    for column in spec.columns:
        found = [by_name[h] for h in map(normalise_label, column.headers) if h in by_name]
        positions[column.field] = found[0] if found else None
        if not found and column.required:
            missing.append(column.headers[0])
    if missing:
        present = ", ".join(repr(str(c)) for c in header if not _blank(c))
        raise DataError(
            f"{path}, sheet {sheet!r}: missing column {', '.join(map(repr, missing))} "
            f"(header row {header_index + 1} has: {present})"
        )
    return positions


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _clean(value: object) -> object:
    """Blank cells become None; everything else is kept as the cell holds it."""
    return None if _blank(value) else value
