"""Crop geometry, config and frame reading: fast checks without the detector."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tsfmicro.errors import ConfigError, DataError
from tsfmicro.faces import (
    FaceCropConfig,
    Square,
    centre_square,
    crop_square,
    square_around_box,
)
from tsfmicro.faces.crop import points_in_crop
from tsfmicro.fileio import read_frame


def test_square_is_centred_on_the_box_and_grows_by_the_margin():
    box = (100.0, 50.0, 160.0, 130.0)  # 60 wide, 80 tall, centre (130, 90)
    square = square_around_box(box, margin=0.25)
    assert square.side == 120  # longer side 80 * (1 + 2 * 0.25)
    assert (square.x0 + square.side / 2, square.y0 + square.side / 2) == (130.0, 90.0)
    assert square_around_box(box, margin=0.0) == Square(90, 50, 80)


def test_centre_square_is_the_largest_centred_square():
    assert centre_square(480, 640) == Square(80, 0, 480)
    assert centre_square(300, 200) == Square(0, 50, 200)


def test_crop_inside_the_frame_is_an_exact_copy_when_no_resize_is_needed():
    image = np.random.default_rng(0).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    crop = crop_square(image, Square(10, 5, 20), size=20, pad_mode="constant")
    np.testing.assert_array_equal(crop, image[5:25, 10:30])


@pytest.mark.parametrize("pad_mode", ["constant", "edge"])
def test_square_past_the_border_is_padded_not_shifted(pad_mode):
    image = np.random.default_rng(1).integers(1, 256, (40, 40, 3), dtype=np.uint8)
    crop = crop_square(image, Square(-10, -5, 30), size=30, pad_mode=pad_mode)
    # The part inside the frame stays where the square puts it.
    np.testing.assert_array_equal(crop[5:, 10:], image[:25, :20])
    if pad_mode == "constant":
        assert (crop[:5] == 0).all() and (crop[:, :10] == 0).all()
    else:
        np.testing.assert_array_equal(crop[:5, 10:], np.repeat(image[:1, :20], 5, axis=0))
        np.testing.assert_array_equal(crop[5:, :10], np.repeat(image[:25, :1], 10, axis=1))


def test_crop_is_resized_to_the_requested_size():
    image = np.full((100, 100, 3), 7, dtype=np.uint8)
    for size in (16, 64, 224):
        crop = crop_square(image, Square(10, 10, 64), size=size, pad_mode="constant")
        assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
        assert (crop == 7).all()


def test_points_map_into_the_resized_crop():
    square = Square(100, 40, 200)
    corners = np.array([[99.5, 39.5], [299.5, 239.5]])  # outer pixel edges of the square
    np.testing.assert_allclose(points_in_crop(corners, square, 50), [[-0.5, -0.5], [49.5, 49.5]])


def test_config_is_frozen_and_validated():
    config = FaceCropConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.size = 112  # type: ignore[misc]
    with pytest.raises(ConfigError, match="margin"):
        FaceCropConfig(margin=-0.6)
    with pytest.raises(ConfigError, match="thresholds"):
        FaceCropConfig(thresholds=(0.6, 0.7))
    with pytest.raises(ConfigError, match="fallback"):
        FaceCropConfig(fallback="skip")  # type: ignore[arg-type]


def test_config_round_trips_and_key_ignores_execution_fields():
    config = FaceCropConfig(size=112, margin=0.1, thresholds=(0.5, 0.6, 0.7), workers=3)
    assert FaceCropConfig.from_dict(config.to_dict()) == config
    keyed = config.key_fields()
    assert keyed["size"] == 112 and keyed["thresholds"] == [0.5, 0.6, 0.7]
    assert not {"device", "batch_size", "workers", "chunk_size"} & set(keyed)
    assert dataclasses.replace(config, device="cuda:1").key_fields() == keyed
    assert dataclasses.replace(config, margin=0.3).key_fields() != keyed


def test_importing_the_package_loads_no_torch():
    repo = Path(__file__).resolve().parents[3]
    code = (
        "import sys, tsfmicro.faces; "
        "print(tsfmicro.faces.__file__); "
        "print('torch' in sys.modules, 'facenet_pytorch' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    where, loaded = out.stdout.splitlines()
    assert Path(where).is_relative_to(repo)
    assert loaded.split() == ["False", "False"]


def test_read_frame_converts_bgr_and_grayscale(tmp_path):
    rgb = np.zeros((8, 12, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # pure red
    cv2.imwrite(str(tmp_path / "red.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(read_frame(tmp_path / "red.png"), rgb)

    gray = np.arange(96, dtype=np.uint8).reshape(8, 12)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    loaded = read_frame(tmp_path / "gray.png")
    assert loaded.shape == (8, 12, 3)
    for channel in range(3):
        np.testing.assert_array_equal(loaded[..., channel], gray)


def test_read_frame_names_the_file_that_cannot_be_read(tmp_path):
    good = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", good)
    assert ok
    cases = {
        "garbage.jpg": b"this is not a jpeg" * 10,
        "truncated.jpg": encoded.tobytes()[: len(encoded) // 2],
        "empty.jpg": b"",
    }
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(DataError, match=name):
            read_frame(tmp_path / name)
    with pytest.raises(DataError, match="missing.jpg"):
        read_frame(tmp_path / "missing.jpg")
