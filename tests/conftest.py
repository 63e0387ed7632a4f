"""Shared test set-up, and fixtures: dataset adapters (prefixed ds_), face preprocessing
(prefixed faces_).

`ds_write_copy` writes a tiny fake dataset in a real layout: the annotation through
tsfmicro.datasets.writers and every frame onset..offset as a small JPEG at the path the
writers say the loader expects.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from tsfmicro.datasets.writers import annotation_path, frame_file, write_annotation

# (H, W) of the fake frames: small, yet above the face detector's smallest frame (20 px on the
# shorter side, FaceCropConfig.min_face_size), which `datasets inspect` reports and training refuses
FRAME_SIZE = (24, 32)


def pytest_configure(config: pytest.Config) -> None:
    # Spinning OpenMP threads make small-tensor training many times slower on shared cores
    # (scripts/test.sh sets this too; torch reads it when it first loads).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _shared_dir() -> Path:
    env = os.environ.get("TSFMICRO_SHARED")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def ds_shared_annotations() -> Path:
    """The folder with the real CASME II and SAMM spreadsheets, or skip."""
    folder = _shared_dir() / "annotations"
    needed = ["CASME2-coding-20190701.xlsx", "SAMM_Micro_FACS_Codes_v2.xlsx"]
    if not all((folder / name).is_file() for name in needed):
        pytest.skip(
            f"real annotation spreadsheets not found in {folder} (they are licensed and not "
            "part of the repository; set TSFMICRO_SHARED to the folder holding annotations/)"
        )
    return folder


def ds_frame_image(n: int, gray: bool = False) -> np.ndarray:
    """A small image whose brightness encodes the frame number (tests can tell frames apart)."""
    value = (n * 7) % 200 + 20
    shape = FRAME_SIZE if gray else (*FRAME_SIZE, 3)
    return np.full(shape, value, dtype=np.uint8)


@pytest.fixture
def ds_write_copy(tmp_path: Path) -> Callable[..., Path]:
    """Factory: write a fake copy of `dataset` from sample-like rows; returns its root."""

    def write(
        dataset: str,
        rows: list[dict],
        layout: str | None = None,
        naming: str = "padded",
        gray: bool = False,
        name: str = "copy",
        frames: Callable[[dict], range] | None = None,
        emotion_style: str = "canonical",
    ) -> Path:
        root = tmp_path / name
        table = pd.DataFrame(rows)
        write_annotation(dataset, table, annotation_path(dataset, root), emotion_style)
        for row in rows:
            numbers = frames(row) if frames else _frame_range(row)
            for n in numbers:
                path = frame_file(
                    dataset,
                    root,
                    row["subject"],
                    row["clip"],
                    n,
                    layout=layout,
                    emotion=str(row["emotion"]),
                    naming=naming,
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                assert cv2.imwrite(str(path), ds_frame_image(n, gray))
        return root

    return write


def _frame_range(row: dict) -> range:
    """Frames onset..max(apex, offset) where those are numbers, so quirk rows have files."""
    numbers = [v for v in (row["onset"], row["apex"], row["offset"]) if isinstance(v, int)]
    return range(min(numbers), max(numbers) + 1)


# Face-preprocessing fixtures.


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


# Dashboard fixtures (prefixed dash_) live in dashboard_support.py; registered here so that the
# session-scoped search runs once for every dashboard test module.
from dashboard_support import dash_datasets_store, dash_nested_store, dash_store  # noqa: E402, F401
