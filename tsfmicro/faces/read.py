"""Reading frames from disk as RGB arrays.

The bytes are read with numpy and decoded with `cv2.imdecode(..., IMREAD_COLOR)`,
which is what `cv2.imread` does internally, but it also works for paths that
are not ASCII and lets a read failure and a decode failure carry different
messages. IMREAD_COLOR turns grayscale sources into three equal channels.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from tsfmicro.errors import DataError


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file into an (H, W, 3) uint8 RGB array.

    Raises DataError naming the file when it is missing, unreadable, empty or
    cannot be decoded (corrupt or truncated JPEG, unsupported format).
    """
    name = os.fspath(path)
    try:
        data = np.fromfile(name, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read frame {name}: {exc.strerror or exc}") from exc
    if data.size == 0:
        raise DataError(f"frame {name} is empty (0 bytes)")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"frame {name} could not be decoded: corrupt, truncated or not an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
