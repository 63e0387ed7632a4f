"""Joint onset/apex augmentation as one batched resampling on the training device.

The published recipe applies, to the onset and the apex with the *same* random
draw: horizontal flip (p 0.5), rotation within +-3 degrees (+-4 in the 3-class
scripts), and a random crop of the full size from the image padded by 15 px (4 in
the 3-class scripts). Flip, rotation and crop offset compose into one affine map
per sample, so both frames of a batch are resampled by a single `grid_sample`
call: no PIL, no per-sample Python loop.

What fills the rotation's corners and the crop's padding, and how pixels are
resampled, are options (`TrainConfig.augment_fill`, `augment_interpolation`).
Ours by default: black and bilinear. The scripts apply torchvision's
RandomRotation (nearest neighbour) and RandomCrop to the *normalised* tensor,
filling with zeros there, which is the ImageNet mean colour here (frames in
[0, 1], before normalising): `"imagenet_mean"` and `"nearest"`.

One difference from two torchvision steps remains: torchvision crops after
rotating, so the whole padded band of the crop is fill, while one affine map reads
the band from the input where the rotation brings it inside (slivers a few pixels
deep near the corners; about 6 px at 224 px for 3 degrees).

Random draws come from a CPU `torch.Generator`, so the same seed gives the same
augmentation on any device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from tsfmicro.training.data import IMAGENET_MEAN

REFERENCE_SIZE = 224  # the crop padding of the recipe is given at this size
# What `fill` paints, as a colour in [0, 1]; IMAGENET_MEAN is zero in the normalised tensor.
FILL_COLOURS: dict[str, tuple[float, float, float] | None] = {
    "black": None,  # zeros: grid_sample's own padding
    "imagenet_mean": IMAGENET_MEAN,
}


@dataclass(frozen=True)
class AugmentParams:
    """Per-sample draws: flip (bool), rotation (radians) and crop shift (pixels, x and y)."""

    flip: Tensor  # (B,) bool
    angle: Tensor  # (B,) float
    shift: Tensor  # (B, 2) float, whole pixels


def scaled_padding(padding_at_224: int, size: int) -> int:
    """The recipe's crop padding scaled to another image size (15 px at 224 -> 4 px at 64)."""
    return int(round(padding_at_224 * size / REFERENCE_SIZE))


def draw_params(
    batch: int,
    size: int,
    generator: torch.Generator,
    flip_p: float,
    rotation_deg: float,
    crop_padding: int,
) -> AugmentParams:
    pad = scaled_padding(crop_padding, size)
    flip = torch.rand(batch, generator=generator) < flip_p
    angle = (torch.rand(batch, generator=generator) * 2 - 1) * math.radians(rotation_deg)
    shift = torch.randint(-pad, pad + 1, (batch, 2), generator=generator).to(torch.float32)
    return AugmentParams(flip=flip, angle=angle, shift=shift)


def affine_matrices(params: AugmentParams, size: int) -> Tensor:
    """Sampling matrices (B, 2, 3) in grid_sample's normalised coordinates.

    An output pixel p is read from input position F R^-1 (p + t): the crop shifts
    by t, the rotation by angle is undone, and the flip mirrors x.
    """
    cos, sin = torch.cos(params.angle), torch.sin(params.angle)
    # R^-1 (inverse rotation), rows [[cos, sin], [-sin, cos]]
    inv_rot = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
    mirror = torch.ones(len(cos), 2)
    mirror[params.flip, 0] = -1.0
    linear = mirror[:, :, None] * inv_rot  # F R^-1, (B, 2, 2)
    t = params.shift * (2.0 / size)  # pixels -> normalised units
    offset = linear @ t[:, :, None]  # (B, 2, 1)
    return torch.cat([linear, offset], dim=2)


def augment_pair(
    onset: Tensor,
    apex: Tensor,
    params: AugmentParams,
    *,
    fill: str = "black",
    interpolation: str = "bilinear",
) -> tuple[Tensor, Tensor]:
    """Apply the same per-sample transform to both frames: float (B, 3, S, S) in [0, 1],
    before normalising. `fill`: what the rotation's corners and the crop's padding become,
    "black" (zeros) or "imagenet_mean" (the published scripts' fill: they pad the
    normalised tensor with zeros). `interpolation`: "bilinear" or "nearest" (the scripts')."""
    if fill not in FILL_COLOURS:
        raise ValueError(f"fill must be one of {', '.join(FILL_COLOURS)}, got {fill!r}")
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    b, c, size, _ = onset.shape
    theta = affine_matrices(params, size).to(device=onset.device, dtype=onset.dtype)
    both = torch.cat([onset, apex], dim=1)  # (B, 6, S, S)
    colour = FILL_COLOURS[fill]
    base = None
    if colour is not None:  # resample the difference from the fill colour, whose padding is 0
        base = torch.tensor(colour, device=both.device, dtype=both.dtype).repeat(2)
        base = base.view(1, 2 * c, 1, 1)
        both = both - base
    grid = F.affine_grid(theta, list(both.shape), align_corners=False)
    out = F.grid_sample(both, grid, mode=interpolation, padding_mode="zeros", align_corners=False)
    if base is not None:
        out = out + base
    return out[:, :c], out[:, c:]
