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
import secrets
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
    return decode_frame(data, path)


def decode_frame(data: bytes, source: str | Path) -> tuple[np.ndarray, bool]:
    """load_frame for an image file's bytes (`source` names them in errors): a JPEG (by its
    start marker) without its end marker, bytes that are no image, or none, is a DataError."""
    if not data:
        raise DataError(f"frame {source} is empty (0 bytes)")
    if data[:2] == b"\xff\xd8" and _JPEG_END not in data[-_JPEG_TAIL_BYTES:]:
        raise DataError(f"frame {source} is a truncated or corrupt JPEG (no end-of-image marker)")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(f"frame {source} is corrupt or not an image (decoding failed)")
    return _to_rgb(source, image)


def read_frame(path: str | Path, grayscale: GrayscalePolicy = "to_rgb") -> np.ndarray:
    """Read a frame as an H x W x 3 uint8 RGB array.

    One-channel frames are replicated to three channels under grayscale="to_rgb"; under
    "error" they raise DataError.
    """
    image, was_gray = load_frame(path)
    if was_gray and grayscale == "error":
        raise DataError(f"frame {path} is grayscale (Policies.grayscale='error')")
    return image


def _to_rgb(path: str | Path, image: np.ndarray) -> tuple[np.ndarray, bool]:
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


# Writing errors a person can act on (free space, quota, permissions, a read-only disk): they
# become one InputError naming the file; any other OSError is a bug or a broken disk, raised as is.
_WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS}
)


def write_error(path: str | Path, exc: OSError) -> InputError | None:
    """The one-line InputError for an OSError met while writing `path`, or None when the
    error is not one of a full disk, a quota, a permission or a read-only file system."""
    if exc.errno not in _WRITE_ERRNOS:
        return None
    reason = exc.strerror or os.strerror(exc.errno)
    hint = " (free some space and run again)" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return InputError(f"cannot write {path}: {reason}{hint}")


@contextlib.contextmanager
def write_errors(path: str | Path) -> Iterator[None]:
    """Turn a full disk, quota or permission error inside the block into write_error's one-line
    InputError naming `path`; anything else passes through unchanged."""
    try:
        yield
    except OSError as exc:
        error = write_error(path, exc)
        if error is None:
            raise
        raise error from exc


def temp_beside(path: str | Path) -> Path:
    """A hidden temporary name in `path`'s folder (so one os.replace moves it into place),
    unique to this process and call: `.NAME.PID.RANDOM.tmp`."""
    final = Path(path)
    return final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def written_whole(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; once the block ends without error the
    temporary file replaces `path` in one step, else it is removed. So a reader (or a rerun
    after a crash) finds the whole old file, the whole new one, or none: never half of one. A
    full disk or a folder that cannot be written to gives an InputError naming the file."""
    final = Path(path)
    temp = temp_beside(final)
    try:
        with write_errors(final):
            yield temp
            os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)


@contextlib.contextmanager
def folder_written_whole(path: str | Path) -> Iterator[Path]:
    """The folder form of written_whole: yield a new temporary folder beside `path` to fill;
    when the block ends without error it takes `path`'s place (an old folder there is moved
    aside first and removed after), else it is removed. A reader never finds a half-filled
    folder under `path`. Errors as in written_whole."""
    import shutil

    final = Path(path)
    temp = temp_beside(final)
    old = temp.with_name(temp.name[: -len(".tmp")] + ".old")
    moved = False
    try:
        with write_errors(final):
            final.parent.mkdir(parents=True, exist_ok=True)
            temp.mkdir()
            yield temp
            if final.exists():
                os.replace(final, old)
                moved = True
            try:
                os.replace(temp, final)
            except BaseException:
                if moved:
                    os.replace(old, final)  # put the old folder back
                    moved = False
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
        if moved:
            shutil.rmtree(old, ignore_errors=True)
