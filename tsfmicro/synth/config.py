"""Configuration of the synthetic benchmark: one frozen dataclass, checked on construction.

`SynthConfig` says what to generate (dataset layout, subjects, clips, classes) and how hard
it is (expression amplitude, noise, head motion, blinks, flicker). Difficulty presets set
the nuisance levels together; a field set explicitly overrides its preset value.

This module imports only the standard library and tsfmicro.errors at load time, because
worker processes unpickle a config and should not pay for pandas (the dataset registry is
imported inside the checks that need it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, get_args

from tsfmicro.errors import ConfigError

DatasetName = Literal["casme2", "samm", "casme3", "mmew", "smic"]
Difficulty = Literal["easy", "medium", "hard"]
AuSource = Literal["emotion", "annotation"]

DATASETS: tuple[str, ...] = get_args(DatasetName)
DIFFICULTIES: tuple[str, ...] = get_args(Difficulty)
AU_SOURCES: tuple[str, ...] = get_args(AuSource)

# The face size at which amplitudes are stated: TSFmicro reads 224 x 224 face crops.
REFERENCE_FACE_PX = 224.0

# Bounds on what one synthetic copy may ask for. The real sets have 26 (CASME II) to 100
# (CAS(ME)3) subjects with at most a few dozen clips each and frames up to 1280x720; the bounds
# leave room far above that while refusing a typo that would fill a disk or memory.
MAX_SUBJECTS = 1000
MAX_CLIPS_PER_SUBJECT = 1000
MAX_CLIPS = 100_000  # subjects x clips per subject
MIN_FRAME_SIDE = 64
MAX_FRAME_SIDE = 4096


@dataclass(frozen=True)
class Levels:
    """Expression strength and nuisance levels; sizes in pixels at a 224 px face."""

    amplitude_px: float  # peak displacement of an expression at its apex
    noise_std: float  # per-pixel Gaussian sensor noise, grey levels (0..255)
    head_motion_px: float  # largest head drift away from the rest position
    head_rotation_deg: float  # largest head roll away from the rest pose
    blink_rate_hz: float  # mean blinks per second (distractor AU45)
    flicker: float  # standard deviation of the per-frame global brightness gain


# Named difficulties. Micro-expressions move the face by about 1-3 px at 224 px; harder
# settings shrink the motion and raise every nuisance that also changes the frame.
PRESETS: dict[str, Levels] = {
    "easy": Levels(3.0, 1.0, 0.3, 0.05, 0.1, 0.002),
    "medium": Levels(2.0, 1.5, 0.6, 0.1, 0.25, 0.004),
    "hard": Levels(1.0, 2.5, 1.0, 0.2, 0.4, 0.008),
}


@dataclass(frozen=True)
class Look:
    """How a dataset layout's frames look by default (scaled down from the real ones)."""

    frame_size: tuple[int, int]  # (width, height) in pixels
    face_fraction: float  # face box height / frame height
    grayscale: bool  # frames stored with one channel


# Real frames: CASME II raw 640x480 colour; CASME II cropped are face crops of roughly
# 170-230 px; SAMM 960x650 grayscale; CAS(ME)3 and MMEW are 16:9 colour video.
LOOKS: dict[tuple[str, str], Look] = {
    ("casme2", "raw"): Look((320, 240), 0.55, False),
    ("casme2", "cropped"): Look((192, 224), 0.72, False),
    ("samm", "samm"): Look((480, 325), 0.55, True),
    ("casme3", "part_a"): Look((426, 240), 0.5, False),
    ("mmew", "micro_expression"): Look((384, 216), 0.5, False),
    # SMIC: HS 640x480 colour; VIS and NIR 640x480 (NIR looks grey but is stored in colour).
    ("smic", "hs"): Look((320, 240), 0.55, False),
    ("smic", "vis"): Look((320, 240), 0.55, False),
    ("smic", "nir"): Look((320, 240), 0.55, False),
}


@dataclass(frozen=True)
class SynthConfig:
    """A synthetic micro-expression dataset: what to generate and how it looks.

    Fields marked "mode (a)" shape a generated dataset and are unused when rendering the
    frames of an existing annotation (mode (b)), whose rows fix subjects, clips, emotions
    and frame numbers.
    """

    dataset: DatasetName = "casme2"  # layout and spreadsheet format to write
    layout: str | None = None  # frame layout (casme2: raw or cropped); None: the first
    subjects: int = 8  # mode (a): synthetic subjects (distinct source faces while they last)
    clips_per_subject: int = 10  # mode (a): clips per subject, classes balanced per subject
    classes: tuple[str, ...] | None = None  # mode (a): emotions; None: default protocol's
    full_clips: bool = False  # write every frame onset..offset, not only onset and apex
    pair_frames: bool = False  # also write the frames the training-pair choice compares:
    # onset..onset+r and apex-r..apex (tsfmicro.datasets.train_pairs)
    difficulty: Difficulty = "medium"  # preset for the six levels below
    amplitude_px: float | None = None  # peak expression displacement at 224 px; None: preset
    noise_std: float | None = None  # sensor noise std in grey levels; None: preset
    head_motion_px: float | None = None  # largest head drift at 224 px; None: preset
    head_rotation_deg: float | None = None  # largest head roll in degrees; None: preset
    blink_rate_hz: float | None = None  # distractor blinks per second; None: preset
    flicker: float | None = None  # per-frame brightness gain std; None: preset
    amplitude_jitter: float = 0.2  # each clip's amplitude is scaled by U(1-j, 1+j)
    optional_aus: bool = True  # add each class's optional AUs at random, per clip
    au_source: AuSource = "emotion"  # mode (b): AUs from the row's emotion or its AU column
    frame_size: tuple[int, int] | None = None  # (width, height); None: the layout's default
    face_fraction: float | None = None  # face box height / frame height; None: layout's
    grayscale: bool | None = None  # one-channel frames; None: as the dataset ships (SAMM)
    jpeg_quality: int = 95  # JPEG quality of the written frames, 1..100
    seed: int = 0  # everything random derives from this and the subject/clip/frame names

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ConfigError(
                f"unknown dataset {self.dataset!r} (synth writes: {', '.join(DATASETS)})"
            )
        _check_choice("difficulty", self.difficulty, DIFFICULTIES)
        _check_choice("au_source", self.au_source, AU_SOURCES)
        bounds = (("subjects", MAX_SUBJECTS), ("clips_per_subject", MAX_CLIPS_PER_SUBJECT))
        for name, most in bounds:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"SynthConfig.{name} must be a positive integer, got {value!r}")
            if value > most:
                raise ConfigError(f"SynthConfig.{name} must be at most {most}, got {value}")
        if self.subjects * self.clips_per_subject > MAX_CLIPS:
            raise ConfigError(
                f"SynthConfig: {self.subjects} subjects x {self.clips_per_subject} clips is "
                f"{self.subjects * self.clips_per_subject} clips; at most {MAX_CLIPS}"
            )
        for name in (
            "amplitude_px",
            "noise_std",
            "head_motion_px",
            "head_rotation_deg",
            "blink_rate_hz",
            "flicker",
        ):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ConfigError(f"SynthConfig.{name} must be >= 0, got {value!r}")
        if not 0 <= self.amplitude_jitter < 1:
            raise ConfigError(
                f"SynthConfig.amplitude_jitter must be in [0, 1), got {self.amplitude_jitter!r}"
            )
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"SynthConfig.jpeg_quality must be 1..100, got {self.jpeg_quality}")
        if self.frame_size is not None:
            sides = tuple(self.frame_size)
            if len(sides) != 2 or not all(_whole(side) for side in sides):
                raise ConfigError(
                    f"SynthConfig.frame_size must be (width, height) in whole pixels, got "
                    f"{self.frame_size!r}"
                )
            width, height = (int(side) for side in sides)
            object.__setattr__(self, "frame_size", (width, height))
            if not (MIN_FRAME_SIDE <= min(width, height) and max(width, height) <= MAX_FRAME_SIDE):
                raise ConfigError(
                    f"SynthConfig.frame_size {width}x{height}: both sides must be "
                    f">= {MIN_FRAME_SIDE} and <= {MAX_FRAME_SIDE} px"
                )
        if self.face_fraction is not None and not 0.2 <= self.face_fraction <= 0.95:
            raise ConfigError(
                f"SynthConfig.face_fraction must be in [0.2, 0.95], got {self.face_fraction}"
            )
        layout = self.layout_name()
        if self.classes is not None:
            if not self.classes:
                raise ConfigError("SynthConfig.classes is empty; give at least one emotion")
            object.__setattr__(self, "classes", self._dataset_labels(self.classes))
        object.__setattr__(self, "layout", layout)

    def replace(self, **changes: object) -> SynthConfig:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def layout_name(self) -> str:
        """The frame layout in use: the given one, or the dataset's first."""
        from tsfmicro.datasets.registry import get_adapter

        adapter = get_adapter(self.dataset)
        names = [layout.name for layout in adapter.layouts]
        if self.layout is None:
            return names[0]
        if self.layout not in names:
            raise ConfigError(
                f"{adapter.title} has no layout {self.layout!r} (layouts: {', '.join(names)})"
            )
        return self.layout

    def levels(self) -> Levels:
        """The difficulty preset with every explicitly set level in place of its value."""
        preset = PRESETS[self.difficulty]
        overrides = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(Levels)
            if getattr(self, f.name) is not None
        }
        return dataclasses.replace(preset, **overrides)

    def look(self) -> Look:
        """Frame size, face size and colour for this dataset layout, overrides applied."""
        # The layout is resolved on construction; reading it here keeps worker processes
        # (which unpickle the config without constructing it) free of the dataset registry.
        default = LOOKS[(self.dataset, self.layout or self.layout_name())]
        return Look(
            frame_size=tuple(self.frame_size or default.frame_size),  # type: ignore[arg-type]
            face_fraction=self.face_fraction or default.face_fraction,
            grayscale=default.grayscale if self.grayscale is None else self.grayscale,
        )

    def class_labels(self) -> tuple[str, ...]:
        """Mode (a) emotions, in the dataset's own spelling: the given ones or the default
        protocol's (one source emotion per class)."""
        if self.classes is not None:
            return self.classes
        from tsfmicro.datasets.registry import get_adapter

        protocol = get_adapter(self.dataset).protocol()
        return tuple(emotion for _, group in protocol.classes for emotion in group)

    def _dataset_labels(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        """Normalise labels and spell them as the dataset does (happiness -> happy for
        CAS(ME)3); unknown ones are a ConfigError naming the dataset's labels."""
        from tsfmicro.datasets.base import normalise_label
        from tsfmicro.datasets.registry import get_adapter
        from tsfmicro.synth.aus import canonical_emotion

        adapter = get_adapter(self.dataset)
        known = adapter.emotions
        by_class = {canonical_emotion(label): label for label in known}
        chosen = []
        for raw in labels:
            label = normalise_label(raw)
            if label not in known:
                label = by_class.get(canonical_emotion(label), "")
            if not label:
                raise ConfigError(
                    f"unknown class {raw!r} for {adapter.title} (known: {', '.join(sorted(known))})"
                )
            if label in chosen:
                raise ConfigError(f"class {raw!r} given twice")
            chosen.append(label)
        return tuple(chosen)


def _whole(value: object) -> bool:
    """A whole number (an int, or a float with nothing after the point), not a bool."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value.is_integer()


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"SynthConfig.{name}={value!r}: expected one of {', '.join(allowed)}")
