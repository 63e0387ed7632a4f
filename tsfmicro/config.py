"""Typed, frozen configuration for the TSFmicro model and its presets.

`ModelConfig` holds exactly the knobs a hyperparameter search turns. It checks
itself on construction, so a bad value fails with a message naming the field
instead of deep inside torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Self, get_args

from tsfmicro.errors import ConfigError
from tsfmicro.vocab import SCORES, Score

# Fusion variants (tsfmicro/models/fusion.py registers one module per name; docs/model.md maps
# them to the paper's names and the reference code's classes).
Fusion = Literal[
    "late",  # T-S (late): temporal map + spatial tokens; the paper's model
    "early",  # T-S (early): onset stem + difference stem, then the temporal stages
    "t2s",  # T to S as the reference code adds it: after the ViT blocks, before its LayerNorm
    "t2s_pre",  # T to S as the paper's figure draws it: before the ViT blocks
    "s2t",  # S to T with our upsampler (transposed conv kernel 2, BN + GELU between)
    "s2t_ref",  # S to T with the reference's upsampler (transposed conv kernel 4, padding 1)
    "temporal_only",  # ablation: temporal branch only
    "spatial_only",  # ablation: spatial branch on the onset only
    "spatial_only_apex",  # ablation: spatial branch on the apex only (the reference's)
]
TemporalMixer = Literal["masa", "retention2d"]

FUSIONS: tuple[str, ...] = get_args(Fusion)
TEMPORAL_MIXERS: tuple[str, ...] = get_args(TemporalMixer)

# Order in which the first blocks of a small temporal depth are placed over the
# four stages (0-based stage indices), and the stage that takes every block
# beyond one per stage. Stage 3 (index 2, the 28x28 map at 224 px) is the deep
# stage, as in RMT and Swin.
_FIRST_BLOCK_ORDER = (2, 3, 1, 0)
_DEEP_STAGE = 2


def stage_depths(total: int) -> tuple[int, int, int, int]:
    """Spread `total` temporal blocks over the four stages.

    Rule: the first four blocks go one to each stage, filled in the order
    stage 3, 4, 2, 1 (so 1 -> [0,0,1,0], 2 -> [0,0,1,1], 3 -> [0,1,1,1],
    4 -> [1,1,1,1]); every block beyond four goes to stage 3. The paper's
    5-layer RetNet gives [1, 1, 2, 1]. A stage with no blocks keeps its
    downsampling layer, so the feature map sizes never change.
    """
    if total < 1:
        raise ConfigError(f"temporal_depth must be at least 1, got {total}")
    depths = [0, 0, 0, 0]
    for stage in _FIRST_BLOCK_ORDER[: min(total, 4)]:
        depths[stage] = 1
    depths[_DEEP_STAGE] += max(0, total - 4)
    return tuple(depths)  # type: ignore[return-value]


class _Config:
    """What every configuration record shares: a check that names the field, a validated copy,
    and a round trip through plain dicts (JSON, YAML) that refuses unknown keys by name."""

    def _need(self, ok: bool, name: str, message: str) -> None:
        if not ok:
            raise ConfigError(
                f"{type(self).__name__}.{name}: {message}, got {getattr(self, name)!r}"
            )

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from a plain dict (e.g. JSON); unknown keys are an error that names them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} field(s): {', '.join(unknown)}{cls._unknown_hint(unknown)}"
            )
        return cls(**cls._values(dict(data)))

    @classmethod
    def _unknown_hint(cls, unknown: list[str]) -> str:
        return ""

    @classmethod
    def _values(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Field values from their JSON form (lists back to tuples, ...)."""
        return values


@dataclass(frozen=True)
class ModelConfig(_Config):
    """Architecture of one TSFmicro model. Defaults are the published configuration."""

    num_classes: int = 5  # output classes of the protocol (CASME II 5-class by default)
    image_size: int = 224  # square input side in pixels; must be a multiple of 16
    fusion: Fusion = "late"  # how the temporal and spatial branches meet (see models/fusion.py)
    temporal_depth: int = (
        5  # total MaSA blocks over the 4 stages ("5-layer RetNet"); stage_depths()
    )
    spatial_depth: int = 2  # ViT blocks in the spatial branch; kept shallow on purpose
    temporal_widths: tuple[int, int, int, int] = (64, 128, 256, 512)  # channels per stage
    temporal_heads: tuple[int, int, int, int] = (2, 2, 2, 2)  # attention heads per stage
    temporal_mlp_ratio: float = 3.0  # hidden width of the temporal FFN, as a multiple of the width
    spatial_heads: int = 4  # heads of the spatial ViT blocks
    spatial_mlp_ratio: float = 4.0  # hidden width of the ViT MLP, as a multiple of the width
    head_width: int = 1024  # token projection width in the classification head
    drop_path: float = 0.1  # stochastic depth rate, spread linearly over the temporal blocks
    temporal_mixer: TemporalMixer = "masa"  # "masa": RMT softmax attention with a Manhattan decay
    # prior (the reference code); "retention2d": softmax-free 2-D retention (the paper's wording)
    decomposed_stages: int = 2  # how many leading stages use the decomposed (row/column) form

    def __post_init__(self) -> None:
        need = self._need

        need(self.fusion in FUSIONS, "fusion", f"must be one of {', '.join(FUSIONS)}")
        need(
            self.temporal_mixer in TEMPORAL_MIXERS,
            "temporal_mixer",
            f"must be one of {', '.join(TEMPORAL_MIXERS)}",
        )
        need(_is_int(self.num_classes) and self.num_classes >= 2, "num_classes", "must be >= 2")
        need(
            _is_int(self.image_size) and self.image_size >= 32 and self.image_size % 16 == 0,
            "image_size",
            "must be a multiple of 16 and at least 32 (the temporal branch downsamples by 16)",
        )
        need(
            _is_int(self.temporal_depth) and self.temporal_depth >= 1,
            "temporal_depth",
            "must be an integer >= 1",
        )
        need(
            _is_int(self.spatial_depth) and self.spatial_depth >= 1,
            "spatial_depth",
            "must be an integer >= 1",
        )
        need(
            len(self.temporal_widths) == 4
            and all(_is_int(w) and w > 0 for w in self.temporal_widths),
            "temporal_widths",
            "must be four positive integers",
        )
        need(
            len(self.temporal_heads) == 4
            and all(_is_int(h) and h > 0 for h in self.temporal_heads),
            "temporal_heads",
            "must be four positive integers",
        )
        for width, heads in zip(self.temporal_widths, self.temporal_heads, strict=True):
            need(
                width % heads == 0 and (width // heads) % 2 == 0,
                "temporal_heads",
                f"each stage width must split into heads of even size "
                f"(width {width}, {heads} heads)",
            )
        need(
            self.temporal_widths[0] % 2 == 0,
            "temporal_widths",
            "the first width must be even (the stem's middle conv has half of it)",
        )
        need(
            _is_int(self.spatial_heads)
            and self.spatial_heads > 0
            and self.temporal_widths[-1] % self.spatial_heads == 0,
            "spatial_heads",
            f"must divide the spatial width {self.temporal_widths[-1]}",
        )
        need(self.temporal_mlp_ratio > 0, "temporal_mlp_ratio", "must be positive")
        need(self.spatial_mlp_ratio > 0, "spatial_mlp_ratio", "must be positive")
        need(_is_int(self.head_width) and self.head_width > 0, "head_width", "must be positive")
        need(0.0 <= self.drop_path < 1.0, "drop_path", "must be in [0, 1)")
        need(0 <= self.decomposed_stages <= 4, "decomposed_stages", "must be between 0 and 4")

    @property
    def spatial_width(self) -> int:
        """Token width of the spatial branch: the last temporal width, so maps can be summed."""
        return self.temporal_widths[-1]

    @property
    def grid_size(self) -> int:
        """Side of the final feature map (14 at 224 px)."""
        return self.image_size // 16

    @property
    def stage_depths(self) -> tuple[int, int, int, int]:
        return stage_depths(self.temporal_depth)

    @classmethod
    def _values(cls, values: dict[str, Any]) -> dict[str, Any]:
        for name in ("temporal_widths", "temporal_heads"):
            if name in values:
                values[name] = tuple(values[name])
        return values


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Preset:
    """A named model configuration with a line saying what it is for."""

    name: str
    description: str
    config: ModelConfig = field(default_factory=ModelConfig)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("paper", "the published TSFmicro configuration at 224 px (about 13 GFLOPs forward)"),
        Preset(
            "small",
            "quarter-width model at 112 px, for quick GPU sweeps or patient CPU runs",
            ModelConfig(
                image_size=112,
                temporal_widths=(32, 64, 128, 256),
                spatial_heads=4,
                head_width=512,
            ),
        ),
        Preset(
            "tiny",
            "CPU preset: 64 px, narrow widths; a LOSO fold trains in seconds on 2 cores",
            ModelConfig(
                image_size=64,
                temporal_widths=(16, 32, 64, 128),
                spatial_heads=4,
                head_width=128,
            ),
        ),
        Preset(
            "micro",
            "smallest working model (32 px), for unit tests",
            ModelConfig(
                image_size=32,
                temporal_widths=(8, 16, 16, 32),
                spatial_heads=2,
                head_width=32,
            ),
        ),
    )
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """The configuration of a named preset, with optional field overrides."""
    try:
        base = PRESETS[name].config
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
    return base.replace(**overrides) if overrides else base


ClassWeighting = Literal["none", "balanced"]
# What the augmentation's rotation corners and crop padding are filled with (frames in [0, 1],
# before normalising): "black" (zeros), or "imagenet_mean", the ImageNet mean colour, which is
# what the published scripts get by rotating and padding the *normalised* tensor with zeros.
AugmentFill = Literal["black", "imagenet_mean"]
# How the augmentation resamples: "bilinear", or "nearest" (torchvision's RandomRotation
# default, which the published scripts use; flips and whole-pixel crops are exact either way).
AugmentInterpolation = Literal["bilinear", "nearest"]
AUGMENT_FILLS: tuple[str, ...] = get_args(AugmentFill)
AUGMENT_INTERPOLATIONS: tuple[str, ...] = get_args(AugmentInterpolation)
# How the training step's forward and backward run (MachineConfig.compile):
#   off         eager PyTorch
#   inductor    torch.compile (Inductor kernels; the first fold of a process compiles)
#   cudagraphs  torch.compile mode "reduce-overhead": Inductor kernels replayed as CUDA graphs,
#               so a step costs a few launches instead of hundreds (CUDA only)
#   aot_eager   torch.compile's tracing and AOT autograd without code generation: checks that
#               the step traces, gives eager numbers, no speed-up (for tests and debugging)
CompileMode = Literal["off", "inductor", "cudagraphs", "aot_eager"]
COMPILE_MODES: tuple[str, ...] = get_args(CompileMode)


@dataclass(frozen=True)
class TrainConfig(_Config):
    """The training recipe of one LOSO fold: what a paper would state. Defaults follow the
    paper's text and the scripts' 5-class values, with our own augmentation fill and
    interpolation; the named recipes of `tsfmicro.recipes` ("published": the public scripts'
    values per dataset and protocol) replace fields of it. Where and how fast it runs is
    MachineConfig's."""

    epochs: int = 50  # fixed epoch budget; the paper text says 50 (its scripts ran 174 or 199:
    # tsfmicro.recipes, the "published" recipe)
    batch_size: int = 32
    lr: float = 8e-4  # AdamW learning rate
    weight_decay: float = 0.6  # AdamW decoupled weight decay (0.7 in some published 3-class runs)
    lr_gamma: float = 0.987  # ExponentialLR factor per epoch ...
    lr_decay_epochs: int = 50  # ... applied for this many epochs, then the rate is held
    class_weighting: ClassWeighting = "none"  # "balanced": cross-entropy weights n / (K n_c)
    augment: bool = True  # joint onset/apex augmentation (one random draw for both frames)
    train_pairs: bool = True  # train on the published recipe's frame pair near the annotated
    # one where the set has it (tsfmicro.datasets.train_pairs); evaluation keeps the annotated pair
    flip_p: float = 0.5  # horizontal flip probability
    rotation_deg: float = 3.0  # uniform rotation in [-r, r] degrees
    crop_padding: int = 15  # random crop with this padding at 224 px (scaled to image size)
    augment_fill: AugmentFill = "black"  # rotation corners and crop padding ("imagenet_mean":
    # the published scripts')
    augment_interpolation: AugmentInterpolation = "bilinear"  # "nearest": the scripts'
    val_subjects: int = 0  # inner validation: this many training subjects held out per fold
    val_metric: Score = "uf1"  # what picks the epoch in the "val" evaluation mode
    seed: int = 0  # run seed; each fold derives its own seed from it and the fold's subject

    def __post_init__(self) -> None:
        need = self._need

        need(_is_int(self.epochs) and self.epochs >= 1, "epochs", "must be an integer >= 1")
        need(_is_int(self.batch_size) and self.batch_size >= 1, "batch_size", "must be >= 1")
        need(self.lr > 0, "lr", "must be positive")
        need(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        need(0 < self.lr_gamma <= 1, "lr_gamma", "must be in (0, 1]")
        need(
            _is_int(self.lr_decay_epochs) and self.lr_decay_epochs >= 0,
            "lr_decay_epochs",
            "must be >= 0",
        )
        need(
            self.class_weighting in get_args(ClassWeighting),
            "class_weighting",
            f"must be one of {', '.join(get_args(ClassWeighting))}",
        )
        need(0 <= self.flip_p <= 1, "flip_p", "must be in [0, 1]")
        need(0 <= self.rotation_deg <= 180, "rotation_deg", "must be in [0, 180]")
        need(_is_int(self.crop_padding) and self.crop_padding >= 0, "crop_padding", "must be >= 0")
        need(
            self.augment_fill in AUGMENT_FILLS,
            "augment_fill",
            f"must be one of {', '.join(AUGMENT_FILLS)}",
        )
        need(
            self.augment_interpolation in AUGMENT_INTERPOLATIONS,
            "augment_interpolation",
            f"must be one of {', '.join(AUGMENT_INTERPOLATIONS)}",
        )
        need(_is_int(self.val_subjects) and self.val_subjects >= 0, "val_subjects", "must be >= 0")
        need(
            self.val_metric in SCORES,
            "val_metric",
            f"must be one of {', '.join(SCORES)}",
        )
        need(_is_int(self.seed), "seed", "must be an integer")

    @classmethod
    def _unknown_hint(cls, unknown: list[str]) -> str:
        moved = [k for k in unknown if k in MACHINE_FIELDS]
        return f" ({', '.join(moved)}: machine settings, MachineConfig's)" if moved else ""


@dataclass(frozen=True)
class MachineConfig(_Config):
    """Where and how a run executes: machine settings, apart from the recipe. They change the
    speed and the float rounding (bf16 autocast more than the rest), never what is trained, and
    a search space cannot touch them. `tsfmicro.training.runners.Runner` carries one."""

    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:N"
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True  # NHWC memory layout for images and convolutions (same maths)
    compile: CompileMode = "off"  # torch.compile for the training step; see COMPILE_MODES
    eval_batch_size: int = 256  # samples per forward pass when predicting

    def __post_init__(self) -> None:
        need = self._need

        need(
            isinstance(self.device, str)
            and (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")),
            "device",
            "must be 'auto', 'cpu', 'cuda' or 'cuda:N'",
        )
        need(isinstance(self.amp, bool), "amp", "must be true or false")
        need(isinstance(self.channels_last, bool), "channels_last", "must be true or false")
        need(
            self.compile in COMPILE_MODES,
            "compile",
            f"must be one of {', '.join(COMPILE_MODES)}",
        )
        need(
            self.compile != "cudagraphs" or self.device != "cpu",
            "compile",
            "'cudagraphs' needs a CUDA device (device is 'cpu')",
        )
        need(
            _is_int(self.eval_batch_size) and self.eval_batch_size >= 1,
            "eval_batch_size",
            "must be >= 1",
        )


DEFAULT_MACHINE = MachineConfig()  # CUDA when there is one, bf16 autocast there, eager
MACHINE_FIELDS = frozenset(f.name for f in dataclasses.fields(MachineConfig))


def split_train_record(data: dict[str, Any]) -> tuple[TrainConfig, MachineConfig]:
    """A training configuration as records before the recipe/machine split stored it (one
    dict with both), or as they store it now (recipe only): the recipe and the machine
    settings it held (defaults where it held none)."""
    machine = {k: v for k, v in data.items() if k in MACHINE_FIELDS}
    recipe = {k: v for k, v in data.items() if k not in MACHINE_FIELDS}
    return TrainConfig.from_dict(recipe), MachineConfig.from_dict(machine)
