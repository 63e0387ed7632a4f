"""Square crop geometry: from a face box to an integer square, and from a square to pixels.

Rules (see docs/faces.md):
- The square is centred on the face box centre; its side is the box's longer
  side times (1 + 2 * margin), rounded to whole pixels, and its corner is
  rounded too, so every frame of a sample is cut on exactly the same pixel grid.
- Where the square leaves the frame it is padded, never shifted or shrunk, so
  the face keeps its position and scale: "constant" fills black, "edge"
  repeats the nearest border pixel.
- Resizing uses area averaging when shrinking and bilinear when enlarging.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from tsfmicro.faces.config import PadMode


class Square(NamedTuple):
    """An axis-aligned square in frame pixels: columns x0..x0+side-1, rows y0..y0+side-1."""

    x0: int
    y0: int
    side: int


def _round_half_up(value: float) -> int:
    """Round to the nearest integer, halves upwards (independent of banker's rounding)."""
    return int(math.floor(value + 0.5))


def square_around_box(box: np.ndarray | tuple[float, ...], margin: float) -> Square:
    """Square centred on `box` (x1, y1, x2, y2) whose side is its longer side * (1 + 2*margin)."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    side = max(1, _round_half_up(max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)))
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    return Square(_round_half_up(cx - side / 2.0), _round_half_up(cy - side / 2.0), side)


def centre_square(height: int, width: int) -> Square:
    """The largest square centred in a height x width frame (the no-face fallback)."""
    side = min(height, width)
    return Square((width - side) // 2, (height - side) // 2, side)


def crop_square(image: np.ndarray, square: Square, size: int, pad_mode: PadMode) -> np.ndarray:
    """Cut `square` out of an (H, W, 3) image, pad outside the frame, resize to (size, size, 3)."""
    if pad_mode == "edge":
        patch = _crop_edge(image, square)
    else:
        patch = _crop_constant(image, square)
    if square.side == size:
        return patch
    interpolation = cv2.INTER_AREA if square.side > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interpolation)


def _crop_constant(image: np.ndarray, square: Square) -> np.ndarray:
    """Crop with zeros wherever the square lies outside the image."""
    height, width = image.shape[:2]
    x0, y0, side = square
    patch = np.zeros((side, side, image.shape[2]), dtype=image.dtype)
    xa, xb = max(x0, 0), min(x0 + side, width)
    ya, yb = max(y0, 0), min(y0 + side, height)
    if xa < xb and ya < yb:
        patch[ya - y0 : yb - y0, xa - x0 : xb - x0] = image[ya:yb, xa:xb]
    return patch


def _crop_edge(image: np.ndarray, square: Square) -> np.ndarray:
    """Crop with the nearest border pixel repeated wherever the square lies outside the image."""
    height, width = image.shape[:2]
    x0, y0, side = square
    rows = np.clip(np.arange(y0, y0 + side), 0, height - 1)
    cols = np.clip(np.arange(x0, x0 + side), 0, width - 1)
    return np.ascontiguousarray(image[np.ix_(rows, cols)])


def points_in_crop(points: np.ndarray, square: Square, size: int) -> np.ndarray:
    """Map (..., 2) frame coordinates (x, y) into the coordinates of the resized crop.

    Uses the pixel-centre convention of cv2.resize: a pixel centre x maps to
    (x - x0 + 0.5) * size / side - 0.5.
    """
    offset = np.array([square.x0, square.y0], dtype=np.float64)
    scale = size / square.side
    return ((np.asarray(points, dtype=np.float64) - offset + 0.5) * scale - 0.5).astype(np.float32)
