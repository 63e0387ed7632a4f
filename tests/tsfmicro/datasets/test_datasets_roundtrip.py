"""Fake copies written in each real layout load back through the same adapter."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from tsfmicro.datasets import (
    MissingFramesError,
    Policies,
    frame_path,
    get_adapter,
    load_dataset,
    read_frame,
)
from tsfmicro.datasets.writers import annotation_path, frame_file, write_annotation
from tsfmicro.errors import DataError


def _rows(subjects, clip, emotions, start=10):
    """One row per (subject, emotion): onset, apex = onset + 2, offset = onset + 4."""
    rows = []
    for s, subject in enumerate(subjects):
        for e, emotion in enumerate(emotions):
            onset = start + 10 * e + s
            rows.append(
                dict(
                    subject=subject,
                    clip=clip(s, e),
                    onset=onset,
                    apex=onset + 2,
                    offset=onset + 4,
                    emotion=emotion,
                    action_units="4+7",
                )
            )
    return rows


CASME2_ROWS = _rows(
    ["sub01", "sub02", "sub03"],
    lambda s, e: f"EP0{e + 1}_0{s + 1}f",
    ["happiness", "repression", "disgust", "surprise", "others", "sadness"],
)
SAMM_ROWS = _rows(
    ["006", "007"],
    lambda s, e: f"00{6 + s}_{e + 1}_1",
    ["Anger", "Contempt", "Happiness", "Surprise", "Other", "Fear"],
    start=5560,
)
CASME3_ROWS = _rows(
    ["spNO.1", "spNO.2"],
    lambda s, e: "abcdefg"[e],
    ["anger", "disgust", "fear", "happy", "sad", "surprise", "others"],
    start=160,
)
MMEW_ROWS = _rows(
    ["S01", "S02"],
    lambda s, e: f"S0{s + 1}_{e}",
    ["happiness", "surprise", "anger", "disgust", "fear", "sadness", "others"],
)

# (dataset, rows, layout, naming, expected samples in the default protocol, subjects)
CASES = [
    ("casme2", CASME2_ROWS, "raw", "padded", 15, 3),
    ("casme2", CASME2_ROWS, "cropped", "padded", 15, 3),
    ("samm", SAMM_ROWS, None, "padded", 10, 2),
    ("samm", SAMM_ROWS, None, "unpadded", 10, 2),
    ("casme3", CASME3_ROWS, None, "padded", 14, 2),
    ("mmew", MMEW_ROWS, None, "padded", 14, 2),
]


@pytest.mark.parametrize(
    ("dataset", "rows", "layout", "naming", "n_samples", "n_subjects"),
    CASES,
    ids=[f"{c[0]}-{c[2] or c[3]}" for c in CASES],
)
def test_fake_copy_loads_back(ds_write_copy, dataset, rows, layout, naming, n_samples, n_subjects):
    root = ds_write_copy(dataset, rows, layout=layout, naming=naming, gray=dataset == "samm")
    table = load_dataset(dataset, root)
    samples = table.samples
    assert len(samples) == n_samples
    assert samples["subject"].nunique() == n_subjects
    assert samples["key"].is_unique
    assert table.report.layout == (layout or get_adapter(dataset).layouts[0].name)
    assert table.report.missing_frames == []
    # Labels follow the protocol's class order; names and ids agree.
    names = table.class_names
    assert [names[i] for i in samples["label"]] == list(samples["label_name"])
    expected = {r["clip"]: r["emotion"].lower() for r in rows}
    assert all(expected[c] == e for c, e in zip(samples["clip"], samples["emotion"], strict=True))
    for sample in samples.to_dict("records"):
        assert Path(sample["onset_path"]).is_file() and Path(sample["apex_path"]).is_file()
        assert Path(sample["onset_path"]) == frame_path(sample, sample["onset"])
        assert Path(sample["apex_path"]) == frame_path(sample, sample["apex"])
        assert all(
            frame_path(sample, n).is_file() for n in range(sample["onset"], sample["offset"] + 1)
        )
        assert (
            Path(sample["onset_path"])
            == frame_file(
                dataset,
                root,
                sample["subject"],
                sample["clip"],
                sample["onset"],
                layout=layout,
                emotion=sample["emotion"],
                naming=naming,
            ).resolve()
        )
    last = samples.iloc[-1]
    assert table.frame_path(len(samples) - 1, last["offset"]) == frame_path(last, last["offset"])
    image = read_frame(samples["apex_path"].iloc[0])
    assert image.shape == (24, 32, 3) and image.dtype == np.uint8


def test_every_protocol_of_a_fake_copy(ds_write_copy):
    root = ds_write_copy("casme3", CASME3_ROWS)
    counts = {
        p: load_dataset("casme3", root, protocol=p).class_counts()
        for p in ("7class", "4class", "3class")
    }
    assert counts["7class"] == {e: 2 for e in counts["7class"]}
    assert counts["4class"] == {"negative": 8, "positive": 2, "surprise": 2, "others": 2}
    assert counts["3class"] == {"negative": 8, "positive": 2, "surprise": 2}


def test_samm_grayscale_frames_read_as_rgb(ds_write_copy):
    root = ds_write_copy("samm", SAMM_ROWS[:1], gray=True)
    path = load_dataset("samm", root).samples["onset_path"].iloc[0]
    assert cv2.imread(path, cv2.IMREAD_UNCHANGED).ndim == 2  # stored with one channel
    image = read_frame(path)
    assert image.shape == (24, 32, 3) and image.dtype == np.uint8
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()


def test_samm_unpadded_names_are_accepted_and_logged(ds_write_copy, caplog):
    root = ds_write_copy("samm", SAMM_ROWS[:3], naming="unpadded")
    with caplog.at_level(logging.INFO, logger="tsfmicro.datasets"):
        table = load_dataset("samm", root)
    assert table.report.issue_counts() == {"frame_naming": 3}
    assert set(table.samples["frame_template"]) == {"006_{n}.jpg"}
    assert sum("frame_naming" in r.message for r in caplog.records) == 3
    with pytest.raises(MissingFramesError, match=r"6 frame\(s\) missing in 3 row\(s\)"):
        load_dataset("samm", root, policies=Policies(frame_naming="padded"))


def test_casme2_root_may_be_the_layout_folder_or_hold_subjects(ds_write_copy, tmp_path):
    root = ds_write_copy("casme2", CASME2_ROWS[:2], layout="cropped")
    annotation = annotation_path("casme2", root)
    direct = load_dataset("casme2", root / "Cropped", annotation=annotation)
    assert direct.report.layout == "cropped" and len(direct) == 2
    renamed = root / "frames_here"
    (root / "Cropped").rename(renamed)
    sniffed = load_dataset("casme2", renamed, annotation=annotation)
    assert sniffed.report.layout == "cropped" and len(sniffed) == 2


def test_casme2_both_layouts_present_needs_a_choice(ds_write_copy):
    ds_write_copy("casme2", CASME2_ROWS[:2], layout="raw")
    root = ds_write_copy("casme2", CASME2_ROWS[:2], layout="cropped")
    with pytest.raises(DataError, match="more than one layout"):
        load_dataset("casme2", root)
    table = load_dataset("casme2", root, layout="raw")
    assert table.samples["onset_path"].str.contains("CASME2_RAW_selected").all()
    assert table.samples["frame_template"].eq("img{n}.jpg").all()


def test_casme3_quirks_repeated_clip_spelling_and_offset(ds_write_copy, caplog):
    rows = [
        dict(subject="spNO.1", clip="a", onset=100, apex=105, offset=110, emotion="disgust"),
        # Same subject and Filename, another onset: a second sample, not a duplicate.
        dict(subject="spNO.1", clip="a", onset=200, apex=204, offset=208, emotion="Others"),
        dict(subject="spNO.2", clip="J", onset=50, apex=50, offset=60, emotion="surprise"),
        dict(subject="spNO.2", clip="b", onset=70, apex=75, offset=0, emotion="happy"),
    ]
    root = ds_write_copy("casme3", rows, emotion_style="verbatim")
    with caplog.at_level(logging.INFO, logger="tsfmicro.datasets"):
        table = load_dataset("casme3", root)
    samples = table.samples.set_index("key")
    assert list(samples.index) == [
        "casme3/spNO.1/a/100",
        "casme3/spNO.1/a/200",
        "casme3/spNO.2/J/50",
        "casme3/spNO.2/b/70",
    ]
    assert samples.loc["casme3/spNO.1/a/200", "emotion"] == "others"
    assert samples.loc["casme3/spNO.2/b/70", "offset"] == 75
    assert samples.loc["casme3/spNO.2/J/50", "apex"] == 50
    assert table.report.issue_counts() == {
        "label_spelling": 1,
        "apex_equals_onset": 1,
        "bad_offset": 1,
    }
    assert samples.loc["casme3/spNO.2/b/70", "quirks"] == "bad_offset"
    assert len([r for r in caplog.records if "row " in r.message]) == 3
    with pytest.raises(DataError, match=r"row 3, column 'emotion'.*'Others'"):
        load_dataset("casme3", root, policies=Policies(label_spelling="error"))


def test_mmew_emotion_folders_match_case_insensitively(ds_write_copy):
    root = ds_write_copy("mmew", MMEW_ROWS[:2])
    folder = root / "Micro_Expression" / "happiness"
    folder.rename(folder.with_name("Happiness"))
    table = load_dataset("mmew", root)
    assert "Happiness" in table.samples["onset_path"].iloc[0]


def test_max_difference_picks_the_most_changed_frame(ds_write_copy):
    row = dict(subject="sub01", clip="EP01_01", onset=10, apex="/", offset=20, emotion="disgust")
    root = ds_write_copy("casme2", [row], frames=lambda r: range(10, 21))
    for n in range(10, 21):
        value = 200 if n == 17 else 50 + n  # frame 17 differs most from onset
        path = frame_file("casme2", root, "sub01", "EP01_01", n)
        cv2.imwrite(str(path), np.full((12, 16, 3), value, np.uint8))
    table = load_dataset("casme2", root, policies=Policies(missing_apex="max_difference"))
    assert table.samples["apex"].iloc[0] == 17
    assert "largest difference" in table.report.issues[0].action
    no_frames = load_dataset(
        "casme2",
        None,
        annotation=annotation_path("casme2", root),
        require_frames=False,
        policies=Policies(missing_apex="max_difference"),
    )
    assert no_frames.samples["apex"].iloc[0] == 15
    assert "not available" in no_frames.report.issues[0].action


def test_written_annotation_reads_back_as_the_same_records(ds_write_copy, tmp_path):
    for dataset, rows in (
        ("casme2", CASME2_ROWS),
        ("samm", SAMM_ROWS),
        ("casme3", CASME3_ROWS),
        ("mmew", MMEW_ROWS),
    ):
        adapter = get_adapter(dataset)
        first = adapter.read_annotation(
            write_annotation(dataset, pd.DataFrame(rows), tmp_path / f"{dataset}.xlsx")
        )
        again = adapter.read_annotation(write_annotation(dataset, first, tmp_path / "again.xlsx"))
        pd.testing.assert_frame_equal(first, again)
        assert list(first["subject"]) == [r["subject"] for r in rows]
        assert list(first["emotion"]) == [r["emotion"] for r in rows]
    samm = get_adapter("samm").read_annotation(tmp_path / "samm.xlsx")
    assert samm["source_row"].iloc[0] == 15  # header on row 14, below the notes
    casme3 = get_adapter("casme3").read_annotation(tmp_path / "casme3.xlsx")
    assert list(casme3["objective_class"].unique()) == ["III", "IV", "V", "I", "VI", "II", "VII"]
