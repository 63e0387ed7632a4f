"""MTCNN detection on real LFW faces pasted at known places."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tsfmicro.faces import FaceCropConfig, detect_faces
from tsfmicro.faces.detect import get_mtcnn

CONFIG = FaceCropConfig(size=64)


def overlap_fraction(box: np.ndarray, square: tuple[int, int, int]) -> float:
    """Share of the box's area that lies inside the pasted square."""
    x, y, side = square
    width = max(0.0, min(box[2], x + side) - max(box[0], x))
    height = max(0.0, min(box[3], y + side) - max(box[1], y))
    return width * height / ((box[2] - box[0]) * (box[3] - box[1]))


@pytest.mark.parametrize(
    ("face", "side", "x", "y"),
    [(0, 160, 80, 40), (1, 120, 10, 100), (2, 140, 170, 20), (3, 100, 200, 120)],
)
def test_box_lies_on_the_pasted_face(faces_make_scene, face, side, x, y):
    scene, square = faces_make_scene(face=face, side=side, x=x, y=y, seed=face)
    (found,) = detect_faces([scene], CONFIG)
    assert found is not None and found.prob > 0.9
    centre = (found.box[:2] + found.box[2:]) / 2
    assert x < centre[0] < x + side and y < centre[1] < y + side
    assert overlap_fraction(found.box, square) > 0.9
    assert (found.box[2] - found.box[0]) * (found.box[3] - found.box[1]) > 0.3 * side * side


def test_landmarks_are_eyes_nose_mouth_in_order(faces_make_scene):
    scene, _ = faces_make_scene(face=0, side=160, x=80, y=40)
    (found,) = detect_faces([scene], CONFIG)
    points = found.landmarks
    assert points.shape == (5, 2) and points.dtype == np.float32
    x1, y1, x2, y2 = found.box
    assert ((points[:, 0] > x1) & (points[:, 0] < x2)).all()
    assert ((points[:, 1] > y1) & (points[:, 1] < y2)).all()
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


def test_background_without_a_face_gives_none(faces_background):
    backgrounds = [faces_background(240, 320, seed) for seed in range(3)]
    assert detect_faces(backgrounds, CONFIG) == [None, None, None]


def test_mixed_sizes_keep_their_order_and_match_single_detection(
    faces_make_scene, faces_background
):
    images = [
        faces_make_scene(face=0, side=150, x=60, y=40)[0],
        faces_make_scene(face=1, side=120, x=30, y=30, height=200, width=260)[0],
        faces_background(240, 320, 7),
        faces_make_scene(face=2, side=110, x=180, y=90)[0],
    ]
    batched = detect_faces(images, dataclasses.replace(CONFIG, batch_size=2))
    assert [found is None for found in batched] == [False, False, True, False]
    for image, together in zip(images, batched, strict=True):
        (alone,) = detect_faces([image], CONFIG)
        if together is None:
            assert alone is None
        else:
            np.testing.assert_allclose(together.box, alone.box, atol=1e-2)


def test_several_faces_pick_largest_or_most_probable(faces_make_scene, faces_lfw):
    import cv2

    scene, _ = faces_make_scene(face=0, side=90, x=10, y=10, height=260, width=360)
    big = cv2.resize(faces_lfw[1], (150, 150), interpolation=cv2.INTER_CUBIC)
    scene[90:240, 190:340] = big[..., None]

    largest = detect_faces([scene], dataclasses.replace(CONFIG, select="largest"))[0]
    assert largest.box[0] > 150  # the big face on the right

    boxes, probs = get_mtcnn(CONFIG).detect(scene[None])
    assert len(boxes[0]) >= 2
    probable = detect_faces([scene], dataclasses.replace(CONFIG, select="probability"))[0]
    assert probable.prob == pytest.approx(float(np.max(probs[0])))


def test_downscaled_detection_reports_full_size_coordinates(faces_make_scene):
    scene, square = faces_make_scene(face=0, side=300, x=250, y=80, height=480, width=640)
    (full,) = detect_faces([scene], CONFIG)
    (small,) = detect_faces([scene], dataclasses.replace(CONFIG, detect_max_side=320))
    assert overlap_fraction(small.box, square) > 0.9
    np.testing.assert_allclose(small.box, full.box, atol=12)
    np.testing.assert_allclose(small.landmarks, full.landmarks, atol=12)


def test_detector_is_built_once_per_settings():
    first = get_mtcnn(CONFIG)
    assert get_mtcnn(dataclasses.replace(CONFIG, size=224, margin=0.5, batch_size=3)) is first
    assert get_mtcnn(dataclasses.replace(CONFIG, min_face_size=40)) is not first


def test_torch_threads_apply_during_detection_only(faces_make_scene, monkeypatch):
    import torch

    from tsfmicro.faces import detect as faces_detect

    scene, _ = faces_make_scene(face=0, side=160, x=80, y=40)
    (default,) = detect_faces([scene], CONFIG)
    before = torch.get_num_threads()
    seen = []
    mtcnn = get_mtcnn(CONFIG)
    real_detect = mtcnn.detect

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_detect(*args, **kwargs)

    monkeypatch.setattr(mtcnn, "detect", spy)
    (single,) = faces_detect.detect_faces([scene], dataclasses.replace(CONFIG, torch_threads=1))
    assert seen == [1] and torch.get_num_threads() == before
    np.testing.assert_allclose(single.box, default.box, atol=1e-3)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA device")
def test_cuda_detection_matches_cpu(faces_make_scene):
    scenes = [faces_make_scene(face=i, side=140, x=60 + 10 * i, y=40)[0] for i in range(3)]
    on_cpu = detect_faces(scenes, CONFIG)
    on_gpu = detect_faces(scenes, dataclasses.replace(CONFIG, device="cuda"))
    for cpu, gpu in zip(on_cpu, on_gpu, strict=True):
        np.testing.assert_allclose(gpu.box, cpu.box, atol=1.0)
        np.testing.assert_allclose(gpu.landmarks, cpu.landmarks, atol=1.0)
