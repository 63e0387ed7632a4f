"""On-disk cache of face crops: keys, atomic shards and entries, loading.

Layout under the caller's cache directory (see docs/faces.md):

    <cache_dir>/faces/v<FORMAT_VERSION>/
        <entry key>/            a committed entry (appears in one atomic rename)
            frames.npy          (T, size, size, 3) uint8 RGB, memory-mapped on load
            index.npz           offsets (N+1,) and the per-sample arrays of FaceCrops
            meta.json           keys, frame paths, config, fallback keys, format version
        shards/<shard key>.npz  one chunk of samples, each written atomically;
                                the work of a killed run, deleted once an entry commits
        .tmp~...                in-progress writes; never read, removed when stale

Every temporary file or directory lives in the same directory as its final
name and becomes visible only through `os.replace`, so a run killed at any
point leaves either nothing or a complete shard/entry behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import socket
import uuid
import zipfile
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

import tsfmicro
from tsfmicro.errors import DataError
from tsfmicro.faces.config import FaceCropConfig
from tsfmicro.faces.result import SAMPLE_ARRAYS, FaceCrops, PreprocessStats
from tsfmicro.fileio import write_errors
from tsfmicro.runinfo import pid_alive

FORMAT_VERSION = 1
CACHE_ENV_VAR = "TSFMICRO_CACHE"
_TEMP_PREFIX = ".tmp~"

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """$TSFMICRO_CACHE, else $XDG_CACHE_HOME/tsfmicro, else ~/.cache/tsfmicro."""
    explicit = os.environ.get(CACHE_ENV_VAR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tsfmicro"


def faces_dir(cache_dir: str | os.PathLike[str]) -> Path:
    """The folder holding this format version's face-crop entries and shards."""
    return Path(cache_dir) / "faces" / f"v{FORMAT_VERSION}"


class Fingerprinter:
    """Identity of a file for the cache key, memoised per path within one call.

    "stat" uses (size, mtime in ns): cheap, misses a rewrite that keeps both.
    "content" uses a blake2b digest of the bytes: reads every file once.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._memo: dict[str, Any] = {}

    def __call__(self, path: str) -> Any:
        if path not in self._memo:
            self._memo[path] = self._compute(path)
        return self._memo[path]

    def _compute(self, path: str) -> Any:
        try:
            if self.mode == "content":
                with open(path, "rb") as handle:
                    return hashlib.file_digest(handle, "blake2b").hexdigest()[:32]
            stat = os.stat(path)
        except FileNotFoundError:
            raise DataError(f"frame file not found: {path}") from None
        except OSError as exc:
            raise DataError(f"cannot read frame {path}: {exc.strerror or exc}") from exc
        return [stat.st_size, stat.st_mtime_ns]


def sample_digest(
    key: str, onset_path: str, frame_paths: Sequence[str], fingerprint: Fingerprinter
) -> str:
    """Hash of one sample's key, its onset and frame paths and their file fingerprints."""
    record = [
        key,
        [onset_path, fingerprint(onset_path)],
        [[path, fingerprint(path)] for path in frame_paths],
    ]
    return hashlib.sha256(json.dumps(record).encode()).hexdigest()


def combined_key(config: FaceCropConfig, digests: Iterable[str], kind: str) -> str:
    """Key of an entry or a shard: format version, kind, result-affecting config, sample digests."""
    header = {"format": FORMAT_VERSION, "kind": kind, "config": config.key_fields()}
    hasher = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for digest in digests:
        hasher.update(digest.encode())
    return hasher.hexdigest()[:32]


def _temp_path(final: Path) -> Path:
    """A unique temporary name beside `final`, recording host and pid for stale cleanup.

    It starts with a dot and ends in ".part", so neither listing nor globbing
    for the final names (`*.npz`) picks it up.
    """
    tag = f"{socket.gethostname()}~{os.getpid()}~{uuid.uuid4().hex[:8]}"
    return final.parent / f"{_TEMP_PREFIX}{tag}~{final.name}.part"


def _fsync_dir(directory: Path) -> None:
    """Flush a directory's entries to disk (so a rename survives a power cut)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(final: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file through `write(handle)` into a temp file, then os.replace it onto `final`."""
    temp = _temp_path(final)
    try:
        with write_errors(final), open(temp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)


def remove_stale_temps(directory: Path) -> int:
    """Delete temp files/dirs left by dead processes of this host; return how many."""
    if not directory.is_dir():
        return 0
    host = socket.gethostname()
    removed = 0
    for item in directory.iterdir():
        if not item.name.startswith(_TEMP_PREFIX):
            continue
        parts = item.name[len(_TEMP_PREFIX) :].split("~")
        if len(parts) < 4 or parts[0] != host or not parts[1].isdigit():
            continue
        if pid_alive(int(parts[1])):
            continue
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)
        removed += 1
    return removed


def save_shard(path: Path, keys: Sequence[str], arrays: dict[str, np.ndarray]) -> None:
    """Atomically store one chunk: its keys, (T_c, S, S, 3) frames, counts and sample arrays."""
    with write_errors(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"keys": np.asarray(list(keys), dtype=str), **arrays}
    atomic_write(path, lambda handle: np.savez(handle, **payload))


def shard_matches(path: Path, keys: Sequence[str]) -> bool:
    """Whether a readable shard for exactly these sample keys exists at `path`."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive["keys"].tolist() == list(keys)
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("ignoring unreadable face-crop shard %s (%s)", path, exc)
        return False


def load_shard(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Read a whole shard, checking that it holds the expected keys."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"face-crop shard {path} cannot be read: {exc}") from exc
    if arrays["keys"].tolist() != list(keys):
        raise DataError(f"face-crop shard {path} holds other samples than expected")
    return arrays


def commit_entry(
    root: Path,
    entry_key: str,
    shards: Sequence[tuple[Path, Sequence[str]]],
    total_frames: int,
    meta: dict[str, Any],
) -> Path:
    """Assemble shards into root/<entry_key>/ and publish it with one atomic rename.

    If another process published the same entry first, ours is discarded and
    theirs is kept (both hold the same crops).
    """
    final = root / entry_key
    temp = _temp_path(final)
    with write_errors(final):
        temp.mkdir()
    try:
        with write_errors(final):
            index = _assemble(temp, shards, total_frames)
            np.savez(temp / "index.npz", **index)
            (temp / "meta.json").write_text(json.dumps(meta, indent=1))
            for name in ("frames.npy", "index.npz", "meta.json"):
                _fsync_file(temp / name)
            _fsync_dir(temp)
        try:
            os.replace(temp, final)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not final.is_dir():
                raise
            shutil.rmtree(temp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    _fsync_dir(root)
    return final


def _assemble(
    directory: Path, shards: Sequence[tuple[Path, Sequence[str]]], total_frames: int
) -> dict[str, np.ndarray]:
    """Copy the shards' frames into directory/frames.npy; return the concatenated index arrays."""
    frames = None
    position = 0
    parts: dict[str, list[np.ndarray]] = {name: [] for name in (*SAMPLE_ARRAYS, "counts")}
    for path, keys in shards:
        arrays = load_shard(path, keys)
        chunk = arrays["frames"]
        if frames is None:
            frames = np.lib.format.open_memmap(
                directory / "frames.npy",
                mode="w+",
                dtype=np.uint8,
                shape=(total_frames, *chunk.shape[1:]),
            )
        frames[position : position + len(chunk)] = chunk
        position += len(chunk)
        for name in parts:
            parts[name].append(arrays[name])
    if frames is None or position != total_frames:
        raise DataError(f"face-crop shards hold {position} frames, expected {total_frames}")
    frames.flush()
    del frames
    index = {name: np.concatenate(values) for name, values in parts.items()}
    counts = index.pop("counts")
    index["offsets"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return index


def _fsync_file(path: Path) -> None:
    """Flush one file's data to disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def entry_meta(
    entry_key: str,
    config: FaceCropConfig,
    keys: Sequence[str],
    onset_paths: Sequence[str],
    frame_paths: Sequence[Sequence[str]],
) -> dict[str, Any]:
    """The meta.json of an entry: enough to know what it holds and how it was made."""
    return {
        "format": FORMAT_VERSION,
        "key": entry_key,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "tsfmicro_version": tsfmicro.__version__,
        "layout": "frames.npy (T, size, size, 3) uint8 RGB; sample i = offsets[i]:offsets[i+1]",
        "config": config.to_dict(),
        "keys": list(keys),
        "onset_paths": list(onset_paths),
        "frame_paths": [list(paths) for paths in frame_paths],
    }


def discard_entry(entry: Path) -> None:
    """Move a bad entry out of sight with one rename, then delete it."""
    hidden = _temp_path(entry)
    os.replace(entry, hidden)
    shutil.rmtree(hidden, ignore_errors=True)


def load_entry(path: Path, stats: PreprocessStats | None = None) -> FaceCrops:
    """Open a committed entry: frames memory-mapped read-only, the rest read into memory.

    Raises DataError when the entry is malformed or from another format version.
    """
    try:
        meta = json.loads((path / "meta.json").read_text())
        with np.load(path / "index.npz", allow_pickle=False) as archive:
            index = {name: archive[name] for name in archive.files}
        frames = np.load(path / "frames.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"face-crop cache entry {path} cannot be read: {exc}") from exc
    if meta.get("format") != FORMAT_VERSION:
        raise DataError(f"face-crop cache entry {path} has format {meta.get('format')!r}")
    config = FaceCropConfig.from_dict(meta["config"])
    crops = FaceCrops(
        keys=tuple(meta["keys"]),
        frames=frames,
        offsets=index["offsets"],
        boxes=index["boxes"],
        probs=index["probs"],
        landmarks=index["landmarks"],
        squares=index["squares"],
        fallback=index["fallback"],
        frame_shapes=index["frame_shapes"],
        config=config,
        cache_key=meta["key"],
        path=path,
        stats=stats or PreprocessStats(True, 0, 0, 0, 0, 0.0),
    )
    _validate(crops)
    return crops


def _validate(crops: FaceCrops) -> None:
    """Check that an entry's arrays agree with each other; DataError otherwise."""
    n = len(crops.keys)
    size = crops.config.size
    problems = []
    if crops.frames.dtype != np.uint8 or crops.frames.shape[1:] != (size, size, 3):
        problems.append(f"frames are {crops.frames.dtype} {crops.frames.shape}")
    if crops.offsets.shape != (n + 1,) or crops.offsets[-1] != len(crops.frames):
        problems.append(f"offsets {crops.offsets.shape} do not cover {len(crops.frames)} frames")
    for name in SAMPLE_ARRAYS:
        if len(getattr(crops, name)) != n:
            problems.append(f"{name} has {len(getattr(crops, name))} rows for {n} samples")
    if problems:
        raise DataError(
            f"face-crop cache entry {crops.path} is inconsistent: {'; '.join(problems)}"
        )
