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


def test_every_fusion_name_is_a_registered_variant_that_builds_only_what_it_uses():
    from tsfmicro.models.fusion import FUSION_VARIANTS

    assert tuple(FUSION_VARIANTS) == FUSIONS
    tops = {
        "late": {"temporal", "spatial", "head"},
        "early": {"temporal", "onset_stem", "head"},
        "t2s": {"temporal", "spatial", "head"},
        "t2s_pre": {"temporal", "spatial", "head"},
        "s2t": {"temporal", "spatial", "s2t", "head"},
        "s2t_ref": {"temporal", "spatial", "s2t", "head"},
        "temporal_only": {"temporal", "head"},
        "spatial_only": {"spatial", "head"},
        "spatial_only_apex": {"spatial", "head"},
    }
    assert set(tops) == set(FUSIONS)
    for fusion, expected in tops.items():
        model = build_model(preset("micro", fusion=fusion), seed=0)
        assert {k.split(".")[0] for k in model.state_dict()} == expected, fusion
        assert type(model.fusion) is FUSION_VARIANTS[fusion]
        assert not list(model.fusion.parameters())  # a variant holds no weights of its own


def test_checkpoint_keys_of_the_original_variants_are_unchanged():
    """Keys written before the fusion registry (spot checks per part): old checkpoints load."""
    keys = {
        "early": ["onset_stem.body.0.0.weight", "onset_stem.body.3.1.running_var"],
        "s2t": ["s2t.body.0.weight", "s2t.body.1.running_mean", "s2t.body.6.bias"],
        "t2s": ["spatial.pos_embed", "spatial.blocks.1.attn.qkv.weight", "spatial.norm.bias"],
        "late": ["temporal.stages.2.blocks.1.mixer.lepe.conv.weight", "head.norm.running_var"],
    }
    for fusion, names in keys.items():
        state = build_model(preset("micro", fusion=fusion), seed=0).state_dict()
        assert set(names) <= set(state), fusion
        fresh = build_model(preset("micro", fusion=fusion), seed=1)
        fresh.load_state_dict(state)  # strict


def test_new_variants_compute_what_they_say():
    cfg = preset("micro")
    onset, apex = _pair(cfg)
    models = {
        f: build_model(cfg.replace(fusion=f), seed=0).eval()
        for f in ("t2s", "t2s_pre", "s2t", "s2t_ref", "spatial_only", "spatial_only_apex")
    }
    with torch.no_grad():
        out = {f: m(onset, apex) for f, m in models.items()}
        # Same weights (same parameters in the same order), only where the tokens meet differs.
        assert not torch.allclose(out["t2s"], out["t2s_pre"])
        # The apex ablation reads the apex alone, through the same weights as the onset one.
        apex_only = models["spatial_only_apex"]
        assert torch.equal(out["spatial_only_apex"], models["spatial_only"](apex, onset))
        assert torch.equal(out["spatial_only_apex"], apex_only(torch.zeros_like(onset), apex))
    ref = [m for m in models["s2t_ref"].s2t.body]
    assert [type(m).__name__ for m in ref] == ["ConvTranspose2d"] * 3
    assert all((m.kernel_size, m.stride, m.padding) == ((4, 4), (2, 2), (1, 1)) for m in ref)
    ours = [m for m in models["s2t"].s2t.body if isinstance(m, torch.nn.ConvTranspose2d)]
    assert all((m.kernel_size, m.padding) == ((2, 2), (0, 0)) for m in ours)
