"""The real CASME II and SAMM spreadsheets: published counts, quirk rows, writer round trip.

These read ../shared/annotations (or $TSFMICRO_SHARED/annotations) and skip where it is
absent: the spreadsheets are licensed and not in the repository.
"""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from tsfmicro.datasets import Policies, get_adapter, load_dataset
from tsfmicro.datasets.writers import write_annotation
from tsfmicro.errors import DataError

CASME2 = "CASME2-coding-20190701.xlsx"
SAMM = "SAMM_Micro_FACS_Codes_v2.xlsx"


def _load(folder, dataset, protocol, **kwargs):
    name = CASME2 if dataset == "casme2" else SAMM
    return load_dataset(
        dataset,
        None,
        protocol=protocol,
        annotation=folder / name,
        require_frames=False,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("dataset", "protocol", "samples", "subjects", "per_class"),
    [
        (
            "casme2",
            "5class",
            249,
            26,
            {"happiness": 32, "repression": 27, "disgust": 63, "surprise": 28, "others": 99},
        ),
        ("casme2", "3class", 156, 25, {"negative": 96, "positive": 32, "surprise": 28}),
        (
            "samm",
            "5class",
            136,
            27,
            {"anger": 57, "contempt": 12, "happiness": 26, "surprise": 15, "other": 26},
        ),
        ("samm", "3class", 133, 28, {"negative": 92, "positive": 26, "surprise": 15}),
    ],
)
def test_published_counts(ds_shared_annotations, dataset, protocol, samples, subjects, per_class):
    table = _load(ds_shared_annotations, dataset, protocol)
    assert len(table) == samples
    assert table.samples["subject"].nunique() == subjects
    assert table.class_counts() == per_class
    assert table.class_names == tuple(per_class)
    assert table.samples["key"].is_unique
    assert (table.samples["onset_path"] == "").all()  # frames not resolved in this mode


def test_casme2_sheet_as_read(ds_shared_annotations):
    records = get_adapter("casme2").read_annotation(ds_shared_annotations / CASME2)
    assert len(records) == 255
    assert records["subject"].iloc[0] == "sub01" and records["source_row"].iloc[0] == 2
    emotions = records["emotion"].value_counts().to_dict()
    assert emotions == {
        "others": 99,
        "disgust": 63,
        "happiness": 32,
        "surprise": 28,
        "repression": 27,
        "sadness": 4,
        "fear": 2,
    }
    table = _load(ds_shared_annotations, "casme2", "5class")
    assert table.samples["subject"].str.fullmatch(r"sub\d\d").all()
    assert set(table.samples["subject"]) - {f"sub{i:02d}" for i in range(1, 27)} == set()


def test_casme2_quirk_rows(ds_shared_annotations, caplog):
    with caplog.at_level(logging.WARNING, logger="tsfmicro.datasets"):
        table = _load(ds_shared_annotations, "casme2", "5class")
    samples = table.samples.set_index("key")
    slash = samples.loc["casme2/sub04/EP12_01f"]
    assert (slash["onset"], slash["apex"], slash["offset"]) == (261, 291, 321)  # middle frame
    assert slash["quirks"] == "missing_apex"
    same = samples.loc["casme2/sub05/EP09_05f"]
    assert same["apex"] == same["onset"] == 69 and same["quirks"] == "apex_equals_onset"
    assert table.report.issue_counts() == {"missing_apex": 1, "apex_equals_onset": 1}
    rows = sorted(i.row for i in table.report.issues)
    assert rows == [
        int(samples.loc["casme2/sub04/EP12_01f", "source_row"]),
        int(samples.loc["casme2/sub05/EP09_05f", "source_row"]),
    ]
    logged = [r.getMessage() for r in caplog.records]
    assert any(CASME2 in m and "EP12_01f" in m and "'/'" in m for m in logged)
    assert table.report.dropped_by_protocol == {"sadness": 4, "fear": 2}


def test_casme2_apex_policies_change_the_quirk_rows_only(ds_shared_annotations):
    dropped = _load(
        ds_shared_annotations,
        "casme2",
        "5class",
        policies=Policies(missing_apex="drop", apex_equals_onset="drop"),
    )
    assert len(dropped) == 247
    assert "casme2/sub04/EP12_01f" not in set(dropped.samples["key"])
    with pytest.raises(DataError, match=rf"{CASME2}, row \d+, column 'ApexFrame': apex '/'"):
        _load(ds_shared_annotations, "casme2", "5class", policies=Policies(missing_apex="error"))


def test_samm_quirk_rows(ds_shared_annotations):
    table = _load(ds_shared_annotations, "samm", "5class")
    samples = table.samples.set_index("key")
    after = samples.loc["samm/028/028_4_1"]  # apex 1143 after offset 1134
    before = samples.loc["samm/032/032_3_1"]  # apex 1930 before onset 4896
    assert after["apex"] == (1071 + 1134) // 2 and before["apex"] == (4896 + 4970) // 2
    assert {i.row for i in table.report.issues} == {140, 147}
    assert table.samples["emotion"].str.islower().all()
    clamped = _load(
        ds_shared_annotations, "samm", "5class", policies=Policies(apex_out_of_range="clamp")
    ).samples.set_index("key")
    assert clamped.loc["samm/028/028_4_1", "apex"] == 1134
    assert clamped.loc["samm/032/032_3_1", "apex"] == 4896
    with pytest.raises(DataError) as error:
        _load(ds_shared_annotations, "samm", "3class", policies=Policies(apex_out_of_range="error"))
    assert "row 140" in str(error.value) and "row 147" in str(error.value)


def test_samm_header_found_below_the_notes(ds_shared_annotations):
    records = get_adapter("samm").read_annotation(ds_shared_annotations / SAMM)
    assert len(records) == 159 and records["subject"].nunique() == 29
    assert records["source_row"].iloc[0] == 15  # header on row 14
    assert records["subject"].iloc[0] == "006" and records["clip"].iloc[0] == "006_1_2"


def test_composite_of_the_real_sheets(ds_shared_annotations):
    table = load_dataset(
        "composite",
        None,
        require_frames=False,
        annotation={"casme2": ds_shared_annotations / CASME2, "samm": ds_shared_annotations / SAMM},
    )
    samples = table.samples
    assert len(samples) == 156 + 133
    assert samples["subject"].nunique() == 25 + 28
    assert samples["subject"].str.match(r"(casme2/sub\d\d|samm/\d{3})$").all()
    assert table.class_names == ("negative", "positive", "surprise")
    per_part = samples.groupby("dataset")["label_name"].value_counts().to_dict()
    assert per_part[("casme2", "negative")] == 96 and per_part[("samm", "negative")] == 92
    assert table.class_counts() == {"negative": 188, "positive": 58, "surprise": 43}
    assert len(table.report.parts) == 2 and len(table.report.issues) == 4


@pytest.mark.parametrize("dataset", ["casme2", "samm"])
def test_real_sheet_written_back_reads_the_same(ds_shared_annotations, tmp_path, dataset):
    adapter = get_adapter(dataset)
    source = ds_shared_annotations / (CASME2 if dataset == "casme2" else SAMM)
    records = adapter.read_annotation(source)
    copy = write_annotation(dataset, records, tmp_path / source.name)
    pd.testing.assert_frame_equal(adapter.read_annotation(copy), records)
    for protocol in ("5class", "3class"):
        original = load_dataset(dataset, None, protocol, source, require_frames=False)
        rewritten = load_dataset(dataset, None, protocol, copy, require_frames=False)
        pd.testing.assert_frame_equal(rewritten.samples, original.samples)
        assert [i.line().replace(str(copy), "F") for i in rewritten.report.issues] == [
            i.line().replace(str(source), "F") for i in original.report.issues
        ]


def test_writer_keeps_the_real_header_layout(ds_shared_annotations, tmp_path):
    import openpyxl

    for dataset, name, sheet in (("casme2", CASME2, "Sheet1"), ("samm", SAMM, "MICRO_ONLY")):
        records = get_adapter(dataset).read_annotation(ds_shared_annotations / name)
        copy = write_annotation(dataset, records, tmp_path / name)
        real = openpyxl.load_workbook(ds_shared_annotations / name)
        ours = openpyxl.load_workbook(copy)
        assert ours.sheetnames == real.sheetnames
        header_row = 1 if dataset == "casme2" else 14
        header = [c.value for c in real[sheet][header_row]]
        assert [c.value for c in ours[sheet][header_row]] == header
        assert (
            ours[sheet].cell(header_row + 1, 1).value == real[sheet].cell(header_row + 1, 1).value
        )
