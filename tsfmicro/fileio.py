"""Low-level file I/O shared by the layers above: decoding frame image files, and writing a
file whole or not at all.

Both `tsfmicro.faces` and `tsfmicro.datasets` read frames through this module. It is a
bottom layer: it imports nothing from tsfmicro except `tsfmicro.errors`, so any part of the
library may use it without an import circle.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from tsfmicro.errors import DataError, InputError

# What to do with a one-channel frame: replicate it to RGB, or fail (Policies.grayscale).
GrayscalePolicy = Literal["to_rgb", "error"]

_JPEG_SUFFIXES = (".jpg", ".jpeg")
_JPEG_END = b"\xff\xd9"
# A complete JPEG ends with the end-of-image marker; only trailing padding may follow it.
_JPEG_TAIL_BYTES = 1024


def load_frame(path: str | Path) -> tuple[np.ndarray, bool]:
    """Decode a frame; returns (H x W x 3 uint8 RGB image, whether the file was grayscale).

    Raises DataError naming the file when it is missing, empty, truncated or not an image.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read frame {path}: {exc.strerror or exc}") from exc
    if not data:
        raise DataError(f"frame {path} is empty (0 bytes)")
    if path.suffix.lower() in _JPEG_SUFFIXES and _JPEG_END not in data[-_JPEG_TAIL_BYTES:]:
        raise DataError(f"frame {path} is a truncated or corrupt JPEG (no end-of-image marker)")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(f"frame {path} is corrupt or not an image (decoding failed)")
    return _to_rgb(path, image)


def read_frame(path: str | Path, grayscale: GrayscalePolicy = "to_rgb") -> np.ndarray:
    """Read a frame as an H x W x 3 uint8 RGB array.

    One-channel frames are replicated to three channels under grayscale="to_rgb"; under
    "error" they raise DataError.
    """
    image, was_gray = load_frame(path)
    if was_gray and grayscale == "error":
        raise DataError(f"frame {path} is grayscale (Policies.grayscale='error')")
    return image


def _to_rgb(path: Path, image: np.ndarray) -> tuple[np.ndarray, bool]:
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise DataError(f"frame {path} has pixel type {image.dtype}, expected 8 or 16 bit")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB), True
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB), False
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), False


@contextlib.contextmanager
def written_whole(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; once the block ends without error the
    temporary file replaces `path` in one step, else it is removed. So a reader (or a rerun
    after a crash) finds the whole old file, the whole new one, or none: never half of one. A
    full disk or a folder that cannot be written to gives an InputError naming the file."""
    final = Path(path)
    temp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        yield temp
        os.replace(temp, final)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM):
            raise InputError(f"cannot write {final}: {exc.strerror}") from exc
        raise
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
