"""preprocess_faces: sample table in, cached face crops out.

The work is cut into chunks of `config.chunk_size` samples. For each chunk the
onset frames are decoded in a thread pool (while MTCNN works on the previous
chunk), MTCNN runs on them in batches, every frame of each sample is cropped
with its onset's square, and the chunk is committed as one atomic shard. When
all shards exist they are assembled into a cache entry, also committed
atomically. A killed run therefore keeps its finished chunks, and a rerun only
computes the rest.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from tsfmicro.errors import DataError
from tsfmicro.faces import cache
from tsfmicro.faces.config import FaceCropConfig
from tsfmicro.faces.crop import Square, centre_square, crop_square, square_around_box
from tsfmicro.faces.detect import detect_faces, frame_size_problem
from tsfmicro.faces.result import FaceCrops, PreprocessStats
from tsfmicro.fileio import read_frame, write_errors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplePlan:
    """One sample to crop: where its onset is, which frames to crop, and its cache digest."""

    key: str
    onset_path: str
    frame_paths: tuple[str, ...]
    digest: str


def plan_samples(samples: pd.DataFrame, config: FaceCropConfig) -> list[SamplePlan]:
    """Read the sample table's `key`, `onset_path` and frame columns into plans.

    onset_apex mode uses `apex_path`; clip mode uses the list-valued
    `config.clip_column` (resampled to `config.clip_length` frames when set).
    """
    frame_column = "apex_path" if config.frames == "onset_apex" else config.clip_column
    missing = [c for c in ("key", "onset_path", frame_column) if c not in samples.columns]
    if missing:
        raise DataError(f"sample table lacks column(s) {missing}; it has {list(samples.columns)}")
    if len(samples) == 0:
        raise DataError("sample table is empty: no faces to crop")
    keys = [_text(value, "key", row) for row, value in enumerate(samples["key"])]
    duplicated = sorted(key for key, count in Counter(keys).items() if count > 1)
    if duplicated:
        raise DataError(f"sample keys must be unique; repeated: {duplicated[:10]}")

    fingerprint = cache.Fingerprinter(config.fingerprint)
    plans = []
    for row, (key, onset, frames) in enumerate(
        zip(keys, samples["onset_path"], samples[frame_column], strict=True)
    ):
        onset_path = os.path.abspath(_text(onset, "onset_path", row))
        listed = _frame_list(frames, onset_path, config, row)
        frame_paths = tuple(os.path.abspath(path) for path in listed)
        digest = cache.sample_digest(key, onset_path, frame_paths, fingerprint)
        plans.append(SamplePlan(key, onset_path, frame_paths, digest))
    return plans


def _text(value: object, column: str, row: int) -> str:
    """A non-empty string cell, or DataError naming the column and row."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise DataError(
            f"sample table row {row}: {column} must be a non-empty string, got {value!r}"
        )
    return value


def _frame_list(cell: object, onset_path: str, config: FaceCropConfig, row: int) -> list[str]:
    """The frames to crop for one sample (table row `row`), in output order."""
    if config.frames == "onset_apex":
        return [onset_path, _text(cell, "apex_path", row)]
    if isinstance(cell, str) or not hasattr(cell, "__len__") or len(cell) == 0:
        raise DataError(
            f"sample table row {row}: {config.clip_column} must be a non-empty list of paths"
        )
    paths = [_text(path, config.clip_column, row) for path in cell]
    if config.clip_length is not None:
        picks = np.linspace(0, len(paths) - 1, config.clip_length).round().astype(int)
        paths = [paths[i] for i in picks]
    return paths


def preprocess_faces(
    samples: pd.DataFrame,
    config: FaceCropConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
) -> FaceCrops:
    """Detect the face on each sample's onset frame and crop all its frames with that square.

    Returns the crops from the cache when an entry for exactly these samples,
    files and config exists (no image is decoded then); otherwise computes the
    missing chunks, commits the entry and returns it memory-mapped.
    `cache_dir` defaults to `default_cache_dir()` ($TSFMICRO_CACHE or ~/.cache/tsfmicro).
    """
    started = time.perf_counter()
    config = config or FaceCropConfig()
    plans = plan_samples(samples, config)
    root = cache.faces_dir(cache_dir if cache_dir is not None else cache.default_cache_dir())
    entry_key = cache.combined_key(config, [plan.digest for plan in plans], "entry")
    hit = _load_existing(root / entry_key, started)
    if hit is not None:
        return hit

    entry, (chunks_total, chunks_reused, decoded, detected) = _build_entry(
        plans, config, root, entry_key, progress
    )
    stats = PreprocessStats(
        from_cache=False,
        chunks_total=chunks_total,
        chunks_reused=chunks_reused,
        frames_decoded=decoded,
        images_detected=detected,
        seconds=time.perf_counter() - started,
    )
    crops = cache.load_entry(entry, stats)
    if crops.fallback.any():
        log.warning(
            "no face on the onset frame of %d of %d samples; centred crop used for: %s",
            int(crops.fallback.sum()),
            len(crops),
            ", ".join(crops.fallback_keys[:20]),
        )
    return crops


def _build_entry(
    plans: Sequence[SamplePlan],
    config: FaceCropConfig,
    root: Path,
    entry_key: str,
    progress: bool,
) -> tuple[Path, tuple[int, int, int, int]]:
    """Compute the missing shards, commit the entry, drop the shards.

    Returns the entry directory and (chunks, chunks reused, frames decoded, images detected).
    """
    with write_errors(root):
        root.mkdir(parents=True, exist_ok=True)
    shard_dir = root / "shards"
    cache.remove_stale_temps(root)
    cache.remove_stale_temps(shard_dir)
    chunks = [plans[i : i + config.chunk_size] for i in range(0, len(plans), config.chunk_size)]
    shards = [
        (
            shard_dir / f"{cache.combined_key(config, [p.digest for p in chunk], 'shard')}.npz",
            [p.key for p in chunk],
        )
        for chunk in chunks
    ]
    todo = [i for i, (path, keys) in enumerate(shards) if not cache.shard_matches(path, keys)]
    decoded, detected = _compute_shards(
        chunks, [path for path, _ in shards], todo, config, progress
    )

    meta = cache.entry_meta(
        entry_key,
        config,
        [p.key for p in plans],
        [p.onset_path for p in plans],
        [p.frame_paths for p in plans],
    )
    total_frames = sum(len(p.frame_paths) for p in plans)
    try:
        entry = cache.commit_entry(root, entry_key, shards, total_frames, meta)
    except DataError:
        if not (root / entry_key).is_dir():
            raise
        entry = root / entry_key  # a concurrent run committed it and removed the shards
    for path, _ in shards:
        path.unlink(missing_ok=True)
    return entry, (len(chunks), len(chunks) - len(todo), decoded, detected)


def _load_existing(entry: Path, started: float) -> FaceCrops | None:
    """Return a committed entry, or None when absent; a malformed one is removed and redone."""
    if not entry.is_dir():
        return None
    try:
        crops = cache.load_entry(entry)
    except DataError as exc:
        log.warning("discarding unreadable face-crop cache entry: %s", exc)
        cache.discard_entry(entry)
        return None
    stats = PreprocessStats(True, 0, 0, 0, 0, time.perf_counter() - started)
    return dataclasses.replace(crops, stats=stats)


def _compute_shards(
    chunks: Sequence[Sequence[SamplePlan]],
    shard_paths: Sequence[Path],
    todo: Sequence[int],
    config: FaceCropConfig,
    progress: bool,
) -> tuple[int, int]:
    """Compute and commit the chunks listed in `todo`; return (frames decoded, images detected).

    The onset frames of the next chunk are decoded while MTCNN runs on the current one.
    """
    decoded = detected = 0
    total = sum(len(chunk) for chunk in chunks)
    done_before = total - sum(len(chunks[i]) for i in todo)
    workers = config.workers or _available_cores()
    with (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="faces") as pool,
        tqdm(  # disable=None: a bar only where stderr is a terminal (no '\r' in a log)
            total=total,
            initial=done_before,
            unit="sample",
            desc="face crops",
            disable=None if progress else True,
        ) as bar,
    ):
        upcoming = _submit_onsets(pool, chunks[todo[0]], config) if todo else []
        for position, chunk_index in enumerate(todo):
            onsets = [future.result() for future in upcoming]
            if position + 1 < len(todo):
                upcoming = _submit_onsets(pool, chunks[todo[position + 1]], config)
            chunk = chunks[chunk_index]
            arrays, extra_decoded = _crop_chunk(chunk, onsets, config, pool)
            cache.save_shard(shard_paths[chunk_index], [p.key for p in chunk], arrays)
            decoded += len(chunk) + extra_decoded
            detected += len(chunk)
            bar.update(len(chunk))
    return decoded, detected


def _available_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _submit_onsets(
    pool: ThreadPoolExecutor, chunk: Sequence[SamplePlan], config: FaceCropConfig
) -> list[Future]:
    """Start decoding a chunk's onset frames in the pool."""
    return [pool.submit(read_onset, plan.onset_path, config) for plan in chunk]


def read_onset(path: str | os.PathLike[str], config: FaceCropConfig) -> np.ndarray:
    """Decode an onset frame, the one the face detector reads; a frame too small for it is a
    DataError naming the file (frame_size_problem)."""
    image = read_frame(path)
    problem = frame_size_problem(image.shape, config)
    if problem is not None:
        raise DataError(f"frame {path} is {problem}")
    return image


def _crop_chunk(
    chunk: Sequence[SamplePlan],
    onsets: Sequence[np.ndarray],
    config: FaceCropConfig,
    pool: ThreadPoolExecutor,
) -> tuple[dict[str, np.ndarray], int]:
    """Detect faces on a chunk's onsets and crop every frame; return the shard arrays.

    The second value is how many frames other than the onsets were decoded.
    """
    detections = detect_faces(onsets, config)
    missing = [plan for plan, found in zip(chunk, detections, strict=True) if found is None]
    if missing and config.fallback == "error":
        listed = ", ".join(f"{plan.key} ({plan.onset_path})" for plan in missing[:10])
        raise DataError(f"no face found on the onset frame of {len(missing)} sample(s): {listed}")

    squares = [
        square_around_box(found.box, config.margin) if found else centre_square(*image.shape[:2])
        for found, image in zip(detections, onsets, strict=True)
    ]
    frames, extra_decoded = _crop_frames(chunk, onsets, squares, config, pool)
    nan = np.float32("nan")
    arrays = {
        "frames": frames,
        "counts": np.array([len(plan.frame_paths) for plan in chunk], dtype=np.int64),
        "boxes": np.array([d.box if d else [nan] * 4 for d in detections], dtype=np.float32),
        "probs": np.array([d.prob if d else nan for d in detections], dtype=np.float32),
        "landmarks": np.array(
            [d.landmarks if d else np.full((5, 2), nan) for d in detections], dtype=np.float32
        ),
        "squares": np.array(squares, dtype=np.int64),
        "fallback": np.array([d is None for d in detections], dtype=bool),
        "frame_shapes": np.array([image.shape[:2] for image in onsets], dtype=np.int64),
    }
    return arrays, extra_decoded


def _crop_frames(
    chunk: Sequence[SamplePlan],
    onsets: Sequence[np.ndarray],
    squares: Sequence[Square],
    config: FaceCropConfig,
    pool: ThreadPoolExecutor,
) -> tuple[np.ndarray, int]:
    """Crop every listed frame of each sample with its onset's square, in the pool.

    Returns the (T_c, size, size, 3) frames in listing order and how many files
    other than the onsets were decoded (each distinct path once per sample).
    """
    ordered: list[Future] = []
    extra_decoded = 0
    for plan, onset, square in zip(chunk, onsets, squares, strict=True):
        crops = {
            plan.onset_path: pool.submit(crop_square, onset, square, config.size, config.pad_mode)
        }
        for path in plan.frame_paths:
            if path not in crops:
                crops[path] = pool.submit(_read_and_crop, path, onset.shape, square, config)
                extra_decoded += 1
            ordered.append(crops[path])
    return np.stack([future.result() for future in ordered]), extra_decoded


def _read_and_crop(
    path: str, onset_shape: tuple[int, ...], square: Square, config: FaceCropConfig
) -> np.ndarray:
    """Decode a non-onset frame and crop it with the onset's square; sizes must match."""
    image = read_frame(path)
    if image.shape != onset_shape:
        raise DataError(
            f"frame {path} is {image.shape[1]}x{image.shape[0]} but its onset frame is "
            f"{onset_shape[1]}x{onset_shape[0]}: one face box cannot serve both"
        )
    return crop_square(image, square, config.size, config.pad_mode)
