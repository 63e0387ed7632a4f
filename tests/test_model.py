"""TSFmicro forward: every fusion variant and preset, determinism, FLOPs, bad input."""

import pytest
import torch

from tsfmicro.config import FUSIONS, PRESETS, TEMPORAL_MIXERS, preset
from tsfmicro.errors import InputError
from tsfmicro.flops import model_cost
from tsfmicro.models import build_model

SMALL_PRESETS = [p for p in PRESETS if p != "paper"]


def _pair(cfg, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = cfg.image_size
    return torch.randn(batch, 3, s, s, generator=g), torch.randn(batch, 3, s, s, generator=g)


def _check_logits(cfg, batch=2):
    model = build_model(cfg, seed=0).eval()
    onset, apex = _pair(cfg, batch)
    with torch.no_grad():
        logits = model(onset, apex)
    assert logits.shape == (batch, cfg.num_classes)
    assert torch.isfinite(logits).all()
    return model


@pytest.mark.parametrize("mixer", TEMPORAL_MIXERS)
@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("name", SMALL_PRESETS)
def test_small_presets_every_fusion_and_mixer(name, fusion, mixer):
    _check_logits(preset(name, fusion=fusion, temporal_mixer=mixer, num_classes=4))


@pytest.mark.slow
@pytest.mark.parametrize("fusion", FUSIONS)
def test_paper_preset_every_fusion(fusion):
    _check_logits(preset("paper", fusion=fusion), batch=1)


@pytest.mark.parametrize("depth", [1, 2, 3, 8])
def test_other_temporal_depths(depth):
    model = _check_logits(preset("micro", temporal_depth=depth, spatial_depth=3))
    assert sum(len(s.blocks) for s in model.temporal.stages) == depth
    assert len(model.spatial.blocks) == 3


def test_forward_is_deterministic_under_a_seed():
    cfg = preset("micro")
    onset, apex = _pair(cfg)
    a = build_model(cfg, seed=7).eval()
    b = build_model(cfg, seed=7).eval()
    c = build_model(cfg, seed=8).eval()
    with torch.no_grad():
        out_a, out_b, out_c = a(onset, apex), b(onset, apex), c(onset, apex)
    assert torch.equal(out_a, out_b)
    assert not torch.allclose(out_a, out_c)


def test_build_model_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model(preset("micro"), seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_branches_see_what_they_should():
    """Temporal-only depends on the difference only; spatial-only on the onset only."""
    cfg = preset("micro")
    onset, apex = _pair(cfg)
    temporal = build_model(cfg.replace(fusion="temporal_only"), seed=0).eval()
    spatial = build_model(cfg.replace(fusion="spatial_only"), seed=0).eval()
    with torch.no_grad():
        shifted = temporal(onset + 0.5, apex + 0.5)  # same difference
        assert torch.allclose(temporal(onset, apex), shifted, atol=1e-5)
        assert torch.allclose(spatial(onset, apex), spatial(onset, torch.zeros_like(apex)))
        assert not torch.allclose(spatial(onset, apex), spatial(apex, apex))


def test_paper_preset_cost_is_near_published():
    cost = model_cost(preset("paper"))
    # The paper's figure is about 13 GFLOPs per sample forward; ours counts both attention
    # matmuls (docs/model.md explains the difference).
    assert 12.5e9 < cost.flops < 14.5e9
    assert 12e6 < cost.params < 14e6
    assert abs(sum(cost.by_part.values()) - cost.flops) < 0.01 * cost.flops
    assert 2.4e9 < cost.by_part["spatial branch"] < 2.8e9


@pytest.mark.parametrize(
    "shape, words",
    [((2, 3, 48, 48), "expects"), ((2, 1, 32, 32), "expects"), ((3, 32, 32), "expects")],
)
def test_wrong_image_shape_is_a_clear_error(shape, words):
    model = build_model(preset("micro"), seed=0)
    bad = torch.zeros(shape)
    with pytest.raises(InputError, match=words):
        model(bad, bad)


def test_integer_frames_and_mismatched_pairs_are_rejected():
    model = build_model(preset("micro"), seed=0)
    frames = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(InputError, match="normalised floats"):
        model(frames, frames)
    with pytest.raises(InputError, match="differ in shape"):
        model(torch.zeros(2, 3, 32, 32), torch.zeros(1, 3, 32, 32))


@pytest.mark.parametrize("mixer", TEMPORAL_MIXERS)
@pytest.mark.parametrize("fusion", FUSIONS)
def test_bf16_autocast_forward_and_backward(fusion, mixer):
    """Mixed precision as on a GPU (CPU autocast here): no dtype clashes, finite gradients."""
    cfg = preset("micro", fusion=fusion, temporal_mixer=mixer)
    model = build_model(cfg, seed=0)
    onset, apex = _pair(cfg, batch=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(onset, apex)
    assert logits.dtype == torch.bfloat16
    logits.float().logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
