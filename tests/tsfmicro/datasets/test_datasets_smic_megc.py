"""SMIC (folders only, no annotation) and the exact MEGC 2019 composite (a shipped list).

Tiny SMIC copies are written here as folders of 8x8 bitmaps; the MEGC 2019 selection is checked
against the real CASME II and SAMM sheets where ../shared is present (skipped elsewhere).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from tsfmicro.cli import main
from tsfmicro.datasets import Policies, inspect_dataset, list_protocols, load_dataset
from tsfmicro.datasets.inspection import published_check
from tsfmicro.datasets.lists import sample_list
from tsfmicro.errors import DataError

CASME2 = "CASME2-coding-20190701.xlsx"
SAMM = "SAMM_Micro_FACS_Codes_v2.xlsx"


def _write_clip(root: Path, subset: str, subject: str, emotion: str, clip: str, frames):
    folder = root / subset / subject / "micro" / emotion / clip
    folder.mkdir(parents=True)
    for n in frames:
        value = 40 if n == frames[0] else 40 + (n - frames[0]) * 3  # last differs most
        cv2.imwrite(str(folder / f"reg_image{n:06d}.bmp"), np.full((8, 8, 3), value, np.uint8))
    return folder


def _smic_from_list(root: Path, subjects: int | None = None) -> None:
    """SMIC-HS clips named as in the MEGC 2019 list (all 164, or the first subjects')."""
    rows = sample_list("megc2019")
    rows = rows[rows["dataset"] == "smic"]
    keep = list(dict.fromkeys(rows["subject"]))[:subjects]
    for row in rows[rows["subject"].isin(keep)].itertuples():
        _write_clip(root, "HS", row.subject, row._4, row.clip, range(100, 105))


def test_smic_clips_classes_and_apex_policies(tmp_path):
    _write_clip(tmp_path, "HS", "s1", "negative", "s1_ne_01", range(30, 41))
    _write_clip(tmp_path, "HS", "s1", "surprise", "s1_sur_01", range(7, 12))
    _write_clip(tmp_path, "HS", "s3", "positive", "s3_po_01", range(500, 503))
    (tmp_path / "HS" / "s2" / "non_micro" / "s2_n1").mkdir(parents=True)  # not read
    (tmp_path / "VIS").mkdir()
    table = load_dataset("smic", tmp_path)
    s = table.samples.set_index("key")
    assert list(s.index) == ["smic/s1/s1_ne_01", "smic/s1/s1_sur_01", "smic/s3/s3_po_01"]
    assert table.class_counts() == {"negative": 1, "positive": 1, "surprise": 1}
    first = s.loc["smic/s1/s1_ne_01"]
    assert (first["onset"], first["apex"], first["offset"]) == (30, 35, 40)  # middle frame
    assert first["apex_path"].endswith("reg_image000035.bmp") and first["label_name"] == "negative"
    assert table.report.issue_counts() == {"unannotated_apex": 3}
    assert table.protocol.id == "smic-hs" and table.report.layout == "hs"
    chosen = load_dataset("smic", tmp_path, policies=Policies(unannotated_apex="max_difference"))
    assert chosen.samples.set_index("key").loc["smic/s1/s1_ne_01", "apex"] == 40
    assert "largest difference" in chosen.report.issues[0].action
    check = published_check(table)
    assert check["expected"]["samples"] == 164 and not check["matches"]


def test_smic_bad_folders_are_named(tmp_path):
    _write_clip(tmp_path, "HS", "s1", "negative", "s1_ne_01", range(3))
    with pytest.raises(DataError, match=r"unknown SMIC subset 'ir'"):
        load_dataset("smic", tmp_path, layout="ir")
    with pytest.raises(DataError, match=r"no SMIC VIS subset \(found HS"):
        load_dataset("smic", tmp_path, protocol="vis")
    with pytest.raises(DataError, match="SMIC has no annotation file"):
        load_dataset("smic", tmp_path, annotation=tmp_path / "x.xlsx")
    _write_clip(tmp_path, "HS", "s1", "negative", "s1 ne 02", range(3))
    _write_clip(tmp_path, "HS", "s2", "positive", "s2_ne_01", range(3))
    (tmp_path / "HS" / "s2" / "micro" / "angry").mkdir()
    with pytest.raises(DataError) as error:
        load_dataset("smic", tmp_path)
    message = str(error.value)
    assert "3 problem(s)" in message
    assert "clip folder name 's1 ne 02' does not parse" in message
    assert "s2_ne_01" in message and "class folder 'positive'" in message
    assert "unknown SMIC class folder 'angry'" in message


def test_smic_list_copy_counts_as_published(tmp_path):
    _smic_from_list(tmp_path)
    for protocol in ("hs", "megc2019"):
        table = inspect_dataset("smic", tmp_path, protocol=protocol, decode=False)
        assert len(table) == 164 and table.samples["subject"].nunique() == 16
        assert table.class_counts() == {"negative": 70, "positive": 51, "surprise": 43}
        assert published_check(table)["matches"] and not table.report.list_missing


def test_megc2019_protocols_listed():
    assert [p.name for p in list_protocols("smic")] == ["hs", "vis", "nir", "3class", "megc2019"]
    assert "megc2019" in [p.name for p in list_protocols("composite")]
    for dataset in ("casme2", "samm"):
        assert "megc2019" in [p.name for p in list_protocols(dataset)]


@pytest.mark.parametrize(
    ("dataset", "sheet", "subjects", "per_class"),
    [
        ("casme2", CASME2, 24, {"negative": 88, "positive": 32, "surprise": 25}),
        ("samm", SAMM, 28, {"negative": 92, "positive": 26, "surprise": 15}),
    ],
)
def test_megc2019_selection_equals_the_list(ds_shared_annotations, dataset, sheet, subjects,
                                            per_class):  # fmt: skip
    table = load_dataset(
        dataset, None, "megc2019", annotation=ds_shared_annotations / sheet, require_frames=False
    )
    listed = sample_list("megc2019")
    listed = listed[listed["dataset"] == dataset]
    ours = table.samples[["subject", "clip", "label_name"]].itertuples(index=False, name=None)
    theirs = listed[["subject", "clip", "class"]].itertuples(index=False, name=None)
    assert set(ours) == set(theirs)
    assert table.samples["subject"].nunique() == subjects and table.class_counts() == per_class
    assert published_check(table)["matches"] and not table.report.list_missing


def test_megc2019_composite_of_the_real_sheets(ds_shared_annotations, tmp_path):
    _smic_from_list(tmp_path / "smic")
    parts = {"casme2": ds_shared_annotations / CASME2, "samm": ds_shared_annotations / SAMM}
    table = load_dataset(
        "composite",
        {"smic": tmp_path / "smic"},
        protocol="megc2019",
        annotation=parts,
        require_frames=False,
    )
    assert len(table) == 442 and table.samples["subject"].nunique() == 68
    assert table.class_counts() == {"negative": 250, "positive": 109, "surprise": 83}
    assert table.samples.groupby("dataset").size().to_dict() == {
        "casme2": 145, "samm": 133, "smic": 164}  # fmt: skip
    assert published_check(table)["matches"]
    with pytest.raises(DataError, match=r"composite megc2019: missing part smic"):
        load_dataset("composite", None, "megc2019", annotation=parts, require_frames=False)


@pytest.mark.slow
def test_megc2019_composite_trains_on_synthetic_parts(tmp_path):
    """One subject of each part, named as in the list, rendered by tsfmicro synth; a micro
    LOSO run reports pooled and per-part scores, and so does a one-trial search."""
    from tsfmicro.datasets.writers import write_annotation
    from tsfmicro.synth import SynthConfig, write_dataset, write_for_annotation

    root = tmp_path / "megc"
    emotion = {
        "casme2": {"negative": "disgust", "positive": "happiness", "surprise": "surprise"},
        "samm": {"negative": "anger", "positive": "happiness", "surprise": "surprise"},
    }
    listed = sample_list("megc2019")
    for dataset, subject in (("casme2", "sub01"), ("samm", "007")):
        rows = listed[(listed["dataset"] == dataset) & (listed["subject"] == subject)].head(3)
        sheet = pd.DataFrame(
            {
                "subject": rows["subject"],
                "clip": rows["clip"],
                "onset": 10,
                "apex": 20,
                "offset": 30,
                "emotion": [emotion[dataset][c] for c in rows["class"]],
            }
        )
        name = CASME2 if dataset == "casme2" else SAMM
        write_annotation(dataset, sheet, root / dataset / name)
        write_for_annotation(root / dataset / name, root / dataset,
                             SynthConfig(dataset=dataset), workers=1)  # fmt: skip
    write_dataset(SynthConfig(dataset="smic", subjects=1, clips_per_subject=3),
                  root / "smic", workers=1)  # fmt: skip
    smic = load_dataset("smic", root / "smic", "megc2019")
    assert len(smic) == 3 and smic.report.list_missing  # the other 161 listed clips
    out = tmp_path / "run"
    code = main(["train", "--dataset", "composite", "--protocol", "megc2019", "--root",
                 str(root), "--preset", "micro", "--epochs", "1", "--bootstrap", "20",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "composite-megc2019" and config["n_samples"] == 9
    parts = json.loads((out / "parts.json").read_text())
    assert set(parts["final"]) == {"casme2", "samm", "smic"}
    assert all(row["n"] == 3 and row["n_subjects"] == 1 for row in parts["final"].values())
    # The same protocol through a search: one trial, its per-part scores on its run and board.
    import subprocess
    import sys

    from mlflow import MlflowClient

    from services import service_env

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "tsfmicro.cli", "search", "--name", "megc", "--dataset",
         "composite", "--protocol", "megc2019", "--root", str(root), "--cache-dir",
         str(tmp_path / "cache"), "--preset", "micro", "--trials", "1", "--set", "epochs=1",
         "--no-register", "--tracking-uri", tracking, "--storage-path", str(tmp_path / "runs"),
         "--quiet"], cwd=tmp_path, env=service_env(), capture_output=True, text=True,
        timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "per part (UF1)" in done.stdout
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("tsfmicro/composite/megc2019")
    (trial,) = client.search_runs([experiment.experiment_id],
                                  filter_string="tags.`tsfmicro.kind` = 'trial'")  # fmt: skip
    assert trial.data.tags["tsfmicro.state"] == "complete"
    for part in ("casme2", "samm", "smic"):
        assert 0 <= trial.data.metrics[f"part/{part}/final_uf1"] <= 1
