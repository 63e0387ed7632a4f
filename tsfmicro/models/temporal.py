"""The temporal branch ("how"): an RMT-style network on the apex - onset difference.

Stem (stride 2) then four stages at 1/2, 1/4, 1/8 and 1/16 of the input side,
with a conv3x3-stride-2 downsampling between stages. Each stage holds
`stage_depths(temporal_depth)` blocks; the paper's "5-layer RetNet" is
[1, 1, 2, 1]. Stages 1-2 use the decomposed (row, then column) token mixer and
stages 3-4 the full 2-D one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tsfmicro.config import ModelConfig
from tsfmicro.models import retention as R
from tsfmicro.models.layers import LN_EPS, ConvFFN, ConvStem, Downsample, DropPath, DWConv2d

# Decay initialisation per stage (RMT): gamma_h = 1 - 2^(-init - range * h / heads).
DECAY_INIT = (2.0, 2.0, 2.0, 2.0)
DECAY_RANGE = (4.0, 4.0, 6.0, 6.0)


class GridPosition(nn.Module):
    """Fixed position tensors of one H x W map: rotary sin/cos, decay log-gammas and
    Manhattan distances (1-D for the decomposed form, 2-D for the full form).

    Kept as non-persistent buffers: they follow the model across devices but are
    not part of a checkpoint. They are float32 (float64 values rounded once), unless
    the model is built under a float64 default dtype or converted to float64
    (`model.double()`, `model.to(torch.float64)`): then they are computed again in
    float64 instead of widening the rounded float32 values, so a float64 model is
    exact to float64 rounding.
    """

    def __init__(
        self, height: int, width: int, head_dim: int, heads: int, stage: int, decomposed: bool
    ) -> None:
        super().__init__()
        self.height, self.width, self.head_dim, self.heads = height, width, head_dim, heads
        self.stage = stage
        self.decomposed = decomposed
        wide = torch.get_default_dtype() == torch.float64
        for name, table in self._tables(torch.float64 if wide else torch.float32).items():
            self.register_buffer(name, table, persistent=False)

    def _tables(self, dtype: torch.dtype) -> dict[str, Tensor]:
        h, w = self.height, self.width
        sin, cos = R.rotary_sin_cos(h, w, self.head_dim, dtype)  # (H, W, d) each
        tables = {
            "sin": sin,
            "cos": cos,
            "log_gamma": R.log_decay(  # (n,)
                self.heads, DECAY_INIT[self.stage], DECAY_RANGE[self.stage], dtype
            ),
        }
        if self.decomposed:
            tables["dist_h"] = R.distance_1d(h, dtype)  # (H, H)
            tables["dist_w"] = R.distance_1d(w, dtype)  # (W, W)
        else:
            tables["dist"] = R.distance_2d(h, w, dtype)  # (HW, HW)
        return tables

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> GridPosition:
        super()._apply(fn, recurse)
        if self.sin.dtype == torch.float64:  # widened: compute the tables again in float64
            for name, table in self._tables(torch.float64).items():
                setattr(self, name, table.to(self.sin.device))
        return self


class ManhattanSelfAttention(nn.Module):
    """MaSA: rotary q/k, softmax attention with a Manhattan decay prior, plus LePE
    (a depthwise 5x5 conv on v) and an output projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.lepe = DWConv2d(dim, 5)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, pos: GridPosition) -> Tensor:
        b, h, w, c = x.shape
        v_map = self.v_proj(x)  # (B, H, W, C)
        lepe = self.lepe(v_map)
        q = _split_heads(self.q_proj(x), self.heads)  # (B, n, H, W, d)
        k = _split_heads(self.k_proj(x), self.heads) * R.key_scale(self.head_dim)
        v = _split_heads(v_map, self.heads)
        q = R.apply_rotary(q, pos.sin, pos.cos)
        k = R.apply_rotary(k, pos.sin, pos.cos)
        if pos.decomposed:
            out = R.masa_decomposed(q, k, v, pos.log_gamma, pos.dist_h, pos.dist_w)
        else:
            flat = (b, self.heads, h * w, self.head_dim)
            out = R.masa_full(
                q.reshape(flat), k.reshape(flat), v.reshape(flat), pos.log_gamma, pos.dist
            )
        out = _merge_heads(out.reshape(b, self.heads, h, w, self.head_dim))  # (B, H, W, C)
        return self.out_proj(out + lepe)


class Retention2d(nn.Module):
    """True 2-D retention (the paper's "RetNet" wording): rotary q/k, (q k^T * D) v with
    D = gamma^(|dRow| + |dCol|), GroupNorm over heads, a swish gate, output projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.gate_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, pos: GridPosition) -> Tensor:
        b, h, w, c = x.shape
        q = R.apply_rotary(_split_heads(self.q_proj(x), self.heads), pos.sin, pos.cos)
        k = _split_heads(self.k_proj(x), self.heads) * R.key_scale(self.head_dim)
        k = R.apply_rotary(k, pos.sin, pos.cos)
        v = _split_heads(self.v_proj(x), self.heads)
        if pos.decomposed:
            out = R.retention_decomposed(q, k, v, pos.log_gamma, pos.dist_h, pos.dist_w)
        else:
            flat = (b, self.heads, h * w, self.head_dim)
            out = R.retention_full(
                q.reshape(flat), k.reshape(flat), v.reshape(flat), pos.log_gamma, pos.dist
            )
        out = R.head_norm(out.reshape(b, self.heads, h, w, self.head_dim))
        out = _merge_heads(out)  # (B, H, W, C)
        return self.out_proj(out * F.silu(self.gate_proj(x)))


def _split_heads(x: Tensor, heads: int) -> Tensor:
    b, h, w, c = x.shape
    return x.reshape(b, h, w, heads, c // heads).permute(0, 3, 1, 2, 4)  # (B, n, H, W, d)


def _merge_heads(x: Tensor) -> Tensor:
    b, n, h, w, d = x.shape
    return x.permute(0, 2, 3, 1, 4).reshape(b, h, w, n * d)  # (B, H, W, C)


class TemporalBlock(nn.Module):
    """x + DWConv3x3(x) (conditional position encoding); x + DropPath(mixer(LN(x)));
    x + DropPath(ConvFFN(LN(x)))."""

    def __init__(
        self, dim: int, heads: int, mlp_ratio: float, drop_path: float, mixer: str
    ) -> None:
        super().__init__()
        self.cpe = DWConv2d(dim, 3)
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mixer = (ManhattanSelfAttention if mixer == "masa" else Retention2d)(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.ffn = ConvFFN(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path, calls=2)  # after the mixer and after the FFN

    def forward(self, x: Tensor, pos: GridPosition) -> Tensor:
        x = x + self.cpe(x)
        x = x + self.drop_path(self.mixer(self.norm1(x), pos))
        x = x + self.drop_path(self.ffn(self.norm2(x)))
        return x


class TemporalStage(nn.Module):
    """Blocks at one resolution, optionally followed by a downsampling layer."""

    def __init__(self, cfg: ModelConfig, stage: int, side: int, drop_paths: list[float]) -> None:
        super().__init__()
        dim, heads = cfg.temporal_widths[stage], cfg.temporal_heads[stage]
        self.pos = GridPosition(
            side, side, dim // heads, heads, stage, decomposed=stage < cfg.decomposed_stages
        )
        self.blocks = nn.ModuleList(
            TemporalBlock(dim, heads, cfg.temporal_mlp_ratio, dp, cfg.temporal_mixer)
            for dp in drop_paths
        )
        self.downsample = (
            Downsample(dim, cfg.temporal_widths[stage + 1]) if stage < 3 else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x, self.pos)
        return self.downsample(x)


class TemporalBranch(nn.Module):
    """Difference image (B, 3, S, S) -> map (B, S/16, S/16, C_last), channels-last."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.stem = ConvStem(cfg.temporal_widths[0])
        depths = cfg.stage_depths
        rates = torch.linspace(0, cfg.drop_path, sum(depths)).tolist()
        stages, start, side = [], 0, cfg.image_size // 2
        for stage, depth in enumerate(depths):
            stages.append(TemporalStage(cfg, stage, side, rates[start : start + depth]))
            start += depth
            side //= 2
        self.stages = nn.ModuleList(stages)

    def forward_stages(self, x: Tensor) -> Tensor:
        """Run the four stages on a stem output (B, S/2, S/2, C0)."""
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, diff: Tensor) -> Tensor:
        return self.forward_stages(self.stem(diff))
