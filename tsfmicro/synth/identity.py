"""Synthetic subjects: a source face with its own shape, skin tone, lighting, pose and scene.

An `Identity` holds everything about a subject that stays fixed over all their clips: the
face photo at frame scale pasted over drawn hair, neck and shoulders (the "canvas"), its
soft mask and the face's landmarks, a small static shape warp, the affine placement of the
canvas in the frame (rest pose), the background and the lighting. All of it is drawn from
rng_for(seed, "identity", subject).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tsfmicro.synth.aus import BLINK, AuAction, action_field
from tsfmicro.synth.config import Look
from tsfmicro.synth.faces import SourceFace
from tsfmicro.synth.seeding import rng_for

# Complexions as RGB gains on a grey photo (colour photos take only their mean brightness).
_SKIN_TONES = (
    (1.10, 1.00, 0.92),
    (1.10, 0.96, 0.84),
    (1.02, 0.86, 0.72),
    (0.82, 0.66, 0.54),
    (0.62, 0.48, 0.40),
)
# Hair colours (RGB): black, dark brown, brown, blond, grey.
_HAIR = ((32, 28, 26), (58, 42, 32), (96, 70, 48), (168, 138, 92), (150, 148, 145))
# The head canvas: width and height in face-box heights; the face box centre sits at half
# the width and this fraction of the height, leaving room for neck and shoulders below.
_CANVAS = (2.4, 2.8)
_FACE_AT = 0.4
# Mask: an ellipse around the face box, opaque inside, fading out over its outer 15 %.
_MASK_AXES = (0.62, 0.72)  # semi-axes in face-box widths / heights
_MASK_RAISE = 0.06  # centre raised above the box centre by this many box heights
_MASK_FEATHER = 0.15


@dataclass(frozen=True)
class Identity:
    """A synthetic subject, ready to be posed and animated frame by frame."""

    subject: str
    source: str  # source face name
    canvas: np.ndarray  # float32 (h, w, C) face photo at frame scale, colour-adjusted
    mask: np.ndarray  # float32 (h, w) opacity of face, hair, neck and shoulders, 0..1
    landmarks: np.ndarray  # (5, 2) in canvas pixels
    face_px: float  # face box height in canvas pixels (amplitudes scale with it)
    shape_field: np.ndarray  # float32 (h, w, 2) static warp: the subject's face shape
    blink_field: np.ndarray  # float32 (h, w, 2) AU45 field with peak 1
    to_frame: np.ndarray  # (2, 3) affine canvas -> frame, rest pose
    background: np.ndarray  # float32 (H, W, C)
    lighting: np.ndarray  # float32 (H, W, 1) brightness gain over the frame

    def pivot(self) -> np.ndarray:
        """Rest position in the frame of the point the head turns about (landmarks' mean)."""
        return self.to_frame[:, :2] @ self.landmarks.mean(axis=0) + self.to_frame[:, 2]

    def frame_landmarks(self) -> np.ndarray:
        """The five landmarks in frame pixels at the rest pose (shape warp included)."""
        h, w = self.shape_field.shape[:2]
        cols = np.clip(np.rint(self.landmarks[:, 0]).astype(int), 0, w - 1)
        rows = np.clip(np.rint(self.landmarks[:, 1]).astype(int), 0, h - 1)
        moved = self.landmarks + self.shape_field[rows, cols]
        return moved @ self.to_frame[:, :2].T + self.to_frame[:, 2]

    def frame_face_px(self) -> float:
        """Face box height in frame pixels."""
        return self.face_px * float(np.hypot(*self.to_frame[:, 1]))


def build_identity(seed: int, subject: str, source: SourceFace, look: Look) -> Identity:
    """Draw a subject's identity from the seed and build its images."""
    rng = rng_for(seed, "identity", subject)
    width, height = look.frame_size
    channels = 1 if look.grayscale else 3
    face_px = look.face_fraction * height * rng.uniform(0.94, 1.06)
    canvas, mask, box, landmarks = _head(rng, source, face_px)
    shape = mask.shape
    to_frame = _placement(rng, landmarks, look.frame_size)
    pivot = to_frame[:, :2] @ landmarks.mean(axis=0) + to_frame[:, 2]
    return Identity(
        subject=subject,
        source=source.name,
        canvas=_channels(canvas, channels),
        mask=mask,
        landmarks=landmarks,
        face_px=float(box[3] - box[1]),
        shape_field=_shape_field(rng, box, shape),
        blink_field=action_field(landmarks, (AuAction(BLINK, "both", 1.0),), shape),
        to_frame=to_frame,
        background=_channels(_background(rng, (height, width)), channels),
        lighting=_lighting(rng, (height, width), pivot),
    )


def _head(rng: np.random.Generator, source: SourceFace, face_px: float):
    """The head canvas: the face photo scaled to a face box `face_px` high, coloured, and
    pasted (through its soft elliptical mask) over drawn hair, neck and shoulders.

    Returns (RGB canvas, opacity, face box, landmarks), positions in canvas pixels.
    """
    scale = face_px / source.box_height
    photo = _skin(_resize(source.image, scale, sharpen=source.low_resolution), rng)
    box = source.box * scale
    size = (round(_CANVAS[0] * face_px), round(_CANVAS[1] * face_px))
    shift = np.round(
        [size[0] / 2 - (box[0] + box[2]) / 2, _FACE_AT * size[1] - (box[1] + box[3]) / 2]
    )
    box = box + np.tile(shift, 2)
    landmarks = source.landmarks * scale + shift
    shape = (size[1], size[0])
    translate = np.array([[1, 0, shift[0]], [0, 1, shift[1]]])
    face = cv2.warpAffine(photo, translate, size, flags=cv2.INTER_NEAREST)
    bounds = (shift[0], shift[1], shift[0] + photo.shape[1], shift[1] + photo.shape[0])
    ellipse = _face_ellipse(box, bounds)
    face_mask = _mask(ellipse, shape)
    skin = _mean_colour(face, face_mask)
    figure, figure_alpha = _figure(rng, ellipse, float(box[3] - box[1]), shape, skin)
    canvas = figure + face_mask[:, :, None] * (face - figure)
    return canvas, np.maximum(face_mask, figure_alpha), box, landmarks


def _resize(image: np.ndarray, scale: float, sharpen: bool) -> np.ndarray:
    """Resize a photo to frame scale: area averaging to shrink, Lanczos to enlarge. An
    enlarged low-resolution crop (LFW, 25 px) is then smoothed edge-preservingly (bilateral
    filter, which removes the blocky pixel grid) and given a mild unsharp mask."""
    size = _scaled_size(image, scale)
    if scale <= 1:
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    out = cv2.resize(image, size, interpolation=cv2.INTER_LANCZOS4)
    if sharpen:
        out = cv2.bilateralFilter(out, 0, 12, 0.6 * scale)
        blur = cv2.GaussianBlur(out, (0, 0), 0.6 * scale)
        out = cv2.addWeighted(out, 1.4, blur, -0.4, 0)
    return np.clip(out, 0, 255)


def _scaled_size(image: np.ndarray, scale: float) -> tuple[int, int]:
    return (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))


def _skin(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The face in colour: a skin tone for grey photos, a tone shift for colour ones, and a
    darker or lighter complexion. Returns (h, w, 3) float32 RGB."""
    tone = _SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))]
    jitter = rng.uniform(-0.04, 0.04, 3).astype(np.float32)
    if photo.ndim == 2:
        rgb = photo[:, :, None] * (np.asarray(tone, np.float32) * (1 + jitter))
    else:
        rgb = photo * (1 + jitter) * np.float32(np.mean(tone))
    return np.clip(rgb, 0, 255).astype(np.float32)


def _channels(image: np.ndarray, channels: int) -> np.ndarray:
    """RGB (h, w, 3) float32 as (h, w, channels): grey for one-channel datasets."""
    if channels == 3:
        return np.ascontiguousarray(image, dtype=np.float32)
    return cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2GRAY)[:, :, None]


def _mean_colour(image: np.ndarray, weight: np.ndarray) -> np.ndarray:
    total = float(weight.sum())
    return (image * weight[:, :, None]).sum(axis=(0, 1)) / max(total, 1e-6)


def _face_ellipse(box: np.ndarray, bounds: tuple[float, ...]) -> tuple[float, ...]:
    """(cx, cy, ax, ay) of the face's ellipse: around the face box, kept inside the photo's
    `bounds` (x0, y0, x1, y1) on the canvas; LFW crops are tight, so theirs is inscribed."""
    box_w, box_h = box[2] - box[0], box[3] - box[1]
    cx = (box[0] + box[2]) / 2
    cy = (box[1] + box[3]) / 2 - _MASK_RAISE * box_h
    ax = min(_MASK_AXES[0] * box_w, cx - bounds[0], bounds[2] - 1 - cx)
    ay = min(_MASK_AXES[1] * box_h, cy - bounds[1], bounds[3] - 1 - cy)
    return cx, cy, ax, ay


def _mask(ellipse: tuple[float, ...], shape: tuple[int, int]) -> np.ndarray:
    """Soft face mask: 1 inside the ellipse, a smooth fall to 0 over its outer rim."""
    cx, cy, ax, ay = ellipse
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    radius = np.sqrt(((xs - cx) / ax) ** 2 + ((ys - cy) / ay) ** 2)
    t = np.clip((1 - radius) / _MASK_FEATHER, 0, 1)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def _figure(rng: np.random.Generator, ellipse, box_h: float, shape: tuple[int, int], skin):
    """Hair framing the face ellipse, neck and shoulders: (h, w, 3) colours, soft alpha."""
    h, w = shape
    cx, cy, ax, ay = ellipse
    hair = np.asarray(_HAIR[int(rng.integers(len(_HAIR)))], np.float32) * rng.uniform(0.85, 1.15)
    cloth = rng.uniform(25, 185, 3).astype(np.float32)
    neck = np.asarray(skin, np.float32) * 0.8
    colour = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)
    layers = [
        (cloth, _shoulders(box_h, cx, cy, shape)),
        (neck, _ellipse(shape, (cx, cy + 0.55 * box_h), (0.22 * box_h, 0.45 * box_h))),
        (hair, _ellipse(shape, (cx, cy - 0.14 * ay), (1.16 * ax + 2, 1.1 * ay + 2))),
    ]
    for value, region in layers:
        colour[region] = value
        alpha[region] = 1.0
    grain = rng.standard_normal((h, w)).astype(np.float32)
    texture = cv2.GaussianBlur(grain, (0, 0), 0.02 * box_h)
    colour *= 1 + 0.06 * texture[:, :, None] / max(float(texture.std()), 1e-6)
    soft = 0.6 + 0.006 * box_h
    weight = cv2.GaussianBlur(alpha, (0, 0), soft)
    colour = cv2.GaussianBlur(colour * alpha[:, :, None], (0, 0), soft)
    return colour / np.maximum(weight, 1e-3)[:, :, None], weight


def _ellipse(shape: tuple[int, int], centre, axes) -> np.ndarray:
    """Boolean mask of a filled axis-aligned ellipse."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    return ((xs - centre[0]) / axes[0]) ** 2 + ((ys - centre[1]) / axes[1]) ** 2 <= 1


def _shoulders(box_h: float, cx: float, cy: float, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the shoulders: a wide ellipse continued down to the canvas bottom."""
    middle = cy + 1.05 * box_h
    region = _ellipse(shape, (cx, middle), (1.0 * box_h, 0.35 * box_h))
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    region |= (ys >= middle) & (np.abs(xs - cx) <= 1.0 * box_h)
    return region


def _shape_field(rng: np.random.Generator, box: np.ndarray, shape: tuple[int, int]):
    """A smooth static warp: three broad bumps of up to 2 % of the face height."""
    h, w = shape
    box_h = float(box[3] - box[1])
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    field = np.zeros((h, w, 2), np.float32)
    for _ in range(3):
        cx = rng.uniform(box[0], box[2])
        cy = rng.uniform(box[1], box[3])
        vector = rng.uniform(-0.02, 0.02, 2) * box_h
        sigma = 0.3 * box_h
        weight = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
        field += weight[:, :, None] * vector.astype(np.float32)
    return field


def _placement(rng: np.random.Generator, landmarks: np.ndarray, frame_size: tuple[int, int]):
    """Affine canvas -> frame: face shape (anisotropic scale), roll of a few degrees, and the
    face's position near the frame centre."""
    width, height = frame_size
    sx, sy = rng.uniform(0.94, 1.06, 2)
    angle = np.deg2rad(rng.uniform(-4, 4))
    target = np.array(
        [width * (0.5 + rng.uniform(-0.06, 0.06)), height * (0.45 + rng.uniform(-0.04, 0.04))]
    )
    cos, sin = np.cos(angle), np.sin(angle)
    linear = np.array([[cos, -sin], [sin, cos]]) @ np.diag([sx, sy])
    centre = landmarks.mean(axis=0)  # between the eyes and the mouth
    return np.hstack([linear, (target - linear @ centre)[:, None]])


def _background(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A plain, gradient or softly textured backdrop in muted colours."""
    h, w = shape
    kind = rng.choice(["plain", "gradient", "texture"])
    base = rng.uniform(70, 215) + rng.uniform(-18, 18, 3)
    image = np.broadcast_to(base.astype(np.float32), (h, w, 3)).copy()
    if kind == "gradient":
        other = rng.uniform(70, 215) + rng.uniform(-18, 18, 3)
        angle = rng.uniform(0, 2 * np.pi)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        t = ((xs / w - 0.5) * np.cos(angle) + (ys / h - 0.5) * np.sin(angle)) + 0.5
        image += np.clip(t, 0, 1)[:, :, None] * (other - base).astype(np.float32)
    elif kind == "texture":
        noise = rng.standard_normal((h, w)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), 0.03 * w)
        noise *= 12 / max(float(noise.std()), 1e-6)
        image += noise[:, :, None]
    return np.clip(image, 0, 255)


def _lighting(rng: np.random.Generator, shape: tuple[int, int], centre: np.ndarray):
    """Overall gain and a linear gradient across the frame (light from one side)."""
    h, w = shape
    gain = rng.uniform(0.85, 1.12)
    slope = rng.uniform(0, 0.3)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    along = ((xs - centre[0]) * np.cos(angle) + (ys - centre[1]) * np.sin(angle)) / max(w, h)
    return (gain * (1 + slope * along))[:, :, None].astype(np.float32)
