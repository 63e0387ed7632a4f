"""Check our fusion variants against the authors' TSFmicro code, tensor for tensor, in float64.

For each fusion variant that has a counterpart in the authors' repository, the script builds
our model at the `paper` preset with seeded weights, copies every one of our tensors into the
authors' model through the name-mapping table below (which it checks: every tensor on both
sides is used once, shapes agree, and the authors' tensors left over are exactly the ones
listed as unused, which it confirms by backpropagating: none of them gets a gradient), runs
both in float64 on the same seeded onset/apex pair (224 px, batch 2), in eval mode and in
train mode (batch statistics, stochastic depth off), and prints the largest absolute logit
difference, both parameter counts and the authors' unused tensors with their counts. Then,
for the variants that share their weights (late, t2s, t2s_pre; the two spatial-only ones), it
prints each of ours against each of their classes, which shows which class computes what.

`t2s_pre` (T to S as the paper's figure draws it) has no class of theirs: it is checked
against TS_micro_after's own forward with a hook that moves the temporal tokens from after
the ViT blocks to before them, where lines commented out in their fusion_vit_pc.py add them.
Our `s2t` (our own upsampler) has no counterpart and is not checked.

The authors' code is read from a checkout given on the command line and imported as it is;
nothing of it is copied here. What it imports but does not ship is provided at run time by
stand-in modules (`install_stand_ins`): timm's `trunc_normal_` (torch's), `register_model`
(identity), `DropPath` (stochastic depth), `to_2tuple`, `_cfg`; `model.RMT` is their own
fusion/model/RMT.py; `PC_module.VisionTransformer_POS` is the class of that name in their
fusion/model/fusion_vit_before.py (an assumption: PC_module is not in their repository, and
that class is the one with the name and the arguments their code passes). torchvision is the
installed one; the script checks that its Resize on a tensor equals our spatial branch's
resize and reports what an older torchvision (antialias off by default) would change.

Their rotary angles and decays are float32 in their code; for the float64 run the script
recomputes them in float64 from their own formula (and reports how far their float32 values
are from ours).

    git --git-dir=/work/.mirror/Cross-Innovation-Lab+TSFmicro/repo archive HEAD \\
        | tar -x -C /tmp/tsfref            # a copy of the authors' repository
    python benchmarks/reference_check.py /tmp/tsfref
    python benchmarks/reference_check.py /tmp/tsfref --commit d96e560 \\
        --write-fixture tests/fixtures/reference_logits.json

`--write-fixture` stores the seeds, the variants, the authors' class per variant and their
logits as JSON; tests/tsfmicro/models/test_reference_fixture.py rebuilds our side from the
seeds (without the authors' code) and compares. Takes about two minutes on two CPU cores.

`--time` times training loops instead, on the CPU with `--threads` torch threads (default 2),
paper preset at 224 px, the same folds and epochs (`--time-folds`, default 3, `--time-epochs`,
default 2) of one synthetic set, and prints seconds per fold-epoch (a fold's model built, its
epochs trained, the held-out subject predicted after each, divided by its epochs) and their
ratios:

- theirs: the authors' CASME II 5-class script (classes/cas2/train_c5.py, which trains
  `ts_micro`, our `late`) run as it is: its `run_training` imported from the given copy and
  called on the set, with `.cuda()` a no-op, and three names of its module replaced for the
  run (`range`, so its epoch loop runs the given epochs; `print`, to stamp the time at its own
  per-fold and per-epoch prints; its dataset class, by a subclass that times `__getitem__` and
  stops the loop at the first subject of its LOSO list past the timed folds). Nothing of
  their loop is copied here;
- ours: `tsfmicro.training.loso.run_loso`, sequential, the published recipe of CASME II
  5-class with the same epochs, on the same frames cropped once by our face cache;
- the re-creation: benchmarks/bench_loso.py's path (a) (`run_baseline`), our re-creation of
  the published loop, on the same frames and folds (`--no-recreation` skips it).

The set (`write_timing_set`): `--time-clips` clips (default 8) of each of the first subjects
of their script's LOSO list (read from its text), rendered by our synthetic benchmark in
CASME II's cropped layout with its spreadsheet in the copy's root, as their dataset class
reads it, and the candidate frames of the training-pair choice, which both loops make.
`--time-rounds R` runs the three loops R times, the order rotated each round; `--json`
writes every fold's figures.

    python benchmarks/reference_check.py /tmp/tsfref --time --json reftime.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tsfmicro.config import PRESETS, preset
from tsfmicro.models import build_model
from tsfmicro.models.layers import DropPath

WEIGHT_SEED = 20250522  # the paper's arXiv date
INPUT_SEED = 16372
BATCH = 2
NUM_CLASSES = 5


# --- our side: seeded weights and inputs (the fixture test imports these) -----------------


def seeded_model(fusion: str, seed: int = WEIGHT_SEED) -> nn.Module:
    """Our model at the paper preset, float64: `build_model(cfg, seed)`, then every tensor that
    initialises to a constant (biases, norm weights and biases, BatchNorm running statistics)
    gets seeded noise, so that a misplaced bias or norm would show in the logits."""
    model = build_model(preset("paper", fusion=fusion, num_classes=NUM_CLASSES), seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point() or not bool((t == t.flatten()[0]).all()):
                continue
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5, generator=g)
            else:
                t.add_(0.05 * torch.randn(t.shape, generator=g))
    return model.double()


def seeded_inputs(seed: int = INPUT_SEED) -> tuple[Tensor, Tensor]:
    """A normalised onset (B, 3, 224, 224) and an apex that differs from it a little."""
    g = torch.Generator().manual_seed(seed)
    onset = torch.randn(BATCH, 3, 224, 224, generator=g, dtype=torch.float64)
    apex = onset + 0.3 * torch.randn(BATCH, 3, 224, 224, generator=g, dtype=torch.float64)
    return onset, apex


def no_drop_path(model: nn.Module) -> None:
    """Stochastic depth off (ours and the stand-in's), so train mode is deterministic."""
    for m in model.modules():
        if isinstance(m, DropPath):
            m.p = 0.0
        elif hasattr(m, "drop_prob"):  # theirs (s_branch.py, fusion_vit_*.py) and the stand-in
            m.drop_prob = 0.0


# --- the name-mapping table ----------------------------------------------------------------
# Our state-dict prefix -> theirs. {s} stage, {b} block, {i} layer index; T, V and H are the
# authors' prefixes of the temporal network, the ViT and the head in each class.

STEM = [(f"body.{i}.0.", f"{3 * i}.") for i in range(4)] + [  # conv
    (f"body.{i}.1.", f"{3 * i + 1}.")
    for i in range(4)  # BatchNorm
]
TEMPORAL_BLOCK = [
    ("cpe.", "pos."),
    ("norm1.", "retention_layer_norm."),
    ("mixer.", "retention."),  # q_proj, k_proj, v_proj, lepe.conv, out_proj: same names
    ("norm2.", "final_layer_norm."),
    ("ffn.", "ffn."),  # fc1, dwconv.conv, fc2
]
DOWNSAMPLE = [("body.0.", "reduction."), ("body.1.", "norm.")]
VIT = [("proj.", "patch_embed.proj."), ("pos_embed", "pos_embed"), ("norm.", "norm.")]
VIT_BLOCK = [("", "")]  # norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2: same names
HEAD = [("head.proj.", "proj."), ("head.norm.", "norm."), ("head.fc.", "head.")]
# Their position tables (not weights): recomputed in float64 from their formula.
DERIVED = ("Relpos.angle", "Relpos.decay")
UNUSED_VIT = ["cls_token", "head.", "to_Mask."]  # built by their ViT classes, never called
# Variants whose models have the same parameters, so the same seeds give the same weights.
CROSS = (("late", "t2s", "t2s_pre"), ("spatial_only", "spatial_only_apex"))


def temporal_pairs(depths: tuple[int, ...], ours: str, theirs: str, stem: str | None) -> list:
    pairs = []
    if stem is not None:
        pairs += [(f"{ours}.stem.{o}", f"{stem}.{t}") for o, t in STEM]
    for s, depth in enumerate(depths):
        for b in range(depth):
            pairs += [
                (f"{ours}.stages.{s}.blocks.{b}.{o}", f"{theirs}.layers.{s}.blocks.{b}.{t}")
                for o, t in TEMPORAL_BLOCK
            ]
        if s < 3:
            pairs += [
                (f"{ours}.stages.{s}.downsample.{o}", f"{theirs}.layers.{s}.downsample.{t}")
                for o, t in DOWNSAMPLE
            ]
    return pairs


def vit_pairs(depth: int, theirs: str) -> list:
    pairs = [(f"spatial.{o}", f"{theirs}.{t}") for o, t in VIT]
    return pairs + [(f"spatial.blocks.{i}.", f"{theirs}.blocks.{i}.") for i in range(depth)]


@dataclass
class Variant:
    name: str  # ours
    paper: str  # the paper's name
    file: str  # their file
    cls: str  # their class
    build: Callable[[], nn.Module]
    run: Callable[[nn.Module, Tensor, Tensor], Tensor]
    pairs: list  # (our prefix, their prefix)
    unused: list  # their prefixes of tensors their forward never uses
    note: str = ""
    extra: dict = field(default_factory=dict)


def variants(ref: types.SimpleNamespace) -> list[Variant]:
    """The table: our variant, the paper's name, their class, and how their tensors are named."""
    depths = PRESETS["paper"].config.stage_depths
    vdepth = PRESETS["paper"].config.spatial_depth
    rmt_stem = "main_branch.patch_embed.proj"
    vit_unused = [f"vit_pos.{u}" for u in UNUSED_VIT]

    def t2s_pre(model: nn.Module, onset: Tensor, apex: Tensor) -> Tensor:
        """TS_micro_after's own forward, with the temporal tokens moved from after the ViT
        blocks to before them (where the lines commented out in fusion_vit_pc.py put them)."""
        vit, stash = model.vit_pos, {}

        def take(_module: nn.Module, args: tuple) -> tuple:
            x, y = args
            stash["y"] = y
            return x, torch.zeros_like(y)  # after the blocks: x + 0 == x exactly

        def give(_module: nn.Module, args: tuple) -> tuple:
            return (args[0] + stash["y"],)

        hooks = [vit.register_forward_pre_hook(take), vit.blocks[0].register_forward_pre_hook(give)]
        try:
            return model(onset, apex)
        finally:
            for h in hooks:
                h.remove()

    late_head = [(o, f"main_branch.{t}") for o, t in HEAD]
    return [
        Variant(
            "late",
            "T-S (late)",
            "classes/model/ts_micro.py",
            "ts_micro",
            lambda: ref.ts_micro(num_classes=NUM_CLASSES),
            lambda m, o, a: m(o, a),
            temporal_pairs(depths, "temporal", "main_branch", rmt_stem)
            + vit_pairs(vdepth, "vit_pos")
            + late_head,
            vit_unused,
        ),
        Variant(
            "early",
            "T-S (early)",
            "fusion/model/ts_fusion.py",
            "ts_fusion",
            lambda: ref.ts_fusion(num_classes=NUM_CLASSES),
            lambda m, o, a: m(o, a),
            temporal_pairs(depths, "temporal", "main_branch", "ConvStem_S.proj")
            + [(f"onset_stem.{o}", f"ConvStem_T.proj.{t}") for o, t in STEM]
            + late_head,
            ["main_branch.patch_embed."],  # RMT.py's forward starts after its stem
        ),
        Variant(
            "t2s",
            "T to S",
            "fusion/model/fusion_after_model.py",
            "TS_micro_after",
            lambda: ref.TS_micro_after(num_classes=NUM_CLASSES),
            lambda m, o, a: m(o, a),
            temporal_pairs(depths, "temporal", "main_branch", rmt_stem)
            + vit_pairs(vdepth, "vit_pos")
            + HEAD,
            vit_unused + ["main_branch.proj.", "main_branch.norm.", "main_branch.head."],
        ),
        Variant(
            "t2s_pre",
            "T to S (as the figure draws it)",
            "fusion/model/fusion_after_model.py",
            "TS_micro_after, temporal tokens added before the ViT blocks by a hook",
            lambda: ref.TS_micro_after(num_classes=NUM_CLASSES),
            t2s_pre,
            temporal_pairs(depths, "temporal", "main_branch", rmt_stem)
            + vit_pairs(vdepth, "vit_pos")
            + HEAD,
            vit_unused + ["main_branch.proj.", "main_branch.norm.", "main_branch.head."],
            note="no class of theirs computes it; their forward with the addition moved",
        ),
        Variant(
            "s2t_ref",
            "S to T",
            "fusion/model/fusion_before_model.py",
            "TS_micro_before",
            lambda: ref.TS_micro_before(num_classes=NUM_CLASSES),
            lambda m, o, a: m(o, a),
            temporal_pairs(depths, "temporal", "main_branch", rmt_stem)
            + vit_pairs(vdepth, "vit_pos")
            + late_head
            + [(f"s2t.body.{i}.", f"transposed_conv{i + 1}.") for i in range(3)],
            vit_unused,
        ),
        Variant(
            "temporal_only",
            "(temporal branch alone)",
            "classes/model/t_branch.py",
            "RMT_T3",
            lambda: ref.RMT_T3(num_class=NUM_CLASSES),
            lambda m, o, a: m(a - o),
            temporal_pairs(depths, "temporal", "main_branch", rmt_stem) + late_head,
            [],
            extra={"prefix": "main_branch."},  # RMT_T3 is their temporal network itself
        ),
        Variant(
            "spatial_only_apex",
            "(spatial branch alone)",
            "fusion/model/fusion_ts_micro.py",
            "fusion_TS_micro",
            lambda: ref.fusion_TS_micro(num_classes=NUM_CLASSES),
            lambda m, o, a: m(o, a),
            vit_pairs(vdepth, "vit_pos") + HEAD,
            vit_unused,
        ),
        Variant(
            "spatial_only",
            "(spatial branch alone, onset)",
            "fusion/model/fusion_ts_micro.py",
            "fusion_TS_micro, given the onset as its apex",
            lambda: ref.fusion_TS_micro(num_classes=NUM_CLASSES),
            lambda m, o, a: m(a, o),
            vit_pairs(vdepth, "vit_pos") + HEAD,
            vit_unused,
            note="their class reads the apex; fed the onset in its place",
        ),
    ]


# --- the authors' code, imported as it is ---------------------------------------------------


def install_stand_ins(repo: Path) -> types.SimpleNamespace:
    """Import the authors' model classes from `repo`, providing what they import but do not
    ship (timm, model.RMT, PC_module) as stand-in modules."""

    def module(name: str, **attrs: object) -> types.ModuleType:
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        sys.modules[name] = mod
        return mod

    class StandInDropPath(nn.Module):
        """timm's DropPath: zero a residual branch per sample with probability drop_prob."""

        def __init__(self, drop_prob: float = 0.0) -> None:
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x: Tensor) -> Tensor:
            if not self.drop_prob or not self.training:
                return x
            keep = 1 - self.drop_prob
            mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
            return x * mask / keep

    def to_2tuple(x: object) -> tuple:
        return tuple(x) if isinstance(x, (tuple, list)) else (x, x)

    layers = {"DropPath": StandInDropPath, "trunc_normal_": nn.init.trunc_normal_}
    timm = module("timm")
    timm.layers = module("timm.layers", **layers)
    timm.models = module("timm.models", register_model=lambda fn: fn)
    timm.models.layers = module("timm.models.layers", **layers, to_2tuple=to_2tuple)
    timm.models.vision_transformer = module(
        "timm.models.vision_transformer", _cfg=lambda **kw: dict(kw)
    )
    timm.data = module(
        "timm.data",
        IMAGENET_DEFAULT_MEAN=(0.485, 0.456, 0.406),
        IMAGENET_DEFAULT_STD=(0.229, 0.224, 0.225),
    )
    sys.path.insert(0, str(repo))  # their modules import each other from the repository root
    rmt = importlib.import_module("fusion.model.RMT")
    module("model", RMT=rmt)
    sys.modules["model.RMT"] = rmt
    vit_before = importlib.import_module("fusion.model.fusion_vit_before")
    module("PC_module", VisionTransformer_POS=vit_before.VisionTransformer_POS)
    get = importlib.import_module
    return types.SimpleNamespace(
        ts_micro=get("classes.model.ts_micro").ts_micro,
        RMT_T3=get("classes.model.t_branch").RMT_T3,
        ts_fusion=get("fusion.model.ts_fusion").ts_fusion,
        TS_micro_after=get("fusion.model.fusion_after_model").TS_micro_after,
        TS_micro_before=get("fusion.model.fusion_before_model").TS_micro_before,
        fusion_TS_micro=get("fusion.model.fusion_ts_micro").fusion_TS_micro,
    )


def their_tables_in_float64(model: nn.Module) -> float:
    """Set their rotary angles and decays to their formula computed in float64; returns the
    largest difference between their float32 decays and ours (float32)."""
    worst = 0.0
    for m in model.modules():
        if type(m).__name__ != "RetNetRelPos2d":
            continue
        half = m.angle.numel() // 2
        angle = 1.0 / (10000 ** torch.linspace(0, 1, half, dtype=torch.float64))
        h = torch.arange(m.num_heads, dtype=torch.float64)
        decay = torch.log(1 - 2 ** (-m.initial_value - m.heads_range * h / m.num_heads))
        worst = max(worst, float((m.decay.double() - decay.float().double()).abs().max()))
        m.angle = angle.repeat_interleave(2)
        m.decay = decay
    return worst


def copy_weights(ours: nn.Module, theirs: nn.Module, v: Variant) -> dict:
    """Copy every tensor of ours into theirs through the table; check the table covers both
    sides. Returns their unused tensors and parameter counts."""
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    prefix = v.extra.get("prefix")
    if prefix:  # a class that is itself the temporal network: map onto "main_branch."
        theirs_sd = {prefix + k: t for k, t in theirs_sd.items()}
    target: dict[str, str] = {}
    for key in ours_sd:
        hits = [(o, t) for o, t in v.pairs if key.startswith(o)]
        if len(hits) != 1:
            raise SystemExit(f"{v.name}: {key} matches {len(hits)} table rows: {hits}")
        o, t = hits[0]
        target[key] = t + key[len(o) :]
    if len(set(target.values())) != len(target):
        raise SystemExit(f"{v.name}: two of our tensors map to one of theirs")
    missing = sorted(set(target.values()) - set(theirs_sd))
    if missing:
        raise SystemExit(f"{v.name}: mapped names not in their model: {missing[:5]}")
    left = {k for k in theirs_sd if k not in set(target.values())}
    derived = {k for k in left if k.endswith(DERIVED)}
    unused = {k for k in left - derived if k.startswith(tuple(v.unused))}
    unexplained = sorted(left - derived - unused)
    if unexplained:
        raise SystemExit(f"{v.name}: their tensors not in the table: {unexplained[:8]}")
    listed = [u for u in v.unused if not any(k.startswith(u) for k in unused)]
    if listed:
        raise SystemExit(f"{v.name}: listed as unused but absent: {listed}")
    with torch.no_grad():
        for key, t in ours_sd.items():
            dest = theirs_sd[target[key]]
            if dest.shape != t.shape:
                raise SystemExit(f"{v.name}: {key} {tuple(t.shape)} -> {tuple(dest.shape)}")
            dest.copy_(t)
    params = dict(theirs.named_parameters())
    if prefix:
        params = {prefix + k: p for k, p in params.items()}
    unused_params = {k: p.numel() for k, p in params.items() if k in unused}
    return {"unused": sorted(unused), "unused_params": unused_params, "params": params}


def compare(ref: types.SimpleNamespace, v: Variant, onset: Tensor, apex: Tensor) -> dict:
    ours = seeded_model(v.name)
    torch.manual_seed(0)  # their constructors draw random numbers; overwritten below anyway
    theirs = v.build().double()
    table_diff = their_tables_in_float64(theirs)
    mapped = copy_weights(ours, theirs, v)
    result = {"table_f32_decay_diff": table_diff}
    for mode in ("eval", "train"):
        ours.train(mode == "train")
        theirs.train(mode == "train")
        no_drop_path(ours)
        no_drop_path(theirs)
        with torch.set_grad_enabled(mode == "train"):
            a, b = ours(onset, apex), v.run(theirs, onset, apex)
        result[f"diff_{mode}"] = float((a - b).detach().abs().max())
        result[f"scale_{mode}"] = float(b.detach().abs().max())
        result[f"logits_{mode}"] = b.detach().tolist()
        result[f"ours_{mode}"] = a.detach()
        if mode == "train":  # their unused tensors really are unused: no gradient, no stats
            b.square().sum().backward()
            got_grad = {k for k, p in mapped["params"].items() if p.grad is not None}
            wrong = sorted(got_grad & set(mapped["unused_params"]))
            idle = sorted(set(mapped["params"]) - got_grad - set(mapped["unused_params"]))
            if wrong or idle:
                raise SystemExit(f"{v.name}: unused list wrong: used {wrong}, idle {idle}")
            sd = theirs.state_dict()
            moved = [k for k in mapped["unused"] if k.endswith("num_batches_tracked")]
            if any(int(sd[k.removeprefix(v.extra.get("prefix", ""))]) for k in moved):
                raise SystemExit(f"{v.name}: an unused BatchNorm updated its statistics")
    result["params_ours"] = sum(p.numel() for p in ours.parameters())
    result["params_theirs"] = sum(p.numel() for p in theirs.parameters())
    result["unused_params"] = mapped["unused_params"]
    return result


def resize_check(ref: types.SimpleNamespace, onset: Tensor, apex: Tensor) -> dict:
    """torchvision's Resize on a tensor (what their spatial branch calls) against ours; and
    what `late` gives if Resize does not antialias (torchvision before 0.17)."""
    import torchvision
    from torchvision.transforms import Resize

    ours = F.interpolate(onset, size=(14, 14), mode="bilinear", antialias=True, align_corners=False)
    plain = Resize([14, 14], antialias=False)(onset)
    out = {
        "torchvision": torchvision.__version__,
        "resize_default_vs_ours": float((Resize([14, 14])(onset) - ours).abs().max()),
        "resize_no_antialias_vs_ours": float((plain - ours).abs().max()),
    }
    v = variants(ref)[0]
    model, theirs = seeded_model(v.name).eval(), v.build().double().eval()
    their_tables_in_float64(theirs)
    copy_weights(model, theirs, v)
    with torch.no_grad():
        a = v.run(theirs, onset, apex)
        theirs.resize = Resize([14, 14], antialias=False)
        b = v.run(theirs, onset, apex)
    out["late_logits_no_antialias_diff"] = float((a - b).abs().max())
    return out


# --- timing: the authors' training loop beside ours (--time) --------------------------------
# Their CASME II 5-class script trains ts_micro (our `late`, the paper preset). It is run as it
# is, driven from outside: its module imported from the given copy, CUDA calls made no-ops
# (.cuda() returns the tensor or module itself), and three names of its module replaced for the
# run (the module-level lookups of `range`, `print` and its dataset class) to cut its epoch
# loop to the given epochs, stamp the time at its own prints and stop it after the given folds.

TIME_SCRIPT = "classes/cas2/train_c5.py"
TIME_MODULE = "classes.cas2.train_c5"
TIME_DATASET_CLASS = "cas2_c5_DataSet"
TIME_LOOPS = ("theirs", "ours", "recreation")
TIME_SEED = 2  # what their script's __main__ passes to their seed_torch
# Our synthetic rows: every clip has onset..apex 40 frames apart, so their `flow_difference`
# (and ours) chooses among the pairs within int(0.15 * 40 / 4) = 1 frame of the annotated one.
TIME_EMOTIONS = (  # CASME II 5-class emotions with plausible AU strings (their code splits "+")
    ("happiness", "6+12"),
    ("repression", "14"),
    ("disgust", "4+9"),
    ("surprise", "1+2"),
    ("others", "4"),
)


class _StopTheirLoop(Exception):
    """Raised from their dataset class when their LOSO list reaches a subject past the timed
    folds: the only way out of their loop, which ends in a plot otherwise."""


def their_loso_order(repo: Path) -> list[str]:
    """The subjects of their script's `LOSO` list, in its order, read from its text with `ast`
    (their loop holds out the subjects in this order, so the timed set uses the first ones)."""
    import ast

    tree = ast.parse((repo / TIME_SCRIPT).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "LOSO" for t in node.targets
        ):
            return [str(s) for s in ast.literal_eval(node.value)]
    raise SystemExit(f"{TIME_SCRIPT}: no LOSO list found")


def write_timing_set(folder: Path, subjects: list[str], clips: int) -> Path:
    """A synthetic CASME II copy in the cropped layout (Cropped/subNN/<clip>/reg_imgN.jpg, the
    frames their dataset class and ours read, with the candidate frames of the training-pair
    choice), its subjects named as theirs, `clips` clips each with the 5 classes in turn, and
    the spreadsheet CASME2-coding-20190701.xlsx in its root (their dataset class reads it from
    there by column position: Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action
    Units, Estimated Emotion). Returns the copy's root."""
    import pandas as pd

    from tsfmicro.synth import SynthConfig, write_for_annotation

    rows = []
    for s in subjects:
        for c in range(clips):
            emotion, aus = TIME_EMOTIONS[c % len(TIME_EMOTIONS)]
            onset = 30 + 2 * c
            rows.append(
                [
                    int(s),
                    f"EP{c + 1:02d}_{int(s):02d}",
                    None,
                    onset,
                    onset + 40,
                    onset + 80,
                    None,
                    aus,
                    emotion,
                    1 + c % len(TIME_EMOTIONS),
                ]
            )
    columns = [
        "Subject",
        "Filename",
        "Unnamed: 2",
        "OnsetFrame",
        "ApexFrame",
        "OffsetFrame",
        "Unnamed: 6",
        "Action Units",
        "Estimated Emotion",
        "Objective Classes",
    ]
    sheet = folder / "CASME2-coding-20190701.xlsx"
    pd.DataFrame(rows, columns=columns).to_excel(sheet, sheet_name="Sheet1", index=False)
    root = folder / "casme2"
    config = SynthConfig(dataset="casme2", layout="cropped", difficulty="easy", pair_frames=True)
    write_for_annotation(sheet, root, config, overwrite=True)
    (root / sheet.name).write_bytes(sheet.read_bytes())
    return root


def time_theirs(repo: Path, root: Path, subjects: list[str], epochs: int) -> list[dict]:
    """Run their script's `run_training` on `root` for the first folds of their LOSO list
    (`subjects`) and `epochs` epochs each; per fold: the seconds from their fold's first print
    (its data loaders made, its model not yet built) to the end of its last epoch, the epochs
    it ran (their loop stops a fold at 100% test accuracy), the seconds spent inside their
    dataset's __getitem__ (decoding, the training-pair choice, the PIL transforms), its
    training samples and its last test accuracy as they print it."""
    import builtins

    train = importlib.import_module(TIME_MODULE)
    base = importlib.import_module("base")
    folds: list[dict] = []
    wanted = set(subjects)
    Original = getattr(train, TIME_DATASET_CLASS)

    class Timed(Original):  # type: ignore[misc, valid-type]
        def __init__(self, raf_path, phase, num_loso, *args, **kwargs):  # noqa: ANN001
            if str(num_loso) not in wanted:
                raise _StopTheirLoop
            super().__init__(raf_path, phase, num_loso, *args, **kwargs)
            if phase == "train":
                self.timed_train_samples = len(self)

        def __getitem__(self, idx):  # noqa: ANN001
            t = time.perf_counter()
            try:
                return super().__getitem__(idx)
            finally:
                if folds:
                    folds[-1]["data_s"] += time.perf_counter() - t

    def stamp(*args: object, **kwargs: object) -> None:
        now = time.perf_counter()
        text = " ".join(map(str, args))
        if args and args[0] == "num_sub":
            folds.append({"subject": str(args[1]), "start": now, "ends": [], "data_s": 0.0})
        elif args and args[0] == "Train set size:" and folds:
            folds[-1]["train_samples"] = int(args[1])
        elif text.startswith("[Epoch") and folds:
            folds[-1]["ends"].append(now)
            acc = re.search(r"accuracy:([0-9.]+?)\. ", text)
            folds[-1]["test_acc"] = float(acc.group(1)) if acc else None

    def epoch_range(*args: int) -> range:
        if len(args) == 2 and args[0] == 1 and args[1] > epochs + 1:  # `range(1, 175)`
            return builtins.range(1, epochs + 1)
        return builtins.range(*args)

    saved = torch.Tensor.cuda, nn.Module.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    train.range, train.print = epoch_range, stamp
    setattr(train, TIME_DATASET_CLASS, Timed)
    try:
        base.seed_torch(TIME_SEED)
        train.run_training(str(root))
        raise SystemExit("their loop ended without reaching a subject past the timed ones")
    except _StopTheirLoop:
        pass
    finally:
        torch.Tensor.cuda, nn.Module.cuda = saved  # type: ignore[method-assign]
        del train.range, train.print
        setattr(train, TIME_DATASET_CLASS, Original)
    return [
        {
            "subject": f["subject"],
            "seconds": f["ends"][-1] - f["start"],
            "epochs": len(f["ends"]),
            "data_s": f["data_s"],
            "train_samples": f.get("train_samples"),
            "test_acc": f.get("test_acc"),
        }
        for f in folds
    ]


def time_ours(pairs, ids: list[str], epochs: int) -> list[dict]:  # noqa: ANN001
    """Our run_loso, sequential on the CPU, paper preset, the published recipe of CASME II
    5-class with `epochs` epochs; per fold: its seconds (model built, trained, the held-out
    subject predicted after every epoch), epochs, training samples, final test accuracy."""
    from tsfmicro.config import MachineConfig, TrainConfig
    from tsfmicro.recipes import recipe_values
    from tsfmicro.training.loso import run_loso
    from tsfmicro.training.runners import Runner

    train_cfg = TrainConfig(
        **(recipe_values("published", "casme2", "5class", 5) | {"epochs": epochs})
    )
    model_cfg = preset("paper", num_classes=5)
    result = run_loso(
        pairs, model_cfg, train_cfg, Runner(machine=MachineConfig(device="cpu")), subjects=ids
    )
    labels = pairs.labels.numpy()
    return [
        {
            "subject": f.subject,
            "seconds": f.seconds,
            "epochs": epochs,
            "train_samples": f.train_samples,
            "test_acc": float((f.test_probs[-1].argmax(1) == labels[f.test_index]).mean()),
        }
        for f in result.folds
    ]


def time_recreation(table, pairs, ids: list[str], epochs: int) -> dict:  # noqa: ANN001
    """benchmarks/bench_loso.py's path (a), its re-creation of the published loop (JPEG frames
    decoded, the training pair chosen and PIL-transformed per item every epoch, a DataLoader,
    fp32, the test subject evaluated every epoch), on the same frames and folds."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_loso

    from tsfmicro.config import TrainConfig
    from tsfmicro.datasets import frame_path
    from tsfmicro.datasets.train_pairs import candidate_frames, jitter_range
    from tsfmicro.recipes import recipe_values

    files = []
    for row in table.samples.to_dict("records"):
        onset, apex = int(row["onset"]), int(row["apex"])
        r = jitter_range("casme2", onset, apex)
        frames = {n: str(frame_path(row, n)) for n in candidate_frames(onset, apex, r)}
        files.append(
            {
                "onset": onset,
                "apex": apex,
                "r": r,
                "frames": {n: p for n, p in frames.items() if Path(p).is_file()},
            }
        )
    train_cfg = TrainConfig(
        **(recipe_values("published", "casme2", "5class", 5) | {"epochs": epochs})
    )
    out = bench_loso.run_baseline(
        pairs, files, ids, preset("paper", num_classes=5), train_cfg, torch.device("cpu")
    )
    return {
        "seconds": out["seconds"],
        "folds": out["folds"],
        "epochs": epochs,
        "final_acc": out["final_acc"],
    }


def warm_up() -> None:
    """What a process pays once before its first fold, paid before any clock starts: torch's
    optimizer imports (torch._dynamo) and a first forward and backward of the paper model."""
    import torch._dynamo  # noqa: F401

    model = build_model(preset("paper", num_classes=NUM_CLASSES), seed=0)
    opt = torch.optim.AdamW(model.parameters())
    x = torch.randn(2, 3, 224, 224)
    model(x, x + 0.1).sum().backward()
    opt.step()


def run_timing(args: argparse.Namespace, repo: Path) -> None:
    import tempfile

    from tsfmicro.datasets import load_dataset
    from tsfmicro.pairs import pairs_from_table

    torch.set_num_threads(args.threads)
    order = their_loso_order(repo)
    subjects = order[: args.time_folds]
    install_stand_ins(repo)
    with tempfile.TemporaryDirectory(prefix="tsfmicro-reftime-") as tmp:
        folder = Path(args.time_dir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(
            f"writing {len(subjects)} synthetic subjects ({', '.join(subjects)}: the first of "
            f"their LOSO list) x {args.time_clips} clips in {folder}"
        )
        root = write_timing_set(folder, subjects, args.time_clips)
        table = load_dataset(
            "casme2",
            root,
            protocol="5class",
            annotation=root / "CASME2-coding-20190701.xlsx",
            layout="cropped",
        )
        pairs = pairs_from_table(table, 224, cache_dir=folder / "cache", progress=False)
        by_number = {int("".join(ch for ch in s if ch.isdigit())): s for s in pairs.subject_ids()}
        ids = [by_number[int(s)] for s in subjects]
        warm_up()
        print(
            f"timing {len(ids)} folds x {args.time_epochs} epochs, paper preset (224 px), "
            f"{torch.get_num_threads()} torch threads, CPU"
        )
        rounds = []
        for k in range(args.time_rounds):
            took: dict = {}
            for name in TIME_LOOPS[k % 3 :] + TIME_LOOPS[: k % 3]:  # rotated each round
                if name == "theirs":
                    took[name] = time_theirs(repo, root, subjects, args.time_epochs)
                elif name == "ours":
                    took[name] = time_ours(pairs, ids, args.time_epochs)
                elif not args.no_recreation:
                    took[name] = time_recreation(table, pairs, ids, args.time_epochs)
                if name in took:
                    print(f"  {name}: done", flush=True)
            rounds.append(took)
            print_timing(k, took)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "script": TIME_SCRIPT,
                    "threads": args.threads,
                    "folds": subjects,
                    "clips_per_subject": args.time_clips,
                    "epochs": args.time_epochs,
                    "cpu": _cpu_name(),
                    "torch": torch.__version__,
                    "rounds": rounds,
                },
                indent=1,
            )
            + "\n"
        )
        print(f"wrote {args.json}")


def per_fold_epoch(folds: list[dict]) -> float:
    return sum(f["seconds"] for f in folds) / sum(f["epochs"] for f in folds)


def print_timing(k: int, took: dict) -> None:
    theirs, ours = per_fold_epoch(took["theirs"]), per_fold_epoch(took["ours"])
    data = sum(f["data_s"] for f in took["theirs"]) / sum(f["seconds"] for f in took["theirs"])
    print(f"round {k + 1}: seconds per fold-epoch (model built, trained, test subject predicted)")
    print(
        f"  theirs ({TIME_SCRIPT}, run as it is): {theirs:7.2f}   folds "
        + ", ".join(f"{f['subject']} {f['seconds']:.1f} s/{f['epochs']} ep" for f in took["theirs"])
        + f"; {data:.0%} of it inside their dataset's __getitem__"
    )
    print(
        f"  ours (run_loso, sequential, published recipe): {ours:7.2f}   folds "
        + ", ".join(f"{f['subject']} {f['seconds']:.1f} s" for f in took["ours"])
    )
    line = f"  theirs / ours: {theirs / ours:.2f}"
    if "recreation" in took:
        rec = took["recreation"]
        again = rec["seconds"] / (rec["folds"] * rec["epochs"])
        print(f"  bench_loso.py (a), the re-creation of their loop: {again:7.2f}")
        line += (
            f"; re-creation / ours: {again / ours:.2f}; theirs / re-creation: {theirs / again:.2f}"
        )
    print(line)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="a copy of the authors' TSFmicro repository")
    parser.add_argument("--commit", help="their commit, recorded in the fixture")
    parser.add_argument("--only", action="append", help="check only these variants")
    parser.add_argument("--write-fixture", type=Path, metavar="PATH", help="write their logits")
    timing = parser.add_argument_group(
        "timing (--time): their training loop beside ours instead of the logit check"
    )
    timing.add_argument("--time", action="store_true", help="time the training loops")
    timing.add_argument("--time-folds", type=int, default=3, help="folds (default 3)")
    timing.add_argument("--time-epochs", type=int, default=2, help="epochs per fold (default 2)")
    timing.add_argument("--time-clips", type=int, default=8, help="clips per subject (default 8)")
    timing.add_argument("--time-rounds", type=int, default=1, help="rounds of the three loops")
    timing.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    timing.add_argument("--time-dir", type=Path, help="keep the synthetic set here")
    timing.add_argument("--no-recreation", action="store_true", help="skip bench_loso.py (a)")
    timing.add_argument("--json", type=Path, metavar="PATH", help="write the timings")
    args = parser.parse_args()
    if not (args.repo / "fusion" / "model" / "RMT.py").is_file():
        parser.error(f"{args.repo} does not look like the TSFmicro repository")
    for name in ("time_folds", "time_epochs", "time_clips", "time_rounds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.time and args.time_folds < 2:
        parser.error("--time-folds must be at least 2 (the set is the timed folds' subjects)")
    if args.time:
        run_timing(args, args.repo.resolve())
        return
    commit = args.commit or _git_head(args.repo)
    ref = install_stand_ins(args.repo.resolve())
    onset, apex = seeded_inputs()
    rz = resize_check(ref, onset, apex)
    print(
        f"torchvision {rz['torchvision']}: Resize([14, 14]) on a tensor vs our resize: "
        f"{rz['resize_default_vs_ours']:.2e}; with antialias=False (torchvision < 0.17): "
        f"{rz['resize_no_antialias_vs_ours']:.3f}, late logits change "
        f"{rz['late_logits_no_antialias_diff']:.3f}"
    )
    rows = {}
    header = (
        f"{'ours':<18} {'paper':<31} {'their class':<16} {'|dlogit| eval':>13} "
        f"{'train':>9} {'|logit|':>8} {'ours':>10} {'theirs':>10} unused (theirs)"
    )
    print(header)
    for v in variants(ref):
        if args.only and v.name not in args.only:
            continue
        r = compare(ref, v, onset, apex)
        rows[v.name] = (v, r)
        unused = (
            ", ".join(f"{k} {n:,}" for k, n in _group(r["unused_params"], v.unused).items()) or "-"
        )
        print(
            f"{v.name:<18} {v.paper:<31} {v.cls.split(',')[0]:<16} {r['diff_eval']:>13.2e} "
            f"{r['diff_train']:>9.2e} {r['scale_eval']:>8.3f} {r['params_ours']:>10,} "
            f"{r['params_theirs']:>10,} {unused}"
        )
        if v.note:
            print(f"{'':<18} ({v.note})")
    for group in CROSS:
        names = [n for n in group if n in rows]
        if len(names) > 1:
            print_cross(names, rows)
    worst = max(r["table_f32_decay_diff"] for _, r in rows.values())
    print(f"their float32 decays vs ours (float32): largest difference {worst:.1e}")
    if args.write_fixture:
        fixture = {
            "about": "the authors' TSFmicro logits for our seeded weights and inputs, float64; "
            "written by benchmarks/reference_check.py, checked by "
            "tests/tsfmicro/models/test_reference_fixture.py",
            "reference": "github.com/Cross-Innovation-Lab/TSFmicro",
            "commit": commit,
            "preset": "paper",
            "num_classes": NUM_CLASSES,
            "batch": BATCH,
            "weight_seed": WEIGHT_SEED,
            "input_seed": INPUT_SEED,
            "late_model": "late",  # the variant that is the authors' T-S (late) model
            "variants": {
                name: {
                    "paper": v.paper,
                    "file": v.file,
                    "class": v.cls,
                    "logits_eval": r["logits_eval"],
                    "logits_train": r["logits_train"],
                    "max_abs_diff_eval": r["diff_eval"],
                    "params_ours": r["params_ours"],
                    "params_theirs": r["params_theirs"],
                    "unused_params_theirs": _group(r["unused_params"], v.unused),
                }
                for name, (v, r) in rows.items()
            },
        }
        args.write_fixture.parent.mkdir(parents=True, exist_ok=True)
        args.write_fixture.write_text(json.dumps(fixture, indent=1) + "\n")
        print(f"wrote {args.write_fixture}")


def print_cross(names: list[str], rows: dict) -> None:
    """Variants with the same weights (same parameters, same seeds): each of ours against each
    of their classes, to show which computation each class is."""
    print("\nmax |dlogit| in eval, same weights: our variant (rows) against the authors' class")
    print("as run for a variant (columns; the `their class` column above):")
    print(f"{'':<18}" + "".join(f"{n:>18}" for n in names))
    for a in names:
        ours = rows[a][1]["ours_eval"]
        diffs = [
            float((ours - torch.tensor(rows[b][1]["logits_eval"], dtype=ours.dtype)).abs().max())
            for b in names
        ]
        print(f"{a:<18}" + "".join(f"{d:>18.2e}" for d in diffs))


def _group(unused: dict[str, int], prefixes: list[str]) -> dict[str, int]:
    """Unused parameter counts by the table's unused prefixes (cls_token, head, ...)."""
    out: dict[str, int] = {}
    for k, n in unused.items():
        group = next(p for p in prefixes if k.startswith(p)).rstrip(".")
        out[group] = out.get(group, 0) + n
    return out


def _git_head(repo: Path) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    main()
