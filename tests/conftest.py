"""Shared test set-up, and fixtures for the dataset adapter tests (prefixed ds_).

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

FRAME_SIZE = (12, 16)  # (H, W) of the fake frames


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
