"""A small in-memory synthetic task whose label lives only in the motion.

Each subject is a random smooth colour texture (its "identity"). A sample's
onset is that texture plus a little per-sample variation and noise; its apex is
the onset with one local region warped by a couple of pixels. The class decides
*where* the region is and *which way* it moves; every subject has every class
in equal numbers, so the onset alone carries no label information and a model
must read the apex - onset difference.

This is a unit-test and demo workload, generated in well under a second. The
realistic, face-based benchmark in the real dataset layouts is `tsfmicro synth`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from tsfmicro.errors import ConfigError
from tsfmicro.training.data import PairSet


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, S, S) with reflect padding."""
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def make_toy_pairs(
    subjects: int = 6,
    per_subject: int = 12,
    classes: int = 3,
    size: int = 64,
    motion_px: float = 2.5,
    noise: float = 0.004,
    seed: int = 0,
) -> PairSet:
    """Generate the toy set: `subjects` x `per_subject` samples, labels balanced per subject."""
    if subjects < 2 or per_subject < classes or classes < 2:
        raise ConfigError(
            "make_toy_pairs needs subjects >= 2, classes >= 2 and per_subject >= classes, got "
            f"subjects={subjects}, per_subject={per_subject}, classes={classes}"
        )
    gen = torch.Generator().manual_seed(seed)
    n = subjects * per_subject
    # Identity: one smooth random texture and tint per subject.
    identity = _blur(torch.rand(subjects, 3, size, size, generator=gen), sigma=size / 24)
    identity = (identity - identity.mean((2, 3), keepdim=True)) * 12.0
    tint = torch.rand(subjects, 3, 1, 1, generator=gen) * 0.4 + 0.3
    subject_of = torch.arange(n) // per_subject
    labels = torch.arange(n) % classes
    labels = labels[torch.randperm(n, generator=gen)].reshape(subjects, per_subject)
    labels = torch.sort(labels, dim=1).values.flatten()  # balanced within each subject
    variation = _blur(torch.rand(n, 3, size, size, generator=gen), sigma=size / 32) - 0.5
    onset = (tint[subject_of] + identity[subject_of] * 0.3 + variation * 2.0).clamp(0, 1)

    # Class c moves a Gaussian region centred on a ring position, in a class direction.
    angle = 2 * math.pi * labels.float() / classes
    centre = torch.stack([torch.cos(angle), torch.sin(angle)], 1) * 0.45  # normalised coords
    centre = centre + (torch.rand(n, 2, generator=gen) - 0.5) * 0.1
    direction = torch.stack([torch.cos(angle + math.pi / 2), torch.sin(angle + math.pi / 2)], 1)
    lin = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    grid = torch.stack([xx, yy], -1)  # (S, S, 2) as (x, y)
    dist2 = ((grid[None] - centre[:, None, None]) ** 2).sum(-1)  # (N, S, S)
    window = torch.exp(-dist2 / (2 * 0.2**2))
    shift = motion_px * 2 / size  # pixels -> normalised units
    flow = window[..., None] * direction[:, None, None] * shift  # (N, S, S, 2)
    apex = F.grid_sample(
        onset, grid[None] - flow, mode="bilinear", padding_mode="border", align_corners=False
    )

    def quantise(x: torch.Tensor) -> torch.Tensor:
        x = x + torch.randn(x.shape, generator=gen) * noise
        return (x.clamp(0, 1) * 255).round().to(torch.uint8)

    subject_names = np.array([f"s{int(s):02d}" for s in subject_of])
    return PairSet(
        onset=quantise(onset),
        apex=quantise(apex),
        labels=labels.to(torch.int64),
        subjects=subject_names,
        keys=np.array([f"toy/{s}/{i:04d}" for i, s in enumerate(subject_names)]),
        class_names=tuple(f"motion{c}" for c in range(classes)),
        name=f"toy-{classes}class",
    )
