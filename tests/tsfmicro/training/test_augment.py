"""Joint augmentation: exact flips and shifts, one draw shared by onset and apex."""

import math

import torch

from tsfmicro.training.augment import (
    AugmentParams,
    augment_pair,
    draw_params,
    scaled_padding,
)


def _frames(b=3, s=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, s, s, generator=g), torch.rand(b, 3, s, s, generator=g)


def _params(b, flip=False, angle=0.0, shift=(0, 0)):
    return AugmentParams(
        flip=torch.full((b,), flip),
        angle=torch.full((b,), angle),
        shift=torch.tensor([shift] * b, dtype=torch.float32),
    )


def test_identity_transform_changes_nothing():
    onset, apex = _frames()
    o, a = augment_pair(onset, apex, _params(3))
    assert torch.allclose(o, onset, atol=1e-5) and torch.allclose(a, apex, atol=1e-5)


def test_flip_is_a_horizontal_mirror():
    onset, apex = _frames()
    o, a = augment_pair(onset, apex, _params(3, flip=True))
    assert torch.allclose(o, onset.flip(-1), atol=1e-5)
    assert torch.allclose(a, apex.flip(-1), atol=1e-5)


def test_crop_shift_moves_content_with_black_padding():
    onset, apex = _frames()
    o, _ = augment_pair(onset, apex, _params(3, shift=(2, 1)))  # read from x+2, y+1
    assert torch.allclose(o[..., :-1, :-2], onset[..., 1:, 2:], atol=1e-5)
    assert torch.all(o[..., :, -2:] == 0) and torch.all(o[..., -1, :] == 0)


def test_same_draw_for_both_frames_keeps_the_motion_aligned():
    onset, _ = _frames(b=4)
    apex = onset.clone()
    apex[:, :, 6:10, 6:10] += 0.3  # a local change: the "motion"
    params = draw_params(4, 16, torch.Generator().manual_seed(1), 0.5, 3.0, 15)
    o, a = augment_pair(onset, apex, params)
    diff_before = apex - onset
    # Transforming the difference equals the difference of the transformed frames.
    d, _ = augment_pair(diff_before, diff_before, params)
    assert torch.allclose(a - o, d, atol=1e-5)


def test_draws_are_within_the_recipe_and_seeded():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    p1 = draw_params(500, 224, g1, 0.5, 3.0, 15)
    p2 = draw_params(500, 224, g2, 0.5, 3.0, 15)
    assert torch.equal(p1.angle, p2.angle) and torch.equal(p1.shift, p2.shift)
    assert p1.angle.abs().max() <= math.radians(3.0)
    assert p1.shift.abs().max() == 15 and p1.shift.abs().min() == 0
    assert 0.4 < p1.flip.float().mean() < 0.6
    assert scaled_padding(15, 64) == 4
