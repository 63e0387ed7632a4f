"""Rendering one frame: identity + head pose + AU displacement fields + lighting + noise.

For every output pixel p the renderer finds where it comes from on the subject's face
canvas (backward warping): q0 = pose_n^-1(p), then q = q0 - D_n(q0), where D_n is the
static shape warp plus every expression event's field times its time profile at frame n
plus the blink field; the colour at q is blended over the background by the head
mask, then lit, flickered and given sensor noise. Subtracting the field at q0 is the
first-order inverse of moving each face point by D, exact enough for motions of a few
pixels over fields tens of pixels wide.

A `Renderer` caches identities and per-clip fields; results do not depend on what was
rendered before (a cached value is the value that would be computed).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from tsfmicro.synth.aus import action_field
from tsfmicro.synth.clips import ClipMotion, ClipSpec, clip_motion, frame_rng
from tsfmicro.synth.config import REFERENCE_FACE_PX, SynthConfig
from tsfmicro.synth.faces import get_sources, source_count
from tsfmicro.synth.identity import Identity, build_identity
from tsfmicro.synth.seeding import rng_for

# Per-process cache sizes: identities are ~2 MB each at the default frame sizes.
_IDENTITY_CACHE = 16
_CLIP_CACHE = 64


@dataclass(frozen=True)
class RenderContext:
    """What every frame of one synthetic dataset shares: its config, frame rate, and the
    subjects in identity order (subject i gets source face i of a seeded permutation)."""

    config: SynthConfig
    fps: float
    subjects: tuple[str, ...]

    def source_index(self, subject: str) -> int:
        """The source face of a subject: distinct faces until all 103 are used, then reused
        (with a different identity variation)."""
        return self._face_of(self.subjects.index(subject))

    def source_indices(self) -> list[int]:
        """The source faces the subjects use (to locate them all at once)."""
        return sorted({self._face_of(i) for i in range(len(self.subjects))})

    def _face_of(self, position: int) -> int:
        order = rng_for(self.config.seed, "faces").permutation(source_count())
        return int(order[position % len(order)])


@dataclass(frozen=True)
class _ClipState:
    motion: ClipMotion
    fields: tuple[tuple[int, np.ndarray], ...]  # (event index, canvas field in pixels)


class Renderer:
    """Renders frames of one RenderContext; caches identities and clip fields."""

    def __init__(self, context: RenderContext) -> None:
        self.context = context
        self.levels = context.config.levels()
        self.look = context.config.look()
        width, height = self.look.frame_size
        self._xs, self._ys = np.meshgrid(
            np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
        )
        self._identities: OrderedDict[str, Identity] = OrderedDict()
        self._clips: OrderedDict[tuple, _ClipState] = OrderedDict()

    def identity(self, subject: str) -> Identity:
        """The subject's identity (built on first use)."""
        if subject not in self._identities:
            index = self.context.source_index(subject)
            source = get_sources([index])[index]
            self._identities[subject] = build_identity(
                self.context.config.seed, subject, source, self.look
            )
            _trim(self._identities, _IDENTITY_CACHE)
        self._identities.move_to_end(subject)
        return self._identities[subject]

    def frame(self, clip: ClipSpec, n: int) -> np.ndarray:
        """Frame n of a clip: uint8 (H, W, 3) RGB, or (H, W) for grey datasets."""
        identity = self.identity(clip.subject)
        state = self._clip_state(clip, identity)
        field = self._field(identity, clip, state, n)
        face, mask = self._warp(identity, state.motion, field, n)
        # In place, to spare temporaries: blend, light, flicker, noise, round to uint8.
        image = face - identity.background
        image *= mask[:, :, None]
        image += identity.background
        rng = frame_rng(self.context.config.seed, clip, n)
        image *= identity.lighting
        image *= np.float32(1.0 + self.levels.flicker * rng.standard_normal())
        image += _sensor_noise(image.shape, self.levels.noise_std, rng)
        image += np.float32(0.5)
        np.clip(image, 0, 255, out=image)
        out = image.astype(np.uint8)
        return out[:, :, 0] if out.shape[2] == 1 else out

    def expression_field(self, clip: ClipSpec, n: int) -> np.ndarray:
        """The expression displacement (events only, no blink or shape) at frame n, on the
        face canvas, in canvas pixels: (h, w, 2). For tests and inspection."""
        identity = self.identity(clip.subject)
        state = self._clip_state(clip, identity)
        total = np.zeros_like(identity.shape_field)
        for index, field in state.fields:
            total += np.float32(clip.events[index].weight(n)) * field
        return total

    def _clip_state(self, clip: ClipSpec, identity: Identity) -> _ClipState:
        key = (clip.subject, clip.clip, clip.events)
        if key not in self._clips:
            motion = clip_motion(
                self.context.config.seed,
                clip,
                self.context.fps,
                self.levels,
                identity.face_px,
            )
            fields = []
            shape = identity.canvas.shape[:2]
            for index, event in enumerate(clip.events):
                unit = action_field(identity.landmarks, event.actions, shape)
                scale = event.amplitude_px * identity.face_px / REFERENCE_FACE_PX
                fields.append((index, unit * np.float32(scale)))
            self._clips[key] = _ClipState(motion, tuple(fields))
            _trim(self._clips, _CLIP_CACHE)
        self._clips.move_to_end(key)
        return self._clips[key]

    def _field(self, identity: Identity, clip: ClipSpec, state: _ClipState, n: int):
        """Total canvas displacement at frame n: shape + expressions + blink."""
        field = identity.shape_field.copy()
        for index, event_field in state.fields:
            weight = clip.events[index].weight(n)
            if weight:
                field += np.float32(weight) * event_field
        blink = state.motion.blink_weight(n)
        if blink:
            field += np.float32(blink * state.motion.blink_px) * identity.blink_field
        return field

    def _warp(self, identity: Identity, motion: ClipMotion, field: np.ndarray, n: int):
        """Backward-warp the canvas and mask into the frame for the head pose at frame n."""
        inverse = cv2.invertAffineTransform(_posed(identity, motion.head_pose(n)))
        q0x = inverse[0, 0] * self._xs + inverse[0, 1] * self._ys + np.float32(inverse[0, 2])
        q0y = inverse[1, 0] * self._xs + inverse[1, 1] * self._ys + np.float32(inverse[1, 2])
        q0x, q0y = q0x.astype(np.float32), q0y.astype(np.float32)
        shift = cv2.remap(field, q0x, q0y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        qx, qy = q0x - shift[:, :, 0], q0y - shift[:, :, 1]
        face = cv2.remap(identity.canvas, qx, qy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
        mask = cv2.remap(identity.mask, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        if face.ndim == 2:
            face = face[:, :, None]
        return face, mask


def _sensor_noise(shape: tuple[int, ...], std: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise seeded from the frame's stream. OpenCV's generator (thread-local,
    reseeded here on every call) draws it three times faster than numpy's, and this is
    the largest cost of a frame."""
    noise = np.empty((shape[0], int(np.prod(shape[1:]))), np.float32)
    cv2.setRNGSeed(int(rng.integers(2**31)))
    cv2.randn(noise, 0.0, float(std))
    return noise.reshape(shape)


def _posed(identity: Identity, pose: tuple[float, float, float]) -> np.ndarray:
    """The canvas -> frame affine with the head turned by `roll` about the face pivot and
    shifted by (dx, dy)."""
    dx, dy, roll = pose
    pivot = identity.pivot()
    cos, sin = np.cos(roll), np.sin(roll)
    rotation = np.array([[cos, -sin], [sin, cos]])
    linear = rotation @ identity.to_frame[:, :2]
    translation = rotation @ (identity.to_frame[:, 2] - pivot) + pivot + (dx, dy)
    return np.hstack([linear, translation[:, None]])


def _trim(cache: OrderedDict, size: int) -> None:
    while len(cache) > size:
        cache.popitem(last=False)
