"""Typed parameters of face preprocessing.

`FaceCropConfig` holds every knob of detection, cropping and execution. Fields
whose metadata says `cache_key=False` only change how the work is executed
(device, batch sizes, threads), not the crops it produces, so they are left out
of the cache key; every other field is part of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from tsfmicro.errors import ConfigError

PadMode = Literal["constant", "edge"]
Fallback = Literal["center", "error"]
Selection = Literal["probability", "largest"]
FrameSet = Literal["onset_apex", "clip"]
Fingerprint = Literal["stat", "content"]

_EXECUTION_ONLY = {"cache_key": False}


@dataclass(frozen=True)
class FaceCropConfig:
    """How faces are detected on the onset frame and cropped from every frame of a sample."""

    size: int = 224  # side of the square output crop in pixels (224 paper preset; 64/112 on CPU)
    margin: float = 0.2  # added on each side of the face box, as a fraction of its longer side
    pad_mode: PadMode = "constant"  # parts of the square outside the frame: black, or edge copy
    fallback: Fallback = "center"  # onset without a face: centred square crop, or DataError
    select: Selection = "probability"  # several faces: the most probable one, or the largest
    min_face_size: int = 20  # MTCNN's smallest face, in pixels of the (downscaled) detection image
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # MTCNN P-, R-, O-net thresholds
    factor: float = 0.709  # MTCNN image-pyramid scale step
    detect_max_side: int | None = None  # downscale frames above this side before detection
    frames: FrameSet = "onset_apex"  # crop onset+apex, or every path in `clip_column`
    clip_column: str = "frame_paths"  # list-valued column used when frames == "clip"
    clip_length: int | None = None  # "clip": keep this many evenly spaced frames (None: all)
    fingerprint: Fingerprint = "stat"  # file identity in the cache key: size+mtime, or blake2b
    device: str = field(default="cpu", metadata=_EXECUTION_ONLY)  # torch device for MTCNN
    batch_size: int = field(default=16, metadata=_EXECUTION_ONLY)  # onset frames per MTCNN call
    torch_threads: int | None = field(default=None, metadata=_EXECUTION_ONLY)  # during MTCNN
    workers: int | None = field(default=None, metadata=_EXECUTION_ONLY)  # decode threads
    chunk_size: int = field(default=32, metadata=_EXECUTION_ONLY)  # samples per committed shard

    def __post_init__(self) -> None:
        """Reject values the pipeline cannot use, naming the field."""
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        _check(self.size >= 8, "size", self.size, "an integer >= 8")
        _check(self.margin > -0.5, "margin", self.margin, "a fraction > -0.5")
        _check(
            self.pad_mode in ("constant", "edge"), "pad_mode", self.pad_mode, "'constant'|'edge'"
        )
        _check(self.fallback in ("center", "error"), "fallback", self.fallback, "'center'|'error'")
        _check(
            self.select in ("probability", "largest"),
            "select",
            self.select,
            "'probability'|'largest'",
        )
        _check(self.min_face_size >= 12, "min_face_size", self.min_face_size, "an integer >= 12")
        _check(
            len(self.thresholds) == 3 and all(0.0 < t < 1.0 for t in self.thresholds),
            "thresholds",
            self.thresholds,
            "three probabilities in (0, 1)",
        )
        _check(0.0 < self.factor < 1.0, "factor", self.factor, "a number in (0, 1)")
        _check(
            self.detect_max_side is None or self.detect_max_side >= 48,
            "detect_max_side",
            self.detect_max_side,
            "None or an integer >= 48",
        )
        _check(self.frames in ("onset_apex", "clip"), "frames", self.frames, "'onset_apex'|'clip'")
        _check(
            self.clip_length is None or self.clip_length >= 1,
            "clip_length",
            self.clip_length,
            "None or an integer >= 1",
        )
        _check(
            self.fingerprint in ("stat", "content"),
            "fingerprint",
            self.fingerprint,
            "'stat'|'content'",
        )
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        _check(
            self.torch_threads is None or self.torch_threads >= 1,
            "torch_threads",
            self.torch_threads,
            "None or an integer >= 1",
        )
        _check(self.workers is None or self.workers >= 1, "workers", self.workers, "None or >= 1")
        _check(self.chunk_size >= 1, "chunk_size", self.chunk_size, "an integer >= 1")

    def key_fields(self) -> dict[str, Any]:
        """The fields that change the crops, as plain JSON-ready values (the cache key part)."""
        return {
            f.name: _plain(getattr(self, f.name))
            for f in fields(self)
            if f.metadata.get("cache_key", True)
        }

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain JSON-ready values."""
        return {name: _plain(value) for name, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FaceCropConfig:
        """Rebuild a config from `to_dict` output (e.g. a cache entry's meta.json)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"FaceCropConfig has no field(s) {unknown}")
        return cls(**values)


def _check(ok: bool, name: str, value: object, expected: str) -> None:
    """Raise ConfigError for field `name` unless `ok`."""
    if not ok:
        raise ConfigError(f"FaceCropConfig.{name}={value!r}: expected {expected}")


def _plain(value: Any) -> Any:
    """Tuples become lists so the value round-trips through JSON unchanged."""
    return list(value) if isinstance(value, tuple) else value
