"""What the synthetic frames contain: determinism, locality of each class's motion, amplitude.

These render real packaged face photos, so the first test in a session pays once for
loading torch and locating the faces with MTCNN (several seconds on a small machine).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from tsfmicro.synth.aus import face_axes
from tsfmicro.synth.config import REFERENCE_FACE_PX, SynthConfig
from tsfmicro.synth.plan import plan_dataset
from tsfmicro.synth.render import Renderer
from tsfmicro.synth.writer import write_dataset

# Everything but the expression switched off, to look at the expression alone.
QUIET = dict(
    noise_std=0.0,
    head_motion_px=0.0,
    head_rotation_deg=0.0,
    blink_rate_hz=0.0,
    flicker=0.0,
    amplitude_jitter=0.0,
    optional_aus=False,
)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_config_gives_byte_identical_copies_in_process_and_in_a_pool(tmp_path):
    config = SynthConfig(subjects=3, clips_per_subject=3, frame_size=(160, 128), seed=7)
    write_dataset(config, tmp_path / "a", workers=1)
    write_dataset(config, tmp_path / "b", workers=2)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    frames = [name for name in a if name.endswith(".jpg")]
    assert len(frames) == 3 * 3 * 2
    assert {name: a[name] for name in frames} == {name: b[name] for name in frames}
    assert not [name for name in a if ".tmp" in name]  # no temporary files left behind
    plan = plan_dataset(config)
    reseeded = dataclasses.replace(plan.context, config=config.replace(seed=8))
    clip = plan.clips[0]
    n = clip.frames[0]
    assert not np.array_equal(
        Renderer(plan.context).frame(clip, n), Renderer(reseeded).frame(clip, n)
    )


def test_sparse_and_full_clips_agree_on_shared_frames(tmp_path):
    config = SynthConfig(dataset="casme3", subjects=2, clips_per_subject=2, frame_size=(128, 96))
    sparse = _files(write_dataset(config, tmp_path / "sparse", workers=1).root)
    full = _files(write_dataset(config.replace(full_clips=True), tmp_path / "full", workers=1).root)
    sparse_frames = {k: v for k, v in sparse.items() if k.endswith(".jpg")}
    assert len(sparse_frames) == 8
    assert len([k for k in full if k.endswith(".jpg")]) > 3 * len(sparse_frames)
    assert all(full[name] == data for name, data in sparse_frames.items())


def test_a_frame_does_not_depend_on_what_was_rendered_before():
    plan = plan_dataset(SynthConfig(subjects=2, clips_per_subject=2, frame_size=(96, 96)))
    clip = plan.clips[-1]
    n = clip.events[0].apex
    warm = Renderer(plan.context)
    for other in plan.clips:
        for m in other.frames:
            warm.frame(other, m)
    assert np.array_equal(warm.frame(clip, n), Renderer(plan.context).frame(clip, n))
    onset = Renderer(plan.context).frame(clip, clip.events[0].onset)
    assert not np.array_equal(onset, warm.frame(clip, n))


def _region_energy(diff: np.ndarray, centres: list[np.ndarray], radius: float) -> float:
    """Mean absolute difference within discs around the given points."""
    ys, xs = np.mgrid[0 : diff.shape[0], 0 : diff.shape[1]]
    inside = np.zeros(diff.shape, bool)
    for x, y in centres:
        inside |= (xs - x) ** 2 + (ys - y) ** 2 <= radius**2
    return float(diff[inside].mean())


@pytest.fixture(scope="module")
def quiet_clips():
    """Clips of four classes for six subjects, nuisances off; (plan, renderer)."""
    config = SynthConfig(
        subjects=6,
        clips_per_subject=4,
        classes=("happiness", "surprise", "disgust", "repression"),
        amplitude_px=2.0,
        frame_size=(320, 240),
        **QUIET,
    )
    plan = plan_dataset(config)
    return plan, Renderer(plan.context)


def test_apex_differs_from_onset_where_the_class_acts(quiet_clips):
    """Happiness (AU12) moves the mouth corners, surprise (AU1+2) the brows: the
    onset-apex difference concentrates there, located from the face's landmarks."""
    plan, renderer = quiet_clips
    ratios: dict[str, list[float]] = {"happiness": [], "surprise": []}
    for clip in plan.clips:
        event = clip.events[0]
        if event.emotion not in ratios:
            continue
        onset = renderer.frame(clip, event.onset).astype(np.float32)
        apex = renderer.frame(clip, event.apex).astype(np.float32)
        diff = np.abs(apex - onset).sum(axis=2)
        landmarks = renderer.identity(clip.subject).frame_landmarks()
        ex, ey, iod = face_axes(landmarks)
        brows = [landmarks[0] - 0.42 * iod * ey, landmarks[1] - 0.42 * iod * ey]
        mouth = [landmarks[3], landmarks[4]]
        radius = 0.25 * iod
        mouth_energy = _region_energy(diff, mouth, radius)
        brow_energy = _region_energy(diff, brows, radius)
        ratios[event.emotion].append(mouth_energy / (brow_energy + 1e-3))
        assert diff.mean() > 0
    assert len(ratios["happiness"]) == 6 and len(ratios["surprise"]) == 6
    assert min(ratios["happiness"]) > 3, ratios
    assert max(ratios["surprise"]) < 1 / 3, ratios


def test_displacement_is_about_the_requested_amplitude(quiet_clips):
    """At the apex the applied field peaks at amplitude_px scaled from a 224 px face to
    the face in the frame, and optical flow measured on the images agrees."""
    plan, renderer = quiet_clips
    flow_ratios = []
    for clip in plan.clips:
        event = clip.events[0]
        identity = renderer.identity(clip.subject)
        expected = 2.0 * identity.frame_face_px() / REFERENCE_FACE_PX
        field = renderer.expression_field(clip, event.apex)
        peak = np.hypot(field[..., 0], field[..., 1]).max()
        peak_in_frame = peak * identity.frame_face_px() / identity.face_px
        assert peak_in_frame == pytest.approx(expected, rel=0.01)
        half = renderer.expression_field(clip, (event.onset + event.apex) // 2)
        assert 0 < np.abs(half).max() < np.abs(field).max()
        onset = cv2.cvtColor(renderer.frame(clip, event.onset), cv2.COLOR_RGB2GRAY)
        apex = cv2.cvtColor(renderer.frame(clip, event.apex), cv2.COLOR_RGB2GRAY)
        flow = cv2.calcOpticalFlowFarneback(onset, apex, None, 0.5, 3, 9, 5, 5, 1.1, 0)
        measured = np.percentile(np.hypot(flow[..., 0], flow[..., 1]), 99.9)
        flow_ratios.append(measured / expected)
    assert 0.6 < float(np.median(flow_ratios)) < 1.3, flow_ratios


def test_amplitude_knob_scales_the_difference():
    base = SynthConfig(subjects=2, clips_per_subject=2, frame_size=(160, 128), **QUIET)
    energies = []
    for amplitude in (1.0, 3.0):
        plan = plan_dataset(base.replace(amplitude_px=amplitude))
        renderer = Renderer(plan.context)
        total = 0.0
        for clip in plan.clips:
            event = clip.events[0]
            onset = renderer.frame(clip, event.onset).astype(np.float32)
            total += np.abs(renderer.frame(clip, event.apex) - onset).mean()
        energies.append(total)
    assert energies[1] > 2 * energies[0]


def test_the_onset_frame_carries_no_label_information():
    """The same clip with another emotion has the identical onset frame: the expression
    starts from zero at the onset, and timing, pose, blinks and noise never see the label."""
    plan = plan_dataset(SynthConfig(subjects=1, clips_per_subject=2, frame_size=(128, 96)))
    first, second = plan.clips
    swapped = dataclasses.replace(
        first,
        emotion=second.emotion,
        events=(dataclasses.replace(first.events[0], **_expression(second.events[0])),),
    )
    assert swapped.events[0].emotion != first.events[0].emotion
    renderer = Renderer(plan.context)
    onset, apex = first.events[0].onset, first.events[0].apex
    assert np.array_equal(renderer.frame(first, onset), renderer.frame(swapped, onset))
    assert not np.array_equal(renderer.frame(first, apex), renderer.frame(swapped, apex))


def _expression(event) -> dict:
    return {"emotion": event.emotion, "actions": event.actions}


def test_nuisances_change_the_frames_a_little():
    plan = plan_dataset(SynthConfig(subjects=2, clips_per_subject=5, frame_size=(128, 96)))
    noisy = Renderer(plan.context)
    quiet = Renderer(plan_dataset(plan.config.replace(**QUIET)).context)
    clip = plan.clips[0]
    onset = clip.events[0].onset
    a, b = noisy.frame(clip, onset), quiet.frame(clip, onset)
    assert a.shape == b.shape == (96, 128, 3)
    assert 0.5 < np.abs(a.astype(float) - b).mean() < 20
