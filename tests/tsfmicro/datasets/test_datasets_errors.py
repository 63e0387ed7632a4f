"""Bad input fails with one clear DataError naming the file, row and field; quirks follow
their declared policy."""

from __future__ import annotations

import openpyxl
import pandas as pd
import pytest

from tsfmicro.datasets import (
    MissingFramesError,
    Policies,
    get_adapter,
    get_protocol,
    inspect_dataset,
    list_datasets,
    list_protocols,
    load_dataset,
    read_frame,
)
from tsfmicro.datasets.writers import annotation_path, frame_file, write_annotation
from tsfmicro.errors import ConfigError, DataError

ROWS = [
    dict(subject="sub01", clip="EP01_01", onset=10, apex=12, offset=14, emotion="happiness"),
    dict(subject="sub01", clip="EP01_02", onset=20, apex=22, offset=24, emotion="disgust"),
    dict(subject="sub02", clip="EP02_01", onset=30, apex=32, offset=34, emotion="surprise"),
    dict(subject="sub03", clip="EP03_01", onset=40, apex=42, offset=44, emotion="others"),
]


def _sheet(tmp_path, rows, dataset="casme2", name="sheet.xlsx"):
    return write_annotation(dataset, pd.DataFrame(rows), tmp_path / name)


def _read(dataset, path, protocol=None, policies=None):
    return load_dataset(dataset, None, protocol, path, require_frames=False, policies=policies)


def test_missing_spreadsheet(tmp_path):
    with pytest.raises(DataError, match="annotation spreadsheet not found: .*nope.xlsx"):
        _read("casme2", tmp_path / "nope.xlsx")
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "x").touch()
    with pytest.raises(DataError, match="no annotation spreadsheet 'CASME2-coding-20190701.xlsx'"):
        load_dataset("casme2", tmp_path / "frames")


def test_not_a_workbook(tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_text("not a spreadsheet")
    with pytest.raises(DataError, match=r"broken.xlsx: not a readable .xlsx"):
        _read("casme2", path)


def test_missing_sheet(tmp_path):
    path = _sheet(tmp_path, ROWS)
    book = openpyxl.load_workbook(path)
    book["Sheet1"].title = "Coding"
    book.save(path)
    with pytest.raises(DataError, match=r"sheet.xlsx: no sheet 'Sheet1' \(sheets: Coding"):
        _read("casme2", path)


def test_missing_column_is_named(tmp_path):
    path = _sheet(tmp_path, ROWS)
    book = openpyxl.load_workbook(path)
    book["Sheet1"].delete_cols(5)  # ApexFrame
    book.save(path)
    with pytest.raises(DataError, match=r"sheet.xlsx, sheet 'Sheet1': missing column 'ApexFrame'"):
        _read("casme2", path)


def test_mmew_missing_column_is_named(tmp_path):
    rows = [dict(subject="S01", clip="c1", onset=1, apex=3, offset=5, emotion="fear")]
    path = _sheet(tmp_path, rows, dataset="mmew")
    book = openpyxl.load_workbook(path)
    book.active.cell(1, 7).value = "Emotion"  # not "Estimated Emotion"
    book.save(path)
    with pytest.raises(DataError, match="missing column 'Estimated Emotion'"):
        _read("mmew", path)


def test_no_header_row(tmp_path):
    path = _sheet(tmp_path, ROWS)
    book = openpyxl.load_workbook(path)
    book["Sheet1"].cell(1, 1).value = "Participant"
    book.save(path)
    with pytest.raises(DataError, match="no header row"):
        _read("casme2", path)


def test_unknown_labels_name_file_row_and_label(tmp_path):
    rows = [
        *ROWS,
        {**ROWS[0], "clip": "EP09_09", "emotion": "contempt"},
        {**ROWS[1], "clip": "EP09_10", "emotion": "joy"},
    ]
    path = _sheet(tmp_path, rows)
    with pytest.raises(DataError) as error:
        _read("casme2", path)
    message = str(error.value)
    assert "2 bad rows in" in message and str(path) in message
    assert "row 6, column 'Estimated Emotion': unknown emotion label 'contempt'" in message
    assert "row 7, column 'Estimated Emotion': unknown emotion label 'joy'" in message


def test_labels_dropped_by_the_protocol_are_not_errors(tmp_path):
    path = _sheet(tmp_path, [*ROWS, {**ROWS[0], "clip": "EP09_09", "emotion": "sadness"}])
    table = _read("casme2", path, "5class")
    assert len(table) == 4 and table.report.dropped_by_protocol == {"sadness": 1}
    three = _read("casme2", path, "3class")
    assert len(three) == 4 and three.report.dropped_by_protocol == {"others": 1}


def test_bad_frame_numbers(tmp_path):
    rows = [{**ROWS[0], "onset": "x"}, {**ROWS[1], "offset": 0}, {**ROWS[2], "offset": None}]
    path = _sheet(tmp_path, rows)
    with pytest.raises(DataError, match=r"row 2, column 'OnsetFrame': onset 'x'"):
        _read("casme2", path)
    good = _sheet(tmp_path, rows[1:], name="good.xlsx")
    table = _read("casme2", good)
    assert list(table.samples["offset"]) == [22, 32]  # offset set to the apex
    assert table.report.issue_counts() == {"bad_offset": 2}
    assert len(_read("casme2", good, policies=Policies(bad_offset="drop"))) == 0
    with pytest.raises(DataError, match=r"row 2, column 'OffsetFrame': offset is 0"):
        _read("casme2", good, policies=Policies(bad_offset="error"))


def test_apex_policies(tmp_path):
    rows = [{**ROWS[0], "apex": 9}, {**ROWS[1], "apex": None}, {**ROWS[2], "apex": 30}]
    path = _sheet(tmp_path, rows)
    table = _read("casme2", path)
    assert list(table.samples["apex"]) == [12, 22, 30]
    assert list(table.samples["quirks"]) == [
        "apex_out_of_range",
        "missing_apex",
        "apex_equals_onset",
    ]
    kept = _read(
        "casme2", path, policies=Policies(apex_out_of_range="keep", apex_equals_onset="middle")
    )
    assert list(kept.samples["apex"]) == [9, 22, 32]
    assert len(_read("casme2", path, policies=Policies(missing_apex="drop"))) == 2


def test_duplicate_keys(tmp_path):
    rows = [*ROWS, {**ROWS[1], "onset": 50, "apex": 52, "offset": 54}]
    path = _sheet(tmp_path, rows)
    table = _read("casme2", path)
    assert len(table) == 4 and table.samples["key"].is_unique
    issue = table.report.issues[0]
    assert (issue.kind, issue.row, issue.key) == ("duplicate_key", 6, "casme2/sub01/EP01_02")
    assert "row 3 kept" in issue.action
    assert len(_read("casme2", path, policies=Policies(duplicate_key="drop_all"))) == 3
    with pytest.raises(DataError, match=r"row 6, column 'Filename': sample casme2/sub01/EP01_02"):
        _read("casme2", path, policies=Policies(duplicate_key="error"))


def test_policy_values_are_checked():
    with pytest.raises(ConfigError, match="missing_apex='guess'"):
        Policies(missing_apex="guess")


def test_bad_subject_cell(tmp_path):
    path = _sheet(tmp_path, ROWS)
    book = openpyxl.load_workbook(path)
    book["Sheet1"].cell(3, 1).value = "Mr X"
    book.save(path)
    with pytest.raises(DataError, match=r"row 3, column 'Subject': subject 'Mr X'"):
        _read("casme2", path)


def test_every_missing_frame_is_reported(ds_write_copy):
    root = ds_write_copy("casme2", ROWS)
    frame_file("casme2", root, "sub01", "EP01_01", 10).unlink()  # onset of row 2
    frame_file("casme2", root, "sub01", "EP01_02", 22).unlink()  # apex of row 3
    for path in frame_file("casme2", root, "sub02", "EP02_01", 30).parent.iterdir():
        path.unlink()  # the whole clip of row 4: onset and apex
    with pytest.raises(MissingFramesError) as error:
        load_dataset("casme2", root)
    report = error.value.report
    found = [(m.row, m.which, m.frame) for m in report.missing_frames]
    assert found == [(2, "onset", 10), (3, "apex", 22), (4, "onset", 30), (4, "apex", 32)]
    assert "4 frame(s) missing in 3 row(s)" in str(error.value)
    assert "img22.jpg" in str(error.value)
    table = inspect_dataset("casme2", root)  # inspection reports instead of raising
    assert len(table.report.missing_frames) == 4
    assert table.samples.set_index("clip").loc["EP01_02", "apex_path"] == ""


def test_long_missing_frame_lists_are_truncated_in_the_message(ds_write_copy):
    rows = [
        dict(
            subject=f"sub{s:02d}", clip=f"EP01_{c}", onset=10, apex=12, offset=14, emotion="others"
        )
        for s in range(1, 4)
        for c in range(4)
    ]
    root = ds_write_copy("casme2", rows)
    for path in (root / "CASME2_RAW_selected").rglob("*.jpg"):
        path.unlink()
    with pytest.raises(MissingFramesError) as error:
        load_dataset("casme2", root)
    assert len(error.value.report.missing_frames) == 24
    assert "24 frame(s) missing in 12 row(s)" in str(error.value)
    assert str(error.value).endswith("... and 4 more")


def test_corrupt_and_truncated_jpeg(ds_write_copy, tmp_path):
    root = ds_write_copy("casme2", ROWS[:2])
    garbage = frame_file("casme2", root, "sub01", "EP01_01", 12)
    garbage.write_bytes(b"\xff\xd8 definitely not a jpeg \xff\xd9")
    truncated = frame_file("casme2", root, "sub01", "EP01_02", 20)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(DataError, match=f"frame {garbage} is corrupt"):
        read_frame(garbage)
    with pytest.raises(DataError, match=f"frame {truncated} is a truncated"):
        read_frame(truncated)
    with pytest.raises(DataError, match="cannot read frame .*missing.jpg"):
        read_frame(tmp_path / "missing.jpg")
    table = inspect_dataset("casme2", root)
    bad = sorted(u.path for u in table.report.unreadable_frames)
    assert bad == sorted([str(garbage.resolve()), str(truncated.resolve())])
    assert table.report.frames_decoded == 2


def test_empty_and_missing_folders(tmp_path):
    annotation = _sheet(tmp_path, ROWS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="dataset folder is empty: .*empty"):
        load_dataset("casme2", tmp_path / "empty", annotation=annotation)
    with pytest.raises(DataError, match="dataset folder not found"):
        load_dataset("casme2", tmp_path / "absent", annotation=annotation)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"no CASME II frames found \(expected .*CASME2_RAW"):
        load_dataset("casme2", tmp_path / "other", annotation=annotation)
    with pytest.raises(DataError, match="frames are required"):
        load_dataset("casme2", None, annotation=annotation)


def test_registry_protocols_cover_every_label():
    assert list_datasets() == ("casme2", "samm", "casme3", "mmew", "smic", "composite")
    for dataset in list_datasets()[:-1]:
        adapter = get_adapter(dataset)
        for protocol in list_protocols(dataset):
            assert protocol.emotions == adapter.emotions, protocol.id
            assert len(set(protocol.class_names)) == len(protocol.class_names)
        assert get_protocol(dataset, "3class").class_names == ("negative", "positive", "surprise")
    assert get_protocol("composite").class_names == ("negative", "positive", "surprise")
    assert list_protocols("casme2")[0].name == "5class"
    with pytest.raises(DataError, match="no protocol '9class'"):
        get_protocol("samm", "9class")
    with pytest.raises(DataError, match="unknown dataset 'smicx'"):
        get_adapter("smicx")


def test_writer_rejects_tables_without_required_columns(tmp_path):
    with pytest.raises(DataError, match="lacks"):
        write_annotation("samm", pd.DataFrame([{"subject": "006"}]), tmp_path / "x.xlsx")
    assert annotation_path("samm", tmp_path).name == "SAMM_Micro_FACS_Codes_v2.xlsx"
