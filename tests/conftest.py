"""Shared fixtures. Face-preprocessing fixtures are prefixed `faces_`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest


@pytest.fixture(scope="session")
def faces_lfw() -> np.ndarray:
    """The 100 real 25x25 grayscale LFW face crops shipped with scikit-image, as uint8."""
    from skimage import data

    faces = data.lfw_subset()[:100]  # the first 100 are faces, the rest are not
    return np.round(faces * 255).astype(np.uint8)


@pytest.fixture(scope="session")
def faces_make_scene(faces_lfw: np.ndarray) -> Callable[..., tuple[np.ndarray, tuple[int, ...]]]:
    """Factory: paste an upscaled LFW face onto a smooth textured background.

    make(face=0, side=160, x=80, y=40, height=240, width=320, seed=0) returns the
    (height, width, 3) uint8 RGB scene and the pasted square (x, y, side).
    """

    def make(
        face: int = 0,
        side: int = 160,
        x: int = 80,
        y: int = 40,
        height: int = 240,
        width: int = 320,
        seed: int = 0,
    ) -> tuple[np.ndarray, tuple[int, int, int]]:
        scene = _background(height, width, seed)
        patch = cv2.resize(faces_lfw[face], (side, side), interpolation=cv2.INTER_CUBIC)
        scene[y : y + side, x : x + side] = patch[..., None]
        return scene, (x, y, side)

    return make


@pytest.fixture(scope="session")
def faces_background() -> Callable[[int, int, int], np.ndarray]:
    """Factory: background(height, width, seed) -> a face-free (height, width, 3) uint8 scene."""
    return _background


def _background(height: int, width: int, seed: int) -> np.ndarray:
    """A blurred-noise colour background with a gentle gradient, (height, width, 3) uint8."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 25.0, (height, width, 3)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 4)
    ramp = np.linspace(90, 150, width, dtype=np.float32)[None, :, None]
    tint = np.array([1.0, 0.95, 0.9], dtype=np.float32)
    return np.clip(ramp * tint + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def faces_write(tmp_path: Path) -> Callable[[str, np.ndarray], str]:
    """Factory: write an RGB (or 2-D grayscale) uint8 image under tmp_path; return its path."""

    def write(name: str, image: np.ndarray) -> str:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(path), bgr):
            raise OSError(f"cv2 could not write {path}")
        return str(path)

    return write
