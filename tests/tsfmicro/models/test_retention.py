"""The token-mixer maths against direct float64 computations on tiny maps."""

import itertools

import pytest
import torch

from tsfmicro.models import retention as R

torch.set_default_dtype(torch.float32)


def _qkv(b=2, n=2, h=3, w=4, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, n, h, w, d, generator=g, dtype=torch.float64) for _ in range(3)]


def test_published_decay_values():
    gammas = torch.exp(R.log_decay(2, 2.0, 4.0))
    assert torch.allclose(gammas, torch.tensor([0.75, 0.9375]), atol=1e-6)
    gammas = torch.exp(R.log_decay(2, 2.0, 6.0))
    assert torch.allclose(gammas, torch.tensor([0.75, 0.96875]), atol=1e-6)


def test_manhattan_distance_is_row_plus_column_distance():
    h, w = 3, 5
    dist = R.distance_2d(h, w)
    for (r1, c1), (r2, c2) in itertools.product(itertools.product(range(h), range(w)), repeat=2):
        assert dist[r1 * w + c1, r2 * w + c2] == abs(r1 - r2) + abs(c1 - c2)


def _naive_masa_full(q, k, v, log_gamma, h, w):
    b, n, _, _, d = q.shape
    out = torch.zeros_like(v)
    for bi, head in itertools.product(range(b), range(n)):
        g = float(log_gamma[head])
        for r1, c1 in itertools.product(range(h), range(w)):
            logits = torch.tensor(
                [
                    float(q[bi, head, r1, c1] @ k[bi, head, r2, c2])
                    + (abs(r1 - r2) + abs(c1 - c2)) * g
                    for r2, c2 in itertools.product(range(h), range(w))
                ],
                dtype=torch.float64,
            )
            weights = torch.softmax(logits, 0).reshape(h, w)
            out[bi, head, r1, c1] = (weights[..., None] * v[bi, head]).sum((0, 1))
    return out


def test_full_masa_matches_direct_softmax_with_decay():
    q, k, v = _qkv()
    b, n, h, w, d = q.shape
    log_gamma = R.log_decay(n, 2.0, 4.0).double()
    flat = (b, n, h * w, d)
    got = R.masa_full(
        q.reshape(flat), k.reshape(flat), v.reshape(flat), log_gamma, R.distance_2d(h, w).double()
    ).reshape(b, n, h, w, d)
    assert torch.allclose(got, _naive_masa_full(q, k, v, log_gamma, h, w), atol=1e-10)


def test_cpu_attention_matches_pytorchs_fused_attention():
    """The written-out CPU softmax attention and F.scaled_dot_product_attention agree, in
    values and gradients."""
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 2, 12, 8, generator=g, requires_grad=True) for _ in range(3))
    mask = R.distance_2d(3, 4)[None] * R.log_decay(2, 2.0, 4.0)[:, None, None]
    ours = R._softmax_attention(q, k, v, mask)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
    assert torch.allclose(ours, ref, atol=1e-5)
    grads = torch.autograd.grad(ours.square().sum(), (q, k, v))
    ref_grads = torch.autograd.grad(ref.square().sum(), (q, k, v))
    for a, b in zip(grads, ref_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-4)


def test_decomposed_masa_is_row_attention_then_column_attention():
    q, k, v = _qkv()
    b, n, h, w, d = q.shape
    log_gamma = R.log_decay(n, 2.0, 4.0).double()
    got = R.masa_decomposed(
        q, k, v, log_gamma, R.distance_1d(h).double(), R.distance_1d(w).double()
    )
    # Direct: softmax over each row with |dCol| decay, then over each column with |dRow|.
    rows = torch.zeros_like(v)
    for bi, head, r, c in itertools.product(range(b), range(n), range(h), range(w)):
        logits = torch.stack(
            [
                q[bi, head, r, c] @ k[bi, head, r, c2] + abs(c - c2) * log_gamma[head]
                for c2 in range(w)
            ]
        )
        rows[bi, head, r, c] = torch.softmax(logits, 0) @ v[bi, head, r]
    expected = torch.zeros_like(v)
    for bi, head, r, c in itertools.product(range(b), range(n), range(h), range(w)):
        logits = torch.stack(
            [
                q[bi, head, r, c] @ k[bi, head, r2, c] + abs(r - r2) * log_gamma[head]
                for r2 in range(h)
            ]
        )
        expected[bi, head, r, c] = torch.softmax(logits, 0) @ rows[bi, head, :, c]
    assert torch.allclose(got, expected, atol=1e-10)


def test_full_retention_matches_direct_decayed_sum():
    q, k, v = _qkv(seed=1)
    b, n, h, w, d = q.shape
    log_gamma = R.log_decay(n, 2.0, 4.0).double()
    flat = (b, n, h * w, d)
    got = R.retention_full(
        q.reshape(flat), k.reshape(flat), v.reshape(flat), log_gamma, R.distance_2d(h, w).double()
    )
    gamma = torch.exp(log_gamma)
    dist = R.distance_2d(h, w).double()
    expected = torch.zeros(flat, dtype=torch.float64)
    for bi, head in itertools.product(range(b), range(n)):
        decay = gamma[head] ** dist  # D[n, m] = gamma^(|dRow| + |dCol|)
        decay = decay / decay.sum(-1, keepdim=True).sqrt()
        scores = (q.reshape(flat)[bi, head] @ k.reshape(flat)[bi, head].T) * decay
        scores = scores / scores.abs().sum(-1, keepdim=True).clamp(min=1)
        expected[bi, head] = scores @ v.reshape(flat)[bi, head]
    assert torch.allclose(got, expected, atol=1e-10)


def test_retention_decay_factorises_over_rows_and_columns():
    """gamma^(|dRow|+|dCol|) = gamma^|dRow| * gamma^|dCol|: why the decomposed form is natural."""
    h, w, gamma = 3, 4, 0.9
    full = gamma ** R.distance_2d(h, w).double()
    rows = gamma ** R.distance_1d(h).double()
    cols = gamma ** R.distance_1d(w).double()
    assert torch.allclose(full, torch.kron(rows, cols))


@pytest.mark.parametrize("dim", [2, 8])
def test_rotary_preserves_norm_and_relative_position(dim):
    sin, cos = R.rotary_sin_cos(2, 3, dim)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, dim, generator=g)
    y = R.apply_rotary(x, sin, cos)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    # The same vector at two positions: the dot product depends only on their offset.
    u = torch.randn(dim, generator=g).expand(2, 3, dim)
    ru = R.apply_rotary(u, sin, cos).reshape(6, dim)
    assert torch.allclose(ru[0] @ ru[2], ru[3] @ ru[5], atol=1e-5)


def _positions(model):
    return [stage.pos for stage in model.temporal.stages]


def test_float64_model_computes_its_position_tables_in_float64():
    """A float64 model's rotary and decay tables are the float64 values, not widened float32
    ones (which put ~1e-10 errors into float64 logits); float32 tables stay the float64 values
    rounded once, as they always were."""
    from tsfmicro.config import preset
    from tsfmicro.models import build_model

    model = build_model(preset("micro"), seed=0)
    for pos in _positions(model):
        assert pos.sin.dtype == pos.log_gamma.dtype == torch.float32
    model.double()
    for pos in _positions(model):
        sin, cos = R.rotary_sin_cos(pos.height, pos.width, pos.head_dim, torch.float64)
        assert torch.equal(pos.sin, sin) and torch.equal(pos.cos, cos)
        exact = R.log_decay(pos.heads, 2.0, 4.0 if pos.stage < 2 else 6.0, torch.float64)
        assert torch.equal(pos.log_gamma, exact)
        assert not torch.equal(pos.log_gamma, exact.float().double())  # not widened float32
    model.float()
    for pos in _positions(model):
        assert torch.equal(pos.sin, R.rotary_sin_cos(pos.height, pos.width, pos.head_dim)[0])
        decay_range = 4.0 if pos.stage < 2 else 6.0
        assert torch.equal(pos.log_gamma, R.log_decay(pos.heads, 2.0, decay_range))


def test_model_built_under_float64_default_has_float64_tables():
    from tsfmicro.config import preset
    from tsfmicro.models import build_model

    torch.set_default_dtype(torch.float64)
    try:
        model = build_model(preset("micro"), seed=0)
    finally:
        torch.set_default_dtype(torch.float32)
    pos = model.temporal.stages[2].pos
    assert pos.sin.dtype == pos.dist.dtype == pos.log_gamma.dtype == torch.float64
    assert torch.equal(pos.log_gamma, R.log_decay(pos.heads, 2.0, 6.0, torch.float64))
    assert "temporal.stages.2.pos.sin" not in model.state_dict()  # never in a checkpoint
