"""TSFmicro: temporal ("how") and spatial ("where") features fused for micro-expressions.

Inputs are the onset and apex frames of a clip, face-cropped and normalised,
(B, 3, S, S) each. The temporal branch sees apex - onset (the motion), the
spatial branch sees the onset (the location).

`ModelConfig.fusion` names a registered fusion variant (tsfmicro/models/fusion.py):
the model builds the branches and extra parts that variant uses, in a fixed order
(temporal, spatial, the variant's parts, head), and its forward is the variant's
fused tokens followed by the head. The variants, with the paper's names and the
reference classes they were checked against (docs/model.md gives the measured
logit differences, benchmarks/reference_check.py measures them):

- late (T-S late, the paper's model and the `paper` preset; the reference's
  `ts_micro`): the temporal map and the spatial tokens (S/16 x S/16 x C each,
  the spatial ones after the ViT's final LayerNorm) are summed.
- early (T-S early; `ts_fusion`): two conv stems, one on the onset and one on
  the difference, summed at the stem output, then the temporal stages; no
  spatial transformer.
- t2s (T to S as the reference code computes it; `TS_micro_after`): the temporal
  tokens are added to the spatial tokens after the ViT blocks, before the spatial
  branch's final LayerNorm (so, unlike late, the sum is normalised).
- t2s_pre (T to S as the paper's figure draws it): the temporal tokens are added
  to the embedded onset tokens before the ViT blocks.
- s2t (S to T, our upsampler): the spatial map is upsampled by three stride-2
  transposed convs with kernel 2 (C -> C2 -> C1 -> C0, BN + GELU between) to the
  stem output size and added there; then the temporal stages run on the sum.
- s2t_ref (S to T as the reference code computes it; `TS_micro_before`): the same
  with kernel 4, padding 1 and nothing between the transposed convs.
- temporal_only (the reference's `RMT_T3` alone), spatial_only (onset),
  spatial_only_apex (the reference's `fusion_TS_micro`): one-branch ablations.

The head: Linear(C -> head_width) on every token, BatchNorm over channels,
swish, average over tokens, Linear(head_width -> classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tsfmicro.config import ModelConfig
from tsfmicro.errors import InputError
from tsfmicro.models.fusion import fusion_variant
from tsfmicro.models.layers import BatchNorm1d, attach_step_inputs, init_weights
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


class TSFmicro(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        variant = fusion_variant(cfg.fusion)
        # Creation order (temporal, spatial, the variant's parts, head) fixes which random
        # numbers each parameter draws under a seed: keep it.
        self.temporal = TemporalBranch(cfg) if variant.uses_temporal else None
        self.spatial = SpatialBranch(cfg) if variant.uses_spatial else None
        for name, part in variant.build_parts(cfg).items():
            self.add_module(name, part)
        self.head = Head(cfg.spatial_width, cfg.head_width, cfg.num_classes)
        self.apply(init_weights)
        self.fusion = variant(cfg)  # no parameters: how the parts above meet
        # training-only inputs of a forward pass, shared by its DropPath and BatchNorm layers
        self.step_inputs = attach_step_inputs(self)

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
        return self.fusion(self, onset, apex)

    def forward_head(self, tokens: Tensor, pre_logits: bool = False) -> Tensor:
        return self.head(tokens, pre_logits=pre_logits)

    def forward(
        self,
        onset: Tensor,
        apex: Tensor,
        *,
        drop_noise: Tensor | None = None,
        sample_mask: Tensor | None = None,
    ) -> Tensor:
        """Logits (B, num_classes).

        Training-only inputs (tsfmicro.training passes them; see layers.StepInputs):
        `drop_noise` (drop_path_calls(model), B) uniform draws that DropPath uses instead of
        torch's RNG, and `sample_mask` (B,) of the real rows for BatchNorm's batch statistics.
        """
        if drop_noise is None and sample_mask is None:
            return self.forward_head(self.forward_features(onset, apex))
        held = self.step_inputs.hold(drop_noise, sample_mask)
        try:
            return self.forward_head(self.forward_features(onset, apex))
        finally:
            self.step_inputs.release(held)


def build_model(cfg: ModelConfig, seed: int | None = None) -> TSFmicro:
    """A freshly initialised TSFmicro; with a seed, the same weights every time
    (the caller's global RNG state is left as it was)."""
    if seed is None:
        return TSFmicro(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TSFmicro(cfg)
