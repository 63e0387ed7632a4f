"""TSFmicro: temporal ("how") and spatial ("where") features fused for micro-expressions.

Inputs are the onset and apex frames of a clip, face-cropped and normalised,
(B, 3, S, S) each. The temporal branch sees apex - onset (the motion), the
spatial branch sees the onset (the location). Fusion variants:

- late: the paper's model; the two (S/16 x S/16 x C) maps are summed.
- early: two conv stems, one on the onset and one on the difference, summed at
  the stem output, then the temporal stages; no spatial transformer.
- t2s: the temporal map's tokens are added to the spatial tokens after the ViT
  blocks, before the spatial branch's final LayerNorm (so, unlike late, the
  fused tokens are normalised together).
- s2t: the spatial map is upsampled by three stride-2 transposed convs (each
  halving the width: C -> C2 -> C1 -> C0, BN + GELU between) to the stem output
  size and added there, then the temporal stages run on the sum.
- temporal_only / spatial_only: ablations with one branch.

The head: Linear(C -> head_width) on every token, BatchNorm over channels,
swish, average over tokens, Linear(head_width -> classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tsfmicro.config import ModelConfig
from tsfmicro.errors import InputError
from tsfmicro.models.layers import BatchNorm1d, BatchNorm2d, ConvStem, init_weights
from tsfmicro.models.spatial import SpatialBranch
from tsfmicro.models.temporal import TemporalBranch


class Head(nn.Module):
    def __init__(self, dim: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, width)
        self.norm = BatchNorm1d(width)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, tokens: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.proj(tokens).transpose(1, 2)  # (B, width, N)
        x = F.silu(self.norm(x)).mean(dim=2)  # (B, width)
        return x if pre_logits else self.fc(x)


class SpatialToTemporal(nn.Module):
    """Upsample the spatial map (B, C3, g, g) x8 to the stem output (B, C0, 8g, 8g)."""

    def __init__(self, widths: tuple[int, int, int, int]) -> None:
        super().__init__()
        c0, c1, c2, c3 = widths
        self.body = nn.Sequential(
            nn.ConvTranspose2d(c3, c2, 2, stride=2),
            BatchNorm2d(c2),
            nn.GELU(),
            nn.ConvTranspose2d(c2, c1, 2, stride=2),
            BatchNorm2d(c1),
            nn.GELU(),
            nn.ConvTranspose2d(c1, c0, 2, stride=2),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class TSFmicro(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        fusion = cfg.fusion
        self.temporal = TemporalBranch(cfg) if fusion != "spatial_only" else None
        self.spatial = (
            SpatialBranch(cfg) if fusion in ("late", "t2s", "s2t", "spatial_only") else None
        )
        self.onset_stem = ConvStem(cfg.temporal_widths[0]) if fusion == "early" else None
        self.s2t = SpatialToTemporal(cfg.temporal_widths) if fusion == "s2t" else None
        self.head = Head(cfg.spatial_width, cfg.head_width, cfg.num_classes)
        self.apply(init_weights)

    def check_inputs(self, onset: Tensor, apex: Tensor) -> None:
        """Raise InputError unless both are float (B, 3, S, S) tensors of the configured size."""
        size = self.cfg.image_size
        for name, t in (("onset", onset), ("apex", apex)):
            if not isinstance(t, Tensor):
                raise InputError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if t.ndim != 4 or t.shape[1] != 3 or t.shape[2] != size or t.shape[3] != size:
                raise InputError(
                    f"{name} has shape {tuple(t.shape)}; this model expects "
                    f"(batch, 3, {size}, {size})"
                    f" (image_size={size}); crop or resize the frames to {size}x{size}"
                )
            if not t.is_floating_point():
                raise InputError(
                    f"{name} has dtype {t.dtype}; expected normalised floats "
                    "(use tsfmicro.training.data.normalize on uint8 frames)"
                )
        if onset.shape != apex.shape:
            raise InputError(
                f"onset {tuple(onset.shape)} and apex {tuple(apex.shape)} differ in shape"
            )

    def forward_features(self, onset: Tensor, apex: Tensor) -> Tensor:
        """Fused tokens (B, g*g, C) before the head."""
        self.check_inputs(onset, apex)
        fusion = self.cfg.fusion
        if fusion == "spatial_only":
            return self.spatial(onset)
        diff = apex - onset  # the motion
        if fusion == "temporal_only":
            return _tokens(self.temporal(diff))
        if fusion == "late":
            return _tokens(self.temporal(diff)) + self.spatial(onset)
        if fusion == "t2s":
            return self.spatial(onset, add_tokens=_tokens(self.temporal(diff)))
        if fusion == "early":
            stem = self.temporal.stem(diff) + self.onset_stem(onset)  # (B, S/2, S/2, C0)
            return _tokens(self.temporal.forward_stages(stem))
        # s2t
        g = self.cfg.grid_size
        spatial = self.spatial(onset).transpose(1, 2).reshape(onset.shape[0], -1, g, g)
        up = self.s2t(spatial).permute(0, 2, 3, 1)  # (B, S/2, S/2, C0)
        return _tokens(self.temporal.forward_stages(self.temporal.stem(diff) + up))

    def forward_head(self, tokens: Tensor, pre_logits: bool = False) -> Tensor:
        return self.head(tokens, pre_logits=pre_logits)

    def forward(self, onset: Tensor, apex: Tensor) -> Tensor:
        """Logits (B, num_classes)."""
        return self.forward_head(self.forward_features(onset, apex))


def _tokens(x: Tensor) -> Tensor:
    """Channels-last map (B, H, W, C) -> tokens (B, H*W, C)."""
    return x.flatten(1, 2)


def build_model(cfg: ModelConfig, seed: int | None = None) -> TSFmicro:
    """A freshly initialised TSFmicro; with a seed, the same weights every time
    (the caller's global RNG state is left as it was)."""
    if seed is None:
        return TSFmicro(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TSFmicro(cfg)
