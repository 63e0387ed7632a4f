"""Clips over time: expression events with onset -> apex -> offset profiles, and nuisances.

A clip is one video of one subject (a clip folder on disk). It holds one or more
expression `Event`s (CAS(ME)3 clips can hold several). Besides the expressions, a clip has
small head motion (smooth drift and roll), distractor blinks at random times, and per-frame
brightness flicker and sensor noise. Everything is a function of the frame number, drawn
from streams keyed by (seed, subject, clip), so any frame can be rendered on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tsfmicro.synth.aus import AuAction
from tsfmicro.synth.config import REFERENCE_FACE_PX, Levels
from tsfmicro.synth.seeding import rng_for

# A blink's lid travel at a 224 px face (a partial, fast closure) and its duration.
BLINK_PX = 6.0
BLINK_SECONDS = (0.15, 0.3)
# Blinks may fall this long before the first and after the last event of a clip.
BLINK_MARGIN_SECONDS = 0.5
# Head drift is two sinusoids per axis with periods in this range.
HEAD_PERIOD_SECONDS = (0.4, 2.0)


@dataclass(frozen=True)
class Event:
    """One expression: its emotion, timing and AUs. The profile peaks at `apex`."""

    emotion: str  # source label, normalised (happiness, other, sad, ...)
    onset: int
    apex: int  # the apex the loader resolves (after its quirk policies)
    offset: int
    actions: tuple[AuAction, ...]
    amplitude_px: float  # peak displacement at a 224 px face

    @property
    def start(self) -> int:
        return min(self.onset, self.apex)

    @property
    def end(self) -> int:
        return max(self.offset, self.apex)

    def weight(self, n: int) -> float:
        """Expression strength at frame n: a raised-cosine rise from the start to the apex
        (0 -> 1) and fall to the end (1 -> 0); 0 outside."""
        if n < self.start or n > self.end:
            return 0.0
        if n <= self.apex:
            rise = self.apex - self.start
            return 1.0 if rise == 0 else _raised_cosine((n - self.start) / rise)
        fall = self.end - self.apex
        return _raised_cosine((self.end - n) / fall)


def _raised_cosine(t: float) -> float:
    return 0.5 * (1.0 - math.cos(math.pi * t))


@dataclass(frozen=True)
class ClipSpec:
    """One clip folder to render: whose, which events, which frame numbers to write."""

    subject: str  # on-disk subject folder (sub01, 006, spNO.1)
    clip: str  # clip folder / Filename
    emotion: str  # the first event's emotion (MMEW files clips by emotion)
    events: tuple[Event, ...]
    frames: tuple[int, ...]  # frame numbers to write, ascending

    @property
    def first(self) -> int:
        return min(event.start for event in self.events)

    @property
    def last(self) -> int:
        return max(event.end for event in self.events)


@dataclass(frozen=True)
class Blink:
    start: int
    frames: int


@dataclass(frozen=True)
class ClipMotion:
    """The nuisances of one clip, in frame pixels / radians, as functions of n."""

    head: np.ndarray  # (3, 2, 3): axis (x, y, roll) x component x (amplitude, period, phase)
    blinks: tuple[Blink, ...]
    blink_px: float  # lid travel in canvas pixels

    def head_pose(self, n: int) -> tuple[float, float, float]:
        """(dx, dy, roll) of the head at frame n, relative to the rest pose."""
        amp, period, phase = self.head[..., 0], self.head[..., 1], self.head[..., 2]
        values = (amp * np.sin(2 * np.pi * n / period + phase)).sum(axis=1)
        return float(values[0]), float(values[1]), float(values[2])

    def blink_weight(self, n: int) -> float:
        """Lid closure at frame n, 0..1 (the largest of overlapping blinks)."""
        weight = 0.0
        for blink in self.blinks:
            t = (n - blink.start) / blink.frames
            if 0 <= t <= 1:
                weight = max(weight, 0.5 * (1 - math.cos(2 * math.pi * t)))
        return weight


def clip_motion(
    seed: int, clip: ClipSpec, fps: float, levels: Levels, face_px: float
) -> ClipMotion:
    """Draw a clip's head motion and blinks; `face_px` is the face height in pixels."""
    rng = rng_for(seed, "motion", clip.subject, clip.clip)
    to_px = face_px / REFERENCE_FACE_PX
    limits = (
        levels.head_motion_px * to_px,
        levels.head_motion_px * to_px,
        math.radians(levels.head_rotation_deg),
    )
    head = np.zeros((3, 2, 3))
    for axis, limit in enumerate(limits):
        split = rng.uniform(0.3, 0.7)
        head[axis, :, 0] = (limit * split, limit * (1 - split))
        head[axis, :, 1] = rng.uniform(*HEAD_PERIOD_SECONDS, 2) * fps
        head[axis, :, 2] = rng.uniform(0, 2 * np.pi, 2)
    margin = round(BLINK_MARGIN_SECONDS * fps)
    first, last = clip.first - margin, clip.last + margin
    count = rng.poisson(levels.blink_rate_hz * (last - first + 1) / fps)
    blinks = tuple(
        Blink(int(rng.integers(first, last + 1)), max(2, round(rng.uniform(*BLINK_SECONDS) * fps)))
        for _ in range(count)
    )
    return ClipMotion(head=head, blinks=blinks, blink_px=BLINK_PX * to_px)


def frame_rng(seed: int, clip: ClipSpec, n: int) -> np.random.Generator:
    """The stream for frame n's own randomness (sensor noise, flicker)."""
    return rng_for(seed, "frame", clip.subject, clip.clip, int(n))
