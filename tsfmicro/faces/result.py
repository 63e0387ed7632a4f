"""The result of face preprocessing: crops plus what detection found, per sample."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tsfmicro.errors import DataError
from tsfmicro.faces.config import FaceCropConfig
from tsfmicro.faces.crop import Square, points_in_crop

# Per-sample arrays stored beside the frames (in a shard or a cache entry's index.npz).
SAMPLE_ARRAYS = ("boxes", "probs", "landmarks", "squares", "fallback", "frame_shapes")


@dataclass(frozen=True)
class PreprocessStats:
    """What a preprocessing call did (all zeros but `seconds` on a cache hit)."""

    from_cache: bool  # True: the whole result came from a committed cache entry
    chunks_total: int  # shards the samples were split into
    chunks_reused: int  # shards found on disk from an earlier (perhaps killed) run
    frames_decoded: int  # image files decoded by this call
    images_detected: int  # onset frames passed through MTCNN by this call
    seconds: float  # wall time of the call


@dataclass(frozen=True, eq=False)
class FaceCrops:
    """Face crops of N samples, F_i frames each, T = sum(F_i) frames in all.

    Frames are RGB uint8, channels-last. When loaded from the cache `frames` is
    a read-only memory map, so nothing is read until it is indexed.
    """

    keys: tuple[str, ...]  # sample ids, in the order of the input table
    frames: np.ndarray  # (T, size, size, 3) uint8, samples one after another
    offsets: np.ndarray  # (N + 1,) int64: sample i is frames[offsets[i]:offsets[i + 1]]
    boxes: np.ndarray  # (N, 4) float32 MTCNN box x1, y1, x2, y2 on the onset; NaN on fallback
    probs: np.ndarray  # (N,) float32 MTCNN face probability; NaN on fallback
    landmarks: np.ndarray  # (N, 5, 2) float32 onset (x, y) of LANDMARK_NAMES; NaN on fallback
    squares: np.ndarray  # (N, 3) int64 crop square x0, y0, side in onset pixels
    fallback: np.ndarray  # (N,) bool: no face found, the centred square was used
    frame_shapes: np.ndarray  # (N, 2) int64 onset frame height, width
    config: FaceCropConfig
    cache_key: str  # the entry's key (hash of inputs and config)
    path: Path | None  # the cache entry directory, None when not cached
    stats: PreprocessStats

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def fallback_keys(self) -> list[str]:
        """Keys of the samples where no face was found on the onset frame."""
        return [key for key, used in zip(self.keys, self.fallback, strict=True) if used]

    def index(self, key: str) -> int:
        """Position of sample `key`; DataError if absent."""
        try:
            return self.keys.index(key)
        except ValueError:
            raise DataError(f"no face crops for sample {key!r}") from None

    def sample(self, i: int) -> np.ndarray:
        """(F_i, size, size, 3) frames of sample i (onset first, then apex, or the clip order)."""
        return self.frames[self.offsets[i] : self.offsets[i + 1]]

    def stacked(self) -> np.ndarray:
        """All frames as (N, F, size, size, 3); a view, valid when every sample has F frames."""
        counts = np.diff(self.offsets)
        if len(counts) and (counts != counts[0]).any():
            raise DataError(
                f"samples have between {counts.min()} and {counts.max()} frames: "
                "use sample(i), or set FaceCropConfig.clip_length for equal lengths"
            )
        per_sample = int(counts[0]) if len(counts) else 0
        return self.frames.reshape(len(self.keys), per_sample, *self.frames.shape[1:])

    def landmarks_in_crop(self) -> np.ndarray:
        """(N, 5, 2) float32 landmarks in the pixel coordinates of the resized crops."""
        out = np.full_like(self.landmarks, np.nan)
        for i, square in enumerate(self.squares):
            if not self.fallback[i]:
                out[i] = points_in_crop(self.landmarks[i], Square(*square), self.config.size)
        return out
