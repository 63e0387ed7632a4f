"""The published recipe's training-time frame pair: near the annotated onset and apex, the pair
that differs most.

For a training sample the reference scripts look at every onset' in [onset, onset + r] and apex'
in [apex - r, apex] and train on the pair whose frames differ most (Euclidean norm of the pixel
difference); test samples keep the annotated pair. r is int(0.15 * (apex - onset) / 4) for
CASME II and CAS(ME)3 and int(0.1 * (apex - onset)) for SAMM (MMEW, which they do not train on,
gets the CASME II rule). The choice depends only on the frames, so it is made once here, cached,
and training reads the chosen pair's crops from the face cache: nothing is decoded per epoch,
where the reference decodes every candidate frame in every epoch.

Two departures, both deliberate: the difference is taken in a signed type (the reference
subtracts uint8 images, which wraps around modulo 256), and candidate frames missing on disk are
skipped (the reference would fail on them). Ties keep the annotated pair, then the earliest
candidate in (onset offset, apex offset) order.

Cache: ``<cache_dir>/pairs/v1/<key>.json``, one file per table, its key a hash of every sample's
key, annotated frames and candidate files (with their size and mtime), written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from tsfmicro.datasets.base import frame_path
from tsfmicro.errors import DataError
from tsfmicro.fileio import load_frame

FORMAT_VERSION = 1
COLUMNS = ("train_onset", "train_apex", "train_onset_path", "train_apex_path")


def jitter_range(dataset: str, onset: int, apex: int) -> int:
    """How many frames the onset may move later and the apex earlier, by the reference's rule."""
    span = apex - onset
    if span <= 0:
        return 0
    if dataset == "samm":
        return int(0.1 * span)
    return int(0.15 * span / 4)


def candidate_pairs(onset: int, apex: int, r: int) -> list[tuple[int, int]]:
    """Every (onset', apex') to compare, the annotated pair first."""
    return [(onset + i, apex - j) for i in range(r + 1) for j in range(r + 1)]


def candidate_frames(onset: int, apex: int, r: int) -> list[int]:
    """The frame numbers those pairs use, in order (the annotated onset and apex among them)."""
    return sorted({*range(onset, onset + r + 1), *range(apex - r, apex + 1)})


def pair_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean norm of the pixel difference, computed in a signed type (no uint8 wrap-around)."""
    return float(np.linalg.norm(a.astype(np.int16) - b.astype(np.int16)))


def choose_pair(frames: dict[int, np.ndarray], onset: int, apex: int, r: int) -> tuple[int, int]:
    """The candidate pair with the largest difference among those whose frames are present.

    `frames` maps a frame number to its decoded image; the annotated onset and apex must be in it.
    """
    best, best_score = (onset, apex), -1.0
    for o, a in candidate_pairs(onset, apex, r):
        if o not in frames or a not in frames:
            continue
        score = pair_difference(frames[a], frames[o])
        if score > best_score:
            best, best_score = (o, a), score
    return best


def training_pairs(
    samples: pd.DataFrame,
    *,
    cache_dir: str | os.PathLike[str],
) -> pd.DataFrame:
    """Per sample (table order): train_onset, train_apex and their frame paths.

    Needs a table loaded with its frames (clip_dir, frame_template, onset_path, apex_path).
    Reads the result from the cache when the same samples and candidate files were seen before.
    """
    plans = [_plan(row, i) for i, row in enumerate(samples.to_dict("records"))]
    key = _cache_key(plans)
    path = Path(cache_dir) / "pairs" / f"v{FORMAT_VERSION}" / f"{key}.json"
    chosen = _read_cache(path, plans)
    if chosen is None:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            chosen = list(pool.map(_choose, plans))
        _write_cache(path, plans, chosen)
    rows = []
    for plan, (o, a) in zip(plans, chosen, strict=True):
        rows.append((o, a, plan["paths"][o], plan["paths"][a]))
    out = pd.DataFrame(rows, columns=list(COLUMNS), index=samples.index)
    return out.astype({"train_onset": "int64", "train_apex": "int64"})


def _plan(row: dict, position: int) -> dict:
    for column in ("key", "dataset", "onset", "apex", "onset_path", "apex_path", "clip_dir"):
        if column not in row:
            raise DataError(f"sample table lacks column {column!r} for the training frame pair")
    if not row["onset_path"] or not row["apex_path"] or not row["clip_dir"]:
        raise DataError(
            f"sample {row['key']} (table row {position}): its frames were not resolved; "
            "load the dataset with its folder to choose training frame pairs"
        )
    onset, apex = int(row["onset"]), int(row["apex"])
    r = jitter_range(str(row["dataset"]), onset, apex)
    annotated = {onset: str(row["onset_path"]), apex: str(row["apex_path"])}
    paths, files = {}, []  # files: (number, path, size, mtime) of each present frame, for the key
    for n in candidate_frames(onset, apex, r):
        path = annotated.get(n) or str(frame_path(row, n))
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            if n in annotated:
                raise DataError(f"frame file not found: {path}") from None
            continue  # a missing candidate is skipped
        except OSError as exc:
            raise DataError(f"cannot read frame {path}: {exc.strerror or exc}") from exc
        paths[n] = path
        files.append([n, path, stat.st_size, stat.st_mtime_ns])
    return {
        "key": str(row["key"]),
        "onset": onset,
        "apex": apex,
        "r": r,
        "paths": paths,
        "files": files,
    }


def _cache_key(plans: list[dict]) -> str:
    hasher = hashlib.sha256(json.dumps({"format": FORMAT_VERSION}).encode())
    for plan in plans:
        record = [plan["key"], plan["onset"], plan["apex"], plan["r"], plan["files"]]
        hasher.update(json.dumps(record).encode())
    return hasher.hexdigest()[:32]


def _choose(plan: dict) -> tuple[int, int]:
    if plan["r"] == 0 or len(plan["paths"]) <= 2:
        return plan["onset"], plan["apex"]
    frames = {}
    reference = None
    for n, p in plan["paths"].items():
        image, _ = load_frame(p)
        if reference is None:
            reference = (p, image.shape)
        elif image.shape != reference[1]:
            raise DataError(
                f"sample {plan['key']}: frame {p} has size {image.shape}, "
                f"frame {reference[0]} {reference[1]}"
            )
        frames[n] = image
    return choose_pair(frames, plan["onset"], plan["apex"], plan["r"])


def _read_cache(path: Path, plans: list[dict]) -> list[tuple[int, int]] | None:
    try:
        stored = json.loads(path.read_text())
        pairs = stored["pairs"]
        if len(pairs) != len(plans) or stored["keys"] != [p["key"] for p in plans]:
            return None
        chosen = [(int(o), int(a)) for o, a in pairs]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for plan, (o, a) in zip(plans, chosen, strict=True):
        if o not in plan["paths"] or a not in plan["paths"]:
            return None
    return chosen


def _write_cache(path: Path, plans: list[dict], chosen: list[tuple[int, int]]) -> None:
    from tsfmicro.faces.cache import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"keys": [p["key"] for p in plans], "pairs": chosen}).encode()
    atomic_write(path, lambda handle: handle.write(body))
