"""Parameter and forward-FLOP counts of a model configuration, by part.

FLOPs are counted by running one forward pass of one sample under
`torch.utils.flop_counter.FlopCounterMode`, which counts matrix multiplies,
convolutions and attention (2 FLOPs per multiply-add); element-wise ops,
softmax and normalisation are not counted, as is usual for such figures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from tsfmicro.config import ModelConfig
from tsfmicro.models import build_model

# Reported parts: (label, pattern of the module paths under the model whose counts add up
# to it). Counts nest (a module's total includes its children), so each pattern names
# modules that do not contain one another.
_PARTS: tuple[tuple[str, str], ...] = (
    ("temporal stem", r"temporal\.stem|onset_stem"),
    ("temporal blocks", r"temporal\.stages\.\d+\.blocks\.\d+"),
    ("downsampling", r"temporal\.stages\.\d+\.downsample"),
    ("spatial branch", r"spatial"),
    ("s2t upsampling", r"s2t"),
    ("head", r"head"),
)


@dataclass(frozen=True)
class ModelCost:
    params: int
    flops: int  # forward FLOPs per sample
    by_part: dict[str, int]  # forward FLOPs per sample of each part

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def model_cost(cfg: ModelConfig) -> ModelCost:
    """Parameters and per-sample forward FLOPs of a freshly built model on the CPU."""
    model = build_model(cfg, seed=0).eval()
    size = cfg.image_size
    onset = torch.zeros(1, 3, size, size)
    apex = torch.zeros(1, 3, size, size)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(onset, apex)
    # Keys look like "TSFmicro.temporal.stages.0.blocks.1".
    totals = {
        name.removeprefix("TSFmicro."): sum(ops.values())
        for name, ops in counter.get_flop_counts().items()
    }
    by_part = {}
    for label, pattern in _PARTS:
        flops = sum(v for name, v in totals.items() if re.fullmatch(pattern, name))
        if flops:
            by_part[label] = int(flops)
    return ModelCost(
        params=sum(p.numel() for p in model.parameters()),
        flops=int(counter.get_total_flops()),
        by_part=by_part,
    )
