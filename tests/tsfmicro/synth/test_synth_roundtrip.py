"""Synthetic copies load through the real dataset adapters: counts, labels, every frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import pandas as pd
import pytest

from tsfmicro.datasets import Policies, frame_path, get_adapter, load_dataset
from tsfmicro.datasets.writers import annotation_path, write_annotation
from tsfmicro.errors import DataError
from tsfmicro.synth.config import SynthConfig
from tsfmicro.synth.plan import plan_from_annotation
from tsfmicro.synth.writer import write_dataset, write_for_annotation

SMALL = (128, 96)


@pytest.mark.parametrize(
    ("dataset", "layout", "grey"),
    [
        ("casme2", "raw", False),
        ("casme2", "cropped", False),
        ("samm", None, True),
        ("casme3", None, False),
        ("mmew", None, False),
    ],
)
def test_generated_copy_loads_with_every_frame(tmp_path, dataset, layout, grey):
    config = SynthConfig(
        dataset=dataset, layout=layout, subjects=3, clips_per_subject=7, frame_size=SMALL
    )
    result = write_dataset(config, tmp_path, workers=1)
    assert result.frames == 3 * 7 * 2 and result.annotation == annotation_path(dataset, tmp_path)
    table = load_dataset(dataset, tmp_path, layout=layout)  # strict: raises on a missing frame
    classes = config.class_labels()
    assert len(table) == 21 and table.samples["subject"].nunique() == 3
    assert table.report.layout == config.layout and table.report.issues == []
    counts = table.class_counts()
    assert set(counts) == set(table.class_names)
    per_class = [counts[name] for name in table.class_names]
    assert sum(per_class) == 21 and max(per_class) - min(per_class) <= 1
    assert set(table.samples["emotion"]) == set(classes)
    for sample in table.samples.to_dict("records"):
        for which in ("onset_path", "apex_path"):
            image = cv2.imread(sample[which], cv2.IMREAD_UNCHANGED)
            assert image.shape[:2] == (96, 128)
            assert (image.ndim == 2) == grey
        assert sample["action_units"]  # the AU column is written too


def test_full_clips_write_every_frame_onset_to_offset(tmp_path):
    config = SynthConfig(dataset="mmew", subjects=2, clips_per_subject=3, frame_size=SMALL)
    result = write_dataset(config.replace(full_clips=True), tmp_path, workers=1)
    table = load_dataset("mmew", tmp_path)
    expected = int((table.samples["offset"] - table.samples["onset"] + 1).sum())
    assert result.frames == expected
    for sample in table.samples.to_dict("records"):
        for n in range(sample["onset"], sample["offset"] + 1):
            assert frame_path(sample, n).is_file()


def test_refuses_to_write_over_a_copy_unless_told(tmp_path):
    config = SynthConfig(subjects=1, clips_per_subject=1, frame_size=SMALL)
    write_dataset(config, tmp_path, workers=1)
    with pytest.raises(DataError, match="already exists.*overwrite"):
        write_dataset(config, tmp_path, workers=1)
    again = write_dataset(config, tmp_path, workers=1, overwrite=True)
    assert again.frames == 2


def test_render_for_a_written_sheet_follows_the_loader_policies(tmp_path):
    """Mode (b) on a hand-made CASME II sheet with quirks: the "/" apex resolves to the
    middle frame and rows the 5-class protocol drops still get frames (3-class keeps them)."""
    rows = [
        dict(subject="sub01", clip="EP01_01", onset=10, apex="/", offset=30, emotion="happiness"),
        dict(subject="sub01", clip="EP01_02", onset=40, apex=40, offset=60, emotion="others"),
        dict(subject="sub02", clip="EP02_01", onset=5, apex=9, offset=20, emotion="fear"),
    ]
    sheet = write_annotation("casme2", pd.DataFrame(rows), tmp_path / "sheet" / "coding.xlsx")
    config = SynthConfig(dataset="casme2", layout="cropped", frame_size=SMALL)
    result = write_for_annotation(sheet, tmp_path / "copy", config, workers=1)
    assert result.frames == 2 + 1 + 2 and not result.generated_annotation
    assert not annotation_path("casme2", tmp_path / "copy").exists()  # nothing copied
    five = load_dataset("casme2", tmp_path / "copy", annotation=sheet)
    assert five.samples["apex"].tolist() == [20, 40]
    three = load_dataset("casme2", tmp_path / "copy", protocol="3class", annotation=sheet)
    assert three.samples["emotion"].tolist() == ["happiness", "fear"]
    folder = Path(tmp_path / "copy" / get_adapter("casme2").layouts[1].folder)
    assert (folder / "sub01" / "EP01_01" / "reg_img20.jpg").is_file()


def test_max_difference_policy_gets_whole_clips(tmp_path):

    rows = [dict(subject="6", clip="006_1_1", onset=100, apex=90, offset=140, emotion="Anger")]
    sheet = write_annotation("samm", pd.DataFrame(rows), tmp_path / "samm.xlsx")
    policies = Policies(apex_out_of_range="max_difference")
    config = SynthConfig(dataset="samm", frame_size=SMALL)
    result = write_for_annotation(sheet, tmp_path / "copy", config, policies, workers=1)
    assert result.frames == 41
    table = load_dataset("samm", tmp_path / "copy", annotation=sheet, policies=policies)
    assert 100 < int(table.samples["apex"].iloc[0]) < 140


def test_clips_with_several_expressions_share_their_frames(tmp_path):
    """CAS(ME)3 keys samples by onset: two rows of one clip are two expressions of one
    video, rendered into the same folder."""
    rows = [
        dict(subject="spNO.1", clip="a", onset=10, apex=13, offset=18, emotion="happy"),
        dict(subject="spNO.1", clip="a", onset=40, apex=44, offset=50, emotion="Others"),
    ]
    sheet = write_annotation(
        "casme3", pd.DataFrame(rows), tmp_path / "label.xlsx", emotion_style="verbatim"
    )
    config = SynthConfig(dataset="casme3", frame_size=SMALL)
    plan = plan_from_annotation(sheet, config)
    assert len(plan.clips) == 1 and len(plan.clips[0].events) == 2
    assert plan.clips[0].frames == (10, 13, 40, 44)
    write_for_annotation(sheet, tmp_path / "copy", config, workers=1)
    table = load_dataset("casme3", tmp_path / "copy", annotation=sheet)
    assert table.samples["key"].tolist() == ["casme3/spNO.1/a/10", "casme3/spNO.1/a/40"]
    assert table.samples["quirks"].tolist() == ["", "label_spelling"]


def test_an_interrupted_write_leaves_no_partial_frame(tmp_path, monkeypatch):
    import numpy as np

    from tsfmicro import fileio
    from tsfmicro.synth import worker

    def fail(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", fail)  # write_jpeg renames through fileio
    target = tmp_path / "clip" / "img1.jpg"
    with pytest.raises(OSError, match="disk full"):
        worker.write_jpeg(target, np.zeros((8, 8, 3), np.uint8), 90)
    assert list(target.parent.iterdir()) == []  # neither the frame nor a temporary file
