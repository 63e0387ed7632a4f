"""Face detection with facenet-pytorch's MTCNN, batched by image size.

MTCNN (and torch) are imported and built only on the first detection, once per
process and per (device, detector settings); later calls reuse the instance.
MTCNN takes a batch only of equal-size images, so images are grouped by shape
and each group is cut into batches of `config.batch_size`.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from tsfmicro.errors import InputError
from tsfmicro.faces.config import FaceCropConfig

# Landmark order as MTCNN returns it; "left"/"right" are as seen in the image.
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

_detectors: dict[tuple[Any, ...], Any] = {}
_detectors_lock = threading.Lock()


@dataclass(frozen=True)
class FaceDetection:
    """One face found by MTCNN, in the pixel coordinates of the full-size input image."""

    box: np.ndarray  # (4,) float32: x1, y1, x2, y2
    prob: float  # MTCNN O-net face probability
    landmarks: np.ndarray  # (5, 2) float32 (x, y), in LANDMARK_NAMES order


def get_mtcnn(config: FaceCropConfig) -> Any:
    """The process-wide MTCNN for the config's device and detector settings, built on first use."""
    signature = (config.device, config.min_face_size, config.thresholds, config.factor)
    with _detectors_lock:
        if signature not in _detectors:
            import torch
            from facenet_pytorch import MTCNN

            _detectors[signature] = MTCNN(
                min_face_size=config.min_face_size,
                thresholds=list(config.thresholds),
                factor=config.factor,
                keep_all=True,
                post_process=False,
                device=torch.device(config.device),
            ).eval()
        return _detectors[signature]


def min_frame_side(config: FaceCropConfig) -> int:
    """The shortest frame side, in pixels, that MTCNN can search: its smallest face
    (`min_face_size`); a smaller image leaves its image pyramid empty."""
    return config.min_face_size


def frame_size_problem(shape: Sequence[int], config: FaceCropConfig) -> str | None:
    """Why a frame of this (H, W, ...) shape is too small for face detection, or None.

    MTCNN scales the image by 12 / min_face_size and needs 12 pixels on the shorter side of
    that (facenet-pytorch's detect_face); `detect_max_side` may shrink the frame first."""
    height, width = int(shape[0]), int(shape[1])
    shorter = min(height, width)
    longer = max(height, width)
    max_side = config.detect_max_side
    if max_side is not None and longer > max_side:
        shorter = round(shorter * max_side / longer)  # the side _downscale leaves
    if shorter * (12.0 / config.min_face_size) >= 12:
        return None
    shrunk = "" if shorter == min(height, width) else f" ({shorter} after detect_max_side)"
    return (
        f"{width}x{height} pixels{shrunk}: face detection needs at least "
        f"{min_frame_side(config)} pixels on the shorter side (FaceCropConfig.min_face_size)"
    )


def detect_faces(
    images: Sequence[np.ndarray], config: FaceCropConfig
) -> list[FaceDetection | None]:
    """Detect one face per (H, W, 3) uint8 RGB image; None where MTCNN finds none.

    With several faces the one picked is the most probable (`select="probability"`)
    or the one with the largest box area (`select="largest"`). Images larger than
    `config.detect_max_side` are shrunk for detection and the results scaled back.
    An image too small to search (frame_size_problem) is an InputError.
    """
    for index, image in enumerate(images):
        problem = frame_size_problem(image.shape, config)
        if problem is not None:
            raise InputError(f"image {index} of {len(images)} is {problem}")
    prepared = [_downscale(image, config.detect_max_side) for image in images]
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for index, (small, _) in enumerate(prepared):
        groups[small.shape].append(index)

    results: list[FaceDetection | None] = [None] * len(images)
    for indices in groups.values():
        for start in range(0, len(indices), config.batch_size):
            batch = indices[start : start + config.batch_size]
            found = _detect_batch(np.stack([prepared[i][0] for i in batch]), config)
            for index, detection in zip(batch, found, strict=True):
                results[index] = _rescale(detection, prepared[index][1])
    return results


def _downscale(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """Shrink `image` so its longer side is at most `max_side`; return it and the factor used."""
    longer = max(image.shape[:2])
    if max_side is None or longer <= max_side:
        return image, 1.0
    scale = max_side / longer
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return small, scale


@contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """Run the body with torch limited to `count` intra-op threads (None: unchanged).

    On a machine whose cores are busy with other work, torch's default of one
    thread per core makes its threads wait on each other; fewer threads can be
    several times faster there. The previous setting is restored afterwards.
    """
    if count is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _detect_batch(batch: np.ndarray, config: FaceCropConfig) -> list[FaceDetection | None]:
    """Run MTCNN on a (B, H, W, 3) uint8 batch and pick one face per image."""
    mtcnn = get_mtcnn(config)
    with _torch_threads(config.torch_threads):
        boxes, probs, points = mtcnn.detect(batch, landmarks=True)
    return [
        _select(image_boxes, image_probs, image_points, config.select)
        for image_boxes, image_probs, image_points in zip(boxes, probs, points, strict=True)
    ]


def _select(boxes: Any, probs: Any, points: Any, select: str) -> FaceDetection | None:
    """Pick one face out of an image's MTCNN output (None when it found nothing)."""
    if boxes is None or len(boxes) == 0:
        return None
    boxes = np.asarray(boxes, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    if select == "largest":
        scores = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    else:
        scores = probs
    best = int(np.argmax(scores))
    return FaceDetection(
        box=boxes[best].astype(np.float32),
        prob=float(probs[best]),
        landmarks=np.asarray(points[best], dtype=np.float32).reshape(5, 2),
    )


def _rescale(detection: FaceDetection | None, scale: float) -> FaceDetection | None:
    """Bring a detection made on a shrunk image back to full-size pixel coordinates."""
    if detection is None or scale == 1.0:
        return detection
    return FaceDetection(
        box=(detection.box / scale).astype(np.float32),
        prob=detection.prob,
        landmarks=(detection.landmarks / scale).astype(np.float32),
    )
