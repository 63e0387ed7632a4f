"""FACS action units as smooth displacement fields placed from five facial landmarks.

Each action unit (AU) is a few control points. A control point sits at a landmark (an eye,
the nose tip, a mouth corner, or the middle of the eyes or of the mouth) plus an offset,
and carries a displacement vector; the AU's field is the sum of the vectors, each weighted
by a Gaussian of the distance to its point. Offsets and widths are in units of the
inter-ocular distance (IOD) and are measured in the face's own axes: x along the eye line,
pointing away from the face's midline on that side ("outward"), y perpendicular to it,
pointing down the face. So the same table fits any face size, position and roll.

Emotions map to AU combinations after EMFACS and the micro-expression datasets' own
criteria (CASME II, SAMM): required AUs always act, optional ones join at random per clip,
and "others" draws AUs that no other class uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

Side = Literal["both", "left", "right"]  # left/right: the image's left or right half

# The five MTCNN landmarks, in facenet-pytorch's order.
LEFT_EYE, RIGHT_EYE, NOSE, MOUTH_LEFT, MOUTH_RIGHT = range(5)


@dataclass(frozen=True)
class ControlPoint:
    """One Gaussian-weighted displacement of an AU."""

    anchor: Literal["eye", "mouth", "nose", "eye_mid", "mouth_mid"]
    offset: tuple[float, float]  # from the anchor, IOD units (outward, down)
    vector: tuple[float, float]  # displacement direction and relative size (outward, down)
    sigma: float  # Gaussian width, IOD units
    mirrored: bool = True  # placed on both sides (eye/mouth anchors always are)


@dataclass(frozen=True)
class ActionUnit:
    number: int
    name: str
    points: tuple[ControlPoint, ...]


def _p(anchor, ox, oy, dx, dy, sigma, mirrored=True) -> ControlPoint:
    return ControlPoint(anchor, (ox, oy), (dx, dy), sigma, mirrored)


ACTION_UNITS: dict[int, ActionUnit] = {
    au.number: au
    for au in (
        ActionUnit(1, "inner brow raiser", (_p("eye", -0.15, -0.45, 0.0, -1.0, 0.17),)),
        ActionUnit(2, "outer brow raiser", (_p("eye", 0.25, -0.40, 0.0, -1.0, 0.18),)),
        ActionUnit(4, "brow lowerer", (_p("eye", -0.12, -0.40, -0.5, 0.85, 0.18),)),
        ActionUnit(5, "upper lid raiser", (_p("eye", 0.0, -0.14, 0.0, -1.0, 0.10),)),
        ActionUnit(
            6,
            "cheek raiser",
            (
                _p("eye", 0.10, 0.45, 0.0, -1.0, 0.22),
                _p("eye", 0.0, 0.15, 0.0, -0.6, 0.10),
            ),
        ),
        ActionUnit(
            7,
            "lid tightener",
            (
                _p("eye", 0.0, 0.13, 0.0, -1.0, 0.09),
                _p("eye", 0.0, -0.13, 0.0, 0.4, 0.09),
            ),
        ),
        ActionUnit(
            9,
            "nose wrinkler",
            (
                _p("nose", 0.16, -0.35, 0.0, -1.0, 0.13),
                _p("nose", 0.20, 0.10, 0.0, -0.5, 0.12),
                _p("eye", -0.20, -0.35, 0.0, 0.5, 0.15),
            ),
        ),
        ActionUnit(
            10,
            "upper lip raiser",
            (
                _p("mouth", -0.15, -0.12, 0.0, -1.0, 0.13),
                _p("nose", 0.20, 0.15, 0.0, -0.4, 0.12),
            ),
        ),
        ActionUnit(
            12,
            "lip corner puller",
            (
                _p("mouth", 0.0, 0.0, 0.6, -0.8, 0.14),
                _p("mouth", 0.25, -0.25, 0.3, -0.4, 0.16),
            ),
        ),
        ActionUnit(14, "dimpler", (_p("mouth", 0.05, 0.0, 0.9, -0.1, 0.11),)),
        ActionUnit(15, "lip corner depressor", (_p("mouth", 0.0, 0.05, 0.2, 1.0, 0.13),)),
        ActionUnit(16, "lower lip depressor", (_p("mouth", -0.2, 0.12, 0.2, 1.0, 0.12),)),
        ActionUnit(
            17,
            "chin raiser",
            (
                _p("mouth_mid", 0.0, 0.45, 0.0, -1.0, 0.20, mirrored=False),
                _p("mouth_mid", 0.0, 0.12, 0.0, -0.5, 0.12, mirrored=False),
            ),
        ),
        ActionUnit(18, "lip pucker", (_p("mouth", 0.0, 0.0, -1.0, 0.0, 0.12),)),
        ActionUnit(20, "lip stretcher", (_p("mouth", 0.05, 0.02, 1.0, 0.2, 0.13),)),
        ActionUnit(
            23,
            "lip tightener",
            (
                _p("mouth_mid", 0.0, -0.10, 0.0, 0.6, 0.10, mirrored=False),
                _p("mouth_mid", 0.0, 0.12, 0.0, -0.6, 0.10, mirrored=False),
                _p("mouth", 0.0, 0.0, -0.5, 0.0, 0.10),
            ),
        ),
        ActionUnit(
            24,
            "lip pressor",
            (
                _p("mouth_mid", 0.0, -0.08, 0.0, 1.0, 0.12, mirrored=False),
                _p("mouth_mid", 0.0, 0.10, 0.0, -1.0, 0.12, mirrored=False),
            ),
        ),
        ActionUnit(
            25,
            "lips part",
            (
                _p("mouth_mid", 0.0, 0.10, 0.0, 1.0, 0.12, mirrored=False),
                _p("mouth_mid", 0.0, -0.06, 0.0, -0.4, 0.10, mirrored=False),
            ),
        ),
        ActionUnit(
            26,
            "jaw drop",
            (
                _p("mouth_mid", 0.0, 0.55, 0.0, 1.0, 0.35, mirrored=False),
                _p("mouth_mid", 0.0, 0.15, 0.0, 0.7, 0.15, mirrored=False),
            ),
        ),
        ActionUnit(38, "nostril dilator", (_p("nose", 0.22, 0.05, 1.0, 0.0, 0.08),)),
        ActionUnit(
            45,
            "blink",
            (
                _p("eye", 0.0, -0.10, 0.0, 1.0, 0.11),
                _p("eye", 0.0, 0.08, 0.0, -0.3, 0.08),
            ),
        ),
    )
}

BLINK = 45


@dataclass(frozen=True)
class EmotionAUs:
    """The AUs of one emotion class: always, sometimes, and on which side."""

    required: tuple[int, ...]
    optional: tuple[int, ...] = ()
    unilateral: bool = False  # contempt: all AUs on one side of the face, chosen per clip
    pick_from: tuple[int, ...] = ()  # others: 1-2 AUs drawn from these per clip


# Emotion -> AUs (EMFACS prototypes, CASME II / SAMM coding criteria). Required AU sets
# differ between every pair of classes that share a dataset protocol, and "others" uses
# only AUs that no other class uses.
EMOTION_AUS: dict[str, EmotionAUs] = {
    "happiness": EmotionAUs(required=(12,), optional=(6, 25)),
    "surprise": EmotionAUs(required=(1, 2), optional=(5, 26)),
    "disgust": EmotionAUs(required=(9,), optional=(10, 25)),
    "repression": EmotionAUs(required=(14, 17), optional=(15,)),
    "sadness": EmotionAUs(required=(1, 4, 15)),
    "fear": EmotionAUs(required=(1, 2, 4, 20), optional=(5, 25)),
    "anger": EmotionAUs(required=(4, 7), optional=(5, 23)),
    "contempt": EmotionAUs(required=(14,), optional=(12,), unilateral=True),
    "others": EmotionAUs(required=(), pick_from=(16, 18, 24, 38)),
}

# Spellings the datasets use for the same class (after trimming and case-folding).
EMOTION_SYNONYMS: dict[str, str] = {
    "happy": "happiness",
    "sad": "sadness",
    "other": "others",
    # SMIC labels only the class: its positive clips show happiness, negative ones (mostly
    # disgust in SMIC's elicitation) get disgust's AUs.
    "positive": "happiness",
    "negative": "disgust",
}


def canonical_emotion(label: str) -> str | None:
    """The EMOTION_AUS key of a normalised label (happy -> happiness), None if unknown."""
    label = EMOTION_SYNONYMS.get(label, label)
    return label if label in EMOTION_AUS else None


@dataclass(frozen=True)
class AuAction:
    """One AU acting in a clip: which, on which side, how strongly (relative, 0..1)."""

    au: int
    side: Side
    intensity: float


def choose_actions(emotion: str, rng: np.random.Generator, optional: bool = True):
    """The AUs one clip of `emotion` shows: required ones, optional ones with probability
    1/2 each, intensities U(0.7, 1); contempt on one side chosen at random."""
    spec = EMOTION_AUS[canonical_emotion(emotion) or emotion]
    aus = list(spec.required)
    if spec.pick_from:
        count = int(rng.integers(1, 3))
        aus += sorted(int(a) for a in rng.choice(spec.pick_from, size=count, replace=False))
    if optional:
        aus += [au for au in spec.optional if rng.random() < 0.5]
    side: Side = "both"
    if spec.unilateral:
        side = "left" if rng.random() < 0.5 else "right"
    return tuple(AuAction(au, side, float(rng.uniform(0.7, 1.0))) for au in aus)


_AU_TOKEN = re.compile(r"^([LRAB]?)(\d+)([A-E]?)$")


def parse_aus(text: str) -> tuple[AuAction, ...]:
    """Action units from an annotation string ("4+7+L10", "R12A+R14A").

    Only AUs this module draws are kept; FACS L/R name the subject's left/right, which is
    the image's right/left. Intensity letters A..E map to 0.6..1.0.
    """
    actions = []
    for token in re.split(r"[+,\s]+", str(text).strip().upper()):
        match = _AU_TOKEN.match(token)
        if not match:
            continue
        prefix, number, letter = match.groups()
        au = int(number)
        if au not in ACTION_UNITS or au == BLINK:
            continue
        side: Side = {"L": "right", "R": "left"}.get(prefix, "both")  # type: ignore[assignment]
        intensity = 0.6 + 0.1 * "ABCDE".index(letter) if letter else 1.0
        actions.append(AuAction(au, side, intensity))
    return tuple(actions)


def format_aus(actions: tuple[AuAction, ...]) -> str:
    """The AU string written to a spreadsheet, FACS style: "1+2+5", "R12+R14"."""
    prefix = {"both": "", "left": "R", "right": "L"}
    ordered = sorted(actions, key=lambda a: a.au)
    return "+".join(f"{prefix[a.side]}{a.au}" for a in ordered)


def face_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Unit x (image left eye -> right eye), unit y (down the face) and the IOD."""
    along = landmarks[RIGHT_EYE] - landmarks[LEFT_EYE]
    iod = float(np.hypot(*along))
    ex = along / iod
    ey = np.array([-ex[1], ex[0]])
    return ex, ey, iod


def _anchor(landmarks: np.ndarray, name: str, sign: int) -> np.ndarray:
    """Anchor position for the side with sign -1 (image left) or +1 (image right)."""
    if name == "eye":
        return landmarks[LEFT_EYE if sign < 0 else RIGHT_EYE]
    if name == "mouth":
        return landmarks[MOUTH_LEFT if sign < 0 else MOUTH_RIGHT]
    if name == "nose":
        return landmarks[NOSE]
    if name == "eye_mid":
        return (landmarks[LEFT_EYE] + landmarks[RIGHT_EYE]) / 2
    return (landmarks[MOUTH_LEFT] + landmarks[MOUTH_RIGHT]) / 2


def _signs(point: ControlPoint, side: Side) -> tuple[int, ...]:
    if not point.mirrored:
        return (1,)
    return {"both": (-1, 1), "left": (-1,), "right": (1,)}[side]


def placed_points(landmarks: np.ndarray, au: int, side: Side = "both"):
    """The AU's control points in image coordinates: (centre, vector, sigma) in pixels
    (vector relative, unit-ish)."""
    ex, ey, iod = face_axes(landmarks)
    placed = []
    for point in ACTION_UNITS[au].points:
        for sign in _signs(point, side):
            ox, oy = point.offset
            dx, dy = point.vector
            centre = _anchor(landmarks, point.anchor, sign) + iod * (sign * ox * ex + oy * ey)
            vector = sign * dx * ex + dy * ey
            placed.append((centre, vector, point.sigma * iod))
    return placed


def action_field(
    landmarks: np.ndarray, actions: tuple[AuAction, ...], shape: tuple[int, int]
) -> np.ndarray:
    """Displacement field (H, W, 2) of a set of AU actions, peak magnitude scaled to 1.

    Where a point p of the face moves to p + field(p). All zero for no actions.
    """
    height, width = shape
    field = np.zeros((height, width, 2), np.float32)
    for action in actions:
        for centre, vector, sigma in placed_points(landmarks, action.au, action.side):
            _add_gaussian(field, centre, action.intensity * vector, sigma)
    peak = float(np.sqrt((field**2).sum(axis=2)).max())
    return field / peak if peak > 0 else field


def _add_gaussian(field: np.ndarray, centre: np.ndarray, vector: np.ndarray, sigma: float):
    """field += vector * exp(-|p - centre|^2 / 2 sigma^2), evaluated within 4 sigma."""
    height, width = field.shape[:2]
    radius = 4 * sigma
    x0, x1 = max(0, int(centre[0] - radius)), min(width, int(centre[0] + radius) + 1)
    y0, y1 = max(0, int(centre[1] - radius)), min(height, int(centre[1] + radius) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    xs = np.arange(x0, x1, dtype=np.float32) - np.float32(centre[0])
    ys = np.arange(y0, y1, dtype=np.float32) - np.float32(centre[1])
    scale = np.float32(-0.5 / sigma**2)
    weight = np.exp(scale * ys[:, None] ** 2) * np.exp(scale * xs[None, :] ** 2)
    field[y0:y1, x0:x1, 0] += np.float32(vector[0]) * weight
    field[y0:y1, x0:x1, 1] += np.float32(vector[1]) * weight
