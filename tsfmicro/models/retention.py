"""The token mixers of the temporal branch, as plain functions.

Two families, both with an explicit spatial decay prior over a 2-D grid:

* Manhattan self-attention (MaSA, from RMT, "RMT: Retentive Networks Meet
  Vision Transformers", CVPR 2024), which is what TSFmicro's reference code
  runs: softmax(q k^T + M) v with M[n, m] = (|dRow| + |dCol|) * log(gamma).
* 2-D retention, which is what the TSFmicro paper's wording ("RetNet")
  describes: (q k^T * D) v with D[n, m] = gamma^(|dRow| + |dCol|), no softmax.

Both come in a full form (every token attends to every token of the map) and
a decomposed form (first along each row with the 1-D decay |dCol|, then along
each column with |dRow|), which costs O(HW(H+W)) instead of O((HW)^2) and is
used on the large early maps.

Modules in `temporal.py` only hold parameters and call these functions.
Shapes: B batch, n heads, H x W map, d per-head width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# The fixed tables below are always computed in float64 and then rounded once to `dtype`:
# a float32 table is the float64 value rounded (what the model has always used), and a
# float64 table is exact, so a float64 model matches a float64 reference to rounding.


def log_decay(
    heads: int, init: float, heads_range: float, dtype: torch.dtype = torch.float32
) -> Tensor:
    """log(gamma_h) with gamma_h = 1 - 2^(-init - range * h / heads), h = 0..heads-1.

    With 2 heads, init 2 and range 4 this gives gammas 0.75 and 0.9375; with
    range 6, 0.75 and 0.96875 (the values of RMT's early and late stages).
    """
    h = torch.arange(heads, dtype=torch.float64)
    gamma = 1.0 - torch.pow(2.0, -init - heads_range * h / heads)
    return torch.log(gamma).to(dtype)


def distance_1d(length: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """|i - j| for positions on a line: (L, L)."""
    pos = torch.arange(length, dtype=dtype)
    return (pos[:, None] - pos[None, :]).abs()


def distance_2d(height: int, width: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Manhattan distance |dRow| + |dCol| between row-major grid positions: (HW, HW)."""
    rows = torch.arange(height, dtype=dtype).repeat_interleave(width)
    cols = torch.arange(width, dtype=dtype).repeat(height)
    return (rows[:, None] - rows[None, :]).abs() + (cols[:, None] - cols[None, :]).abs()


def rotary_sin_cos(
    height: int, width: int, dim: int, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """Rotary angles over the flattened (row-major) position index: (H, W, dim) each.

    angle_k = 1 / 10000^(k / (dim/2 - 1)), k = 0..dim/2-1, each used for a pair
    of channels.
    """
    if dim % 2:
        raise ValueError(f"rotary width must be even, got {dim}")
    angle = 1.0 / (10000 ** torch.linspace(0, 1, dim // 2, dtype=torch.float64))
    angle = angle.repeat_interleave(2)  # (dim,)
    index = torch.arange(height * width, dtype=torch.float64)
    theta = index[:, None] * angle[None, :]  # (HW, dim)
    sin = torch.sin(theta).reshape(height, width, dim).to(dtype)
    cos = torch.cos(theta).reshape(height, width, dim).to(dtype)
    return sin, cos


def apply_rotary(x: Tensor, sin: Tensor, cos: Tensor) -> Tensor:
    """Rotate channel pairs (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin), in x's dtype
    (so bf16 activations under autocast stay bf16)."""
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    rotated = torch.stack((-x_odd, x_even), dim=-1).flatten(-2)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


def _softmax_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """softmax(q k^T + mask) v, scale already in k. On CUDA, PyTorch's fused kernels; on the
    CPU the same formula written out, which trains faster there than SDPA's math fallback
    (measured 1.05x for the tiny preset's whole training step on one core)."""
    if q.is_cuda:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
    return torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1) @ v


def masa_full(q: Tensor, k: Tensor, v: Tensor, log_gamma: Tensor, dist: Tensor) -> Tensor:
    """Full 2-D Manhattan self-attention.

    q, k, v: (B, n, N, d) with N = H*W in row-major order; k already scaled.
    log_gamma: (n,); dist: (N, N) Manhattan distances. Returns (B, n, N, d).
    """
    mask = (dist[None] * log_gamma[:, None, None]).to(q.dtype)  # (n, N, N)
    return _softmax_attention(q, k, v, mask)


def masa_decomposed(
    q: Tensor, k: Tensor, v: Tensor, log_gamma: Tensor, dist_h: Tensor, dist_w: Tensor
) -> Tensor:
    """Decomposed Manhattan self-attention: along rows, then along columns.

    q, k, v: (B, n, H, W, d), k already scaled. dist_h: (H, H), dist_w: (W, W).
    Returns (B, n, H, W, d).
    """
    mask_w = (dist_w[None] * log_gamma[:, None, None])[:, None].to(q.dtype)  # (n, 1, W, W)
    mask_h = (dist_h[None] * log_gamma[:, None, None])[:, None].to(q.dtype)  # (n, 1, H, H)
    # Each row is a sequence of W tokens.
    v = _softmax_attention(q, k, v, mask_w)  # (B, n, H, W, d)
    # Each column is a sequence of H tokens.
    q_t, k_t, v_t = (t.transpose(2, 3) for t in (q, k, v))  # (B, n, W, H, d)
    out = _softmax_attention(q_t, k_t, v_t, mask_h)
    return out.transpose(2, 3)  # (B, n, H, W, d)


def _decay_matrix(dist: Tensor, log_gamma: Tensor, dtype: torch.dtype) -> Tensor:
    """D = gamma^dist per head, each row divided by the square root of its sum (RetNet's
    normalisation, which keeps the output scale independent of the map size): (n, L, L)."""
    decay = torch.exp(dist[None] * log_gamma[:, None, None])
    decay = decay / decay.sum(dim=-1, keepdim=True).sqrt()
    return decay.to(dtype)


def _retain(q: Tensor, k: Tensor, v: Tensor, decay: Tensor) -> Tensor:
    """(q k^T * D) v with each row of q k^T * D divided by max(1, its absolute sum)."""
    scores = (q @ k.transpose(-1, -2)) * decay
    scores = scores / scores.detach().abs().sum(dim=-1, keepdim=True).clamp(min=1.0)
    return scores @ v


def retention_full(q: Tensor, k: Tensor, v: Tensor, log_gamma: Tensor, dist: Tensor) -> Tensor:
    """Full bidirectional 2-D retention, parallel form: (q k^T * D) v, D = gamma^(|dRow|+|dCol|).

    Shapes as in `masa_full`.
    """
    return _retain(q, k, v, _decay_matrix(dist, log_gamma, q.dtype))


def retention_decomposed(
    q: Tensor, k: Tensor, v: Tensor, log_gamma: Tensor, dist_h: Tensor, dist_w: Tensor
) -> Tensor:
    """Decomposed 2-D retention: along rows with gamma^|dCol|, then along columns with
    gamma^|dRow|. Shapes as in `masa_decomposed`."""
    decay_w = _decay_matrix(dist_w, log_gamma, q.dtype)[:, None]  # (n, 1, W, W)
    decay_h = _decay_matrix(dist_h, log_gamma, q.dtype)[:, None]  # (n, 1, H, H)
    v = _retain(q, k, v, decay_w)
    q_t, k_t, v_t = (t.transpose(2, 3) for t in (q, k, v))
    return _retain(q_t, k_t, v_t, decay_h).transpose(2, 3)


def head_norm(x: Tensor, eps: float = 1e-6) -> Tensor:
    """GroupNorm with one group per head (no affine): normalise each head's output vector."""
    return F.layer_norm(x, (x.shape[-1],), eps=eps)


def key_scale(head_dim: int) -> float:
    return 1.0 / math.sqrt(head_dim)
