"""`tsfmicro train` and `predict` on frames too small for face detection, and a model folder
written on a full disk: clear one-line errors naming the file, before any training or
detection, and nothing earlier lost."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from full_disk import fill_disk, leftovers

from tsfmicro.cli import main
from tsfmicro.config import preset
from tsfmicro.datasets.writers import frame_file
from tsfmicro.errors import InputError
from tsfmicro.faces import FaceCropConfig
from tsfmicro.inference import CONFIG_FILE, WEIGHTS_FILE, save_model

ROWS = [
    dict(subject=f"sub0{s}", clip=f"EP0{s}_0{c}", onset=10, apex=12, offset=14, emotion=e)
    for s in (1, 2)
    for c, e in ((1, "happiness"), (2, "disgust"))
]


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"tsfmicro {command}: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_train_refuses_a_frame_too_small_before_training(ds_write_copy, tmp_path, capsys):
    root = ds_write_copy("casme2", ROWS)
    tiny = frame_file("casme2", root, "sub02", "EP02_01", 10)  # an onset frame
    cv2.imwrite(str(tiny), np.full((1, 1, 3), 90, np.uint8))
    out, cache = tmp_path / "run", tmp_path / "cache"
    code = main(["train", "--dataset", "casme2", "--root", str(root), "--preset", "micro",
                 "--epochs", "1", "--cache-dir", str(cache), "--out", str(out),
                 "--quiet"])  # fmt: skip
    assert code == 2
    err = one_line_error(capsys, "train")
    assert f"frame {tiny} is 1x1 pixels: face detection needs at least 20 pixels" in err
    assert not out.exists() or list(out.iterdir()) == []  # no result written
    assert not list(cache.rglob("frames.npy"))  # no cache entry
    assert tiny.stat().st_size > 0


@pytest.fixture
def model_dir(tmp_path):
    from tsfmicro.models import build_model

    cfg = preset("micro").replace(num_classes=3)
    face = FaceCropConfig(size=cfg.image_size)
    return save_model(build_model(cfg, seed=0), tmp_path / "model", ("a", "b", "c"), face)


def write_image(path, shape) -> str:
    cv2.imwrite(str(path), np.full((*shape, 3), 100, np.uint8))
    return str(path)


def test_predict_refuses_a_tiny_onset_naming_it(model_dir, tmp_path, capsys):
    onset = write_image(tmp_path / "onset.png", (1, 1))
    apex = write_image(tmp_path / "apex.png", (1, 1))
    assert main(["predict", "--model", str(model_dir), "--onset", onset, "--apex", apex]) == 2
    err = one_line_error(capsys, "predict")
    assert f"frame {onset} is 1x1 pixels: face detection needs at least 20" in err


def test_predict_refuses_an_apex_of_another_size_naming_both(model_dir, tmp_path, capsys):
    onset = write_image(tmp_path / "onset.png", (48, 64))
    apex = write_image(tmp_path / "apex.png", (1, 1))
    assert main(["predict", "--model", str(model_dir), "--onset", onset, "--apex", apex]) == 2
    err = one_line_error(capsys, "predict")
    assert f"frame {apex} is 1x1 but the onset {onset} is 64x48" in err


def test_predict_refuses_a_clip_whose_first_frame_is_tiny(model_dir, tmp_path, capsys):
    clip = tmp_path / "clip"
    clip.mkdir()
    first = write_image(clip / "img1.png", (8, 8))
    write_image(clip / "img2.png", (8, 8))
    assert main(["predict", "--model", str(model_dir), "--clip", str(clip)]) == 2
    assert f"frame {first} is 8x8 pixels" in one_line_error(capsys, "predict")


def test_a_model_folder_saved_on_a_full_disk_keeps_the_old_model(model_dir, monkeypatch):
    from tsfmicro.inference import Predictor
    from tsfmicro.models import build_model

    before = {name: (model_dir / name).read_bytes() for name in (WEIGHTS_FILE, CONFIG_FILE)}
    cfg = preset("micro").replace(num_classes=3)
    fill_disk(monkeypatch, model_dir, room=4096)  # the weights are larger
    with pytest.raises(InputError) as caught:
        save_model(build_model(cfg, seed=1), model_dir, ("a", "b", "c"), FaceCropConfig())
    message = str(caught.value)
    assert message.startswith(f"cannot write {model_dir / WEIGHTS_FILE}: No space left")
    assert "\n" not in message
    assert {name: (model_dir / name).read_bytes() for name in before} == before
    assert leftovers(model_dir) == []
    monkeypatch.undo()
    assert Predictor.load(model_dir).class_names == ("a", "b", "c")
