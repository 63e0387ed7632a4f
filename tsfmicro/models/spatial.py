"""The spatial branch ("where"): a shallow ViT on the downsized onset frame (the apex in the
`spatial_only_apex` ablation).

The onset (B, 3, S, S) is resized to the final grid (S/16, 14 at 224 px), a
1x1 conv turns each pixel into a token of the last temporal width, a learned
position embedding is added, then `spatial_depth` pre-norm ViT blocks and a
final LayerNorm. The paper keeps it at 2 blocks so it cannot learn identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tsfmicro.config import ModelConfig
from tsfmicro.models.layers import LN_EPS, ViTBlock


class SpatialBranch(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.grid = cfg.grid_size
        dim = cfg.spatial_width
        self.proj = nn.Conv2d(3, dim, 1)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid * self.grid, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(
            ViTBlock(dim, cfg.spatial_heads, cfg.spatial_mlp_ratio)
            for _ in range(cfg.spatial_depth)
        )
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(
        self,
        frame: Tensor,
        add_before_blocks: Tensor | None = None,
        add_after_blocks: Tensor | None = None,
    ) -> Tensor:
        """Frame (B, 3, S, S) -> tokens (B, g*g, C).

        The T-to-S fusions add the temporal tokens (B, g*g, C) here: `add_after_blocks`
        after the ViT blocks and before the final LayerNorm (the reference code),
        `add_before_blocks` to the embedded tokens before the blocks (the paper's figure).
        """
        x = F.interpolate(
            frame, size=(self.grid, self.grid), mode="bilinear", antialias=True, align_corners=False
        )  # (B, 3, g, g)
        x = self.proj(x).flatten(2).transpose(1, 2) + self.pos_embed  # (B, g*g, C)
        if add_before_blocks is not None:
            x = x + add_before_blocks
        for block in self.blocks:
            x = block(x)
        if add_after_blocks is not None:
            x = x + add_after_blocks
        return self.norm(x)
