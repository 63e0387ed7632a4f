"""A full disk for tests: files opened for writing under one folder take a few bytes in all,
then every write fails with ENOSPC after writing what still fitted, as a real full disk
does (the file is left holding part of what was written).

    fill_disk(monkeypatch, tmp_path / "out", room=100)

Only writes through Python's `open` (pathlib, zipfile, numpy's savez, torch.save into an open
file, openpyxl) are caught; writes by C code to a file name it opens itself are not.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path
from typing import Any

import pytest

WRITE_MODES = ("w", "a", "x", "+")


class _Room:
    def __init__(self, size: int) -> None:
        self.left = size
        self.refused = 0  # writes refused so far


class _FillingFile:
    """A file object whose writes stop with ENOSPC once the shared room is used up."""

    def __init__(self, handle: Any, room: _Room) -> None:
        self._handle = handle
        self._room = room

    def write(self, data: Any) -> int:
        if len(data) <= self._room.left:
            self._room.left -= len(data)
            return self._handle.write(data)
        fits = data[: self._room.left]
        self._room.left = 0
        self._room.refused += 1
        if len(fits):
            self._handle.write(fits)
            self._handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self) -> _FillingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()

    def __iter__(self) -> Any:
        return iter(self._handle)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def fill_disk(monkeypatch: pytest.MonkeyPatch, under: Path, room: int = 0) -> _Room:
    """From now on (until the test ends), files opened for writing at or below `under` share
    `room` bytes; returns the room (its `refused` counts the writes that failed)."""
    real_open = io.open
    folder = os.path.abspath(under)
    shared = _Room(room)

    def opening(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        if isinstance(file, int) or not any(m in mode for m in WRITE_MODES):
            return handle
        path = os.path.abspath(os.fspath(file))
        if path == folder or path.startswith(folder + os.sep):
            return _FillingFile(handle, shared)
        return handle

    monkeypatch.setattr(builtins, "open", opening)
    monkeypatch.setattr(io, "open", opening)
    return shared


def leftovers(folder: Path) -> list[Path]:
    """Temporary files and folders written beside their final names (hidden, *.tmp, *.part,
    *.old) anywhere under `folder`: what an interrupted write must not leave behind."""
    found = []
    for path in folder.rglob("*"):
        name = path.name
        if name.endswith((".tmp", ".part", ".old")) or ".tmp~" in name or name.startswith(".tmp"):
            found.append(path)
    return sorted(found)
