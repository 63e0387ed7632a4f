"""Fusion variants: where the temporal ("how") and spatial ("where") branches meet.

Each variant is a small module registered under its `ModelConfig.fusion` name, as timm
registers its model variants. A variant says which branches it uses and which extra parts it
needs; `TSFmicro` builds only those and calls `fusion(model, onset, apex)` for the fused
tokens (B, g*g, C) that go to the head (`model` is that TSFmicro: a variant reads its branches
and parts by name, and this module does not import the model's, so the two stay one-way).

The extra parts (the onset stem of `early`, the upsampler of `s2t`) are built by the variant
but held by the model, so the state-dict keys stay `temporal.*`, `spatial.*`, `onset_stem.*`,
`s2t.*`, `head.*` as in checkpoints saved before this registry, and parameters are created in
the same order (temporal, spatial, extra parts, head).

Names, with the paper's name (architecture figure of arXiv 2505.16372 and the README of the
reference code) and the reference class each one reproduces, by file (docs/model.md has the
measured differences):

| name | paper | reference class |
|---|---|---|
| late | T-S (late), the final model | classes/model/ts_micro.py: ts_micro |
| early | T-S (early) | fusion/model/ts_fusion.py: ts_fusion |
| t2s | T to S, as the code adds it | fusion/model/fusion_after_model.py: TS_micro_after |
| t2s_pre | T to S, as the figure draws it | none (commented-out lines in fusion_vit_pc.py) |
| s2t | S to T, our upsampler | none |
| s2t_ref | S to T, as the code computes it | fusion/model/fusion_before_model.py: TS_micro_before |
| temporal_only | ablation | classes/model/t_branch.py: RMT_T3 without its second input |
| spatial_only | ablation on the onset | none (fusion_TS_micro reads the apex) |
| spatial_only_apex | ablation on the apex | fusion/model/fusion_ts_micro.py: fusion_TS_micro |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from torch import Tensor, nn

from tsfmicro.config import FUSIONS, ModelConfig
from tsfmicro.models.layers import BatchNorm2d, ConvStem

FUSION_VARIANTS: dict[str, type[Fusion]] = {}


def register_fusion(name: str) -> Callable[[type[Fusion]], type[Fusion]]:
    """Class decorator: make a `Fusion` subclass the variant called `name`."""

    def register(cls: type[Fusion]) -> type[Fusion]:
        if name in FUSION_VARIANTS:
            raise ValueError(f"fusion variant {name!r} is registered twice")
        cls.name = name
        FUSION_VARIANTS[name] = cls
        return cls

    return register


def fusion_variant(name: str) -> type[Fusion]:
    """The registered variant called `name` (ModelConfig has already checked the name)."""
    return FUSION_VARIANTS[name]


class Fusion(nn.Module):
    """One fusion variant. Holds no parameters of its own; see the module docstring."""

    name: ClassVar[str]
    uses_temporal: ClassVar[bool] = True  # the model builds TemporalBranch as `temporal`
    uses_spatial: ClassVar[bool] = True  # the model builds SpatialBranch as `spatial`

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.grid = cfg.grid_size

    @staticmethod
    def build_parts(cfg: ModelConfig) -> dict[str, nn.Module]:
        """Extra parts the model holds for this variant, by attribute name."""
        return {}

    def forward(self, model: nn.Module, onset: Tensor, apex: Tensor) -> Tensor:
        """Fused tokens (B, g*g, C) from the model's parts and the two frames."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return self.name


def tokens(x: Tensor) -> Tensor:
    """Channels-last map (B, H, W, C) -> tokens (B, H*W, C)."""
    return x.flatten(1, 2)


@register_fusion("late")
class LateFusion(Fusion):
    """T-S (late), the paper's model: the temporal map (S/16 x S/16 x C) and the spatial
    tokens, after the spatial branch's final LayerNorm, are summed."""

    def forward(self, model: nn.Module, onset: Tensor, apex: Tensor) -> Tensor:
        return tokens(model.temporal(apex - onset)) + model.spatial(onset)


@register_fusion("early")
class EarlyFusion(Fusion):
    """T-S (early): a second conv stem on the onset, summed with the difference stem at
    S/2 x S/2 x C0, then the temporal stages. No spatial transformer."""

    uses_spatial = False

    @staticmethod
    def build_parts(cfg: ModelConfig) -> dict[str, nn.Module]:
        return {"onset_stem": ConvStem(cfg.temporal_widths[0])}

    def forward(self, model: nn.Module, onset: Tensor, apex: Tensor) -> Tensor:
        stem = model.temporal.stem(apex - onset) + model.onset_stem(onset)  # (B, S/2, S/2, C0)
        return tokens(model.temporal.forward_stages(stem))


@register_fusion("t2s")
class TemporalToSpatial(Fusion):
    """T to S as the reference code computes it: the temporal tokens are added to the
    spatial tokens after the ViT blocks and before the spatial branch's final LayerNorm
    (so, unlike `late`, the sum is normalised)."""

    def forward(self, model: nn.Module, onset: Tensor, apex: Tensor) -> Tensor:
        return model.spatial(onset, add_after_blocks=tokens(model.temporal(apex - onset)))


@register_fusion("t2s_pre")
class TemporalToSpatialPre(Fusion):
    """T to S as the paper's figure draws it: the temporal tokens are added to the embedded
    onset tokens (after the position embedding), before the ViT blocks, so the transformer
    mixes the sum."""

    def forward(self, model: nn.Module, onset: Tensor, apex: Tensor) -> Tensor:
        return model.spatial(onset, add_before_blocks=tokens(model.temporal(apex - onset)))


class Upsampler(nn.Module):
    """Three stride-2 transposed convs, C3 -> C2 -> C1 -> C0: the spatial map (B, C3, g, g)
    to the stem output size (B, C0, 8g, 8g), optionally with BatchNorm and GELU between."""

    def __init__(
        self, widths: tuple[int, int, int, int], kernel: int, padding: int, norm_act: bool
    ) -> None:
        super().__init__()
        c0, c1, c2, c3 = widths
        layers: list[nn.Module] = []
        for c_in, c_out in ((c3, c2), (c2, c1), (c1, c0)):
            if layers and norm_act:
                layers += [BatchNorm2d(c_in), nn.GELU()]
            layers.append(nn.ConvTranspose2d(c_in, c_out, kernel, stride=2, padding=padding))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class SpatialToTemporal(Fusion):
    """S to T: the spatial tokens, as a (C, g, g) map, are upsampled x8 by `model.s2t` and
    added to the temporal stem output; then the temporal stages run on the sum."""

    def forward(self, model: nn.Module, onset: Tensor, apex: Tensor) -> Tensor:
        b, g = onset.shape[0], self.grid
        spatial = model.spatial(onset).transpose(1, 2).reshape(b, -1, g, g)  # (B, C, g, g)
        up = model.s2t(spatial).permute(0, 2, 3, 1)  # (B, S/2, S/2, C0)
        stem = model.temporal.stem(apex - onset)
        return tokens(model.temporal.forward_stages(stem + up))


@register_fusion("s2t")
class SpatialToTemporalOurs(SpatialToTemporal):
    """S to T with our upsampler: kernel 2 (stride 2, no overlap), BatchNorm and GELU
    between the transposed convs."""

    @staticmethod
    def build_parts(cfg: ModelConfig) -> dict[str, nn.Module]:
        return {"s2t": Upsampler(cfg.temporal_widths, kernel=2, padding=0, norm_act=True)}


@register_fusion("s2t_ref")
class SpatialToTemporalReference(SpatialToTemporal):
    """S to T with the reference code's upsampler: kernel 4, stride 2, padding 1 (each
    output pixel sees two input pixels per axis), nothing between the transposed convs."""

    @staticmethod
    def build_parts(cfg: ModelConfig) -> dict[str, nn.Module]:
        return {"s2t": Upsampler(cfg.temporal_widths, kernel=4, padding=1, norm_act=False)}


@register_fusion("temporal_only")
class TemporalOnly(Fusion):
    """Ablation: the temporal branch on the difference alone."""

    uses_spatial = False

    def forward(self, model: nn.Module, onset: Tensor, apex: Tensor) -> Tensor:
        return tokens(model.temporal(apex - onset))


@register_fusion("spatial_only")
class SpatialOnly(Fusion):
    """Ablation: the spatial branch on the onset alone (the frame it reads in the fused
    models)."""

    uses_temporal = False

    def forward(self, model: nn.Module, onset: Tensor, apex: Tensor) -> Tensor:
        return model.spatial(onset)


@register_fusion("spatial_only_apex")
class SpatialOnlyApex(Fusion):
    """Ablation as the reference code runs it: the spatial branch on the apex frame alone."""

    uses_temporal = False

    def forward(self, model: nn.Module, onset: Tensor, apex: Tensor) -> Tensor:
        return model.spatial(apex)


if tuple(FUSION_VARIANTS) != FUSIONS:  # ModelConfig validates names against FUSIONS
    raise RuntimeError(
        f"registered fusion variants {tuple(FUSION_VARIANTS)} differ from config.FUSIONS {FUSIONS}"
    )
