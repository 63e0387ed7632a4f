"""Named training recipes: values of `TrainConfig` fields that reproduce a source.

- `default`: nothing changed; the command's own base recipe (`TrainConfig()` for
  `tsfmicro train`, the CPU-sized `search.config.default_train()` for a search).
- `published`: the public TSFmicro training scripts (github.com/Cross-Innovation-Lab/TSFmicro,
  commit d96e560) as far as they are runnable, per dataset and protocol: their epoch
  budget, weight decay, rotation and crop padding, whether the training pair near the
  annotated one is chosen, and what every script shares (AdamW lr 8e-4, batch 32,
  cross-entropy without class weights, ExponentialLR 0.987 for the first 50 epochs,
  horizontal flip 0.5, the augmentation filled with the ImageNet mean and rotated with
  nearest-neighbour sampling). Their epoch selection is an evaluation mode, not part of the
  recipe: `published-oracle` (tsfmicro.training.evaluation.published_epochs), read from
  every run.

Each protocol's values name the script they come from (`PublishedScript.script`, a path in
the authors' repository). A protocol with no script of its own takes the values of the
scripts with its class count (3 classes: the 3-class values; otherwise the 5-class ones
with 199 epochs) and says so (`published_script(...).script` is None).

Plain data and functions: no torch, importable by command-line parsers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tsfmicro.errors import ConfigError

RECIPES: dict[str, str] = {
    "default": "the command's own base recipe (the paper's text; a search's CPU budget)",
    "published": "the public TSFmicro scripts' values for the dataset and protocol "
    "(epochs 174/199, weight decay, rotation, padding, ImageNet-mean fill, nearest rotation)",
}

# What every published script shares (classes/*/train_c*.py and fusion/*/train_*.py).
PUBLISHED_COMMON: dict[str, Any] = {
    "batch_size": 32,  # DataLoader(batch_size=32, shuffle=True)
    "lr": 8e-4,  # AdamW(lr=0.0008, ...)
    "lr_gamma": 0.987,  # ExponentialLR(gamma=0.987) ...
    "lr_decay_epochs": 50,  # ... stepped `if i <= 50` (i = 1..epochs), then held
    "class_weighting": "none",  # CrossEntropyLoss()
    "augment": True,
    "flip_p": 0.5,  # RandomHorizontalFlip(p=0.5)
    # RandomRotation and RandomCrop(padding=...) on the normalised 6-channel tensor: torchvision
    # fills with 0 there (the ImageNet mean colour), and RandomRotation samples nearest
    "augment_fill": "imagenet_mean",
    "augment_interpolation": "nearest",
}


@dataclass(frozen=True)
class PublishedScript:
    """The training values of one published script (or of the scripts a protocol without
    one falls back to, `script` None)."""

    dataset: str
    protocol: str
    script: str | None  # path in the authors' repository; None: no script of its own
    model: str  # the authors' class it trains (docs/model.md maps it to our fusion)
    epochs: int  # `for i in range(1, epochs + 1)`
    weight_decay: float
    rotation_deg: float
    crop_padding: int  # at 224 px
    train_pairs: bool  # the *_difference training-pair choice in the dataset class
    note: str = ""
    dataset_file: str | None = None  # the dataset class the script reads its samples with

    def values(self) -> dict[str, Any]:
        """The TrainConfig fields of this script's recipe."""
        return {
            **PUBLISHED_COMMON,
            "epochs": self.epochs,
            "weight_decay": self.weight_decay,
            "rotation_deg": self.rotation_deg,
            "crop_padding": self.crop_padding,
            "train_pairs": self.train_pairs,
        }


_FIVE = {"weight_decay": 0.6, "rotation_deg": 3.0, "crop_padding": 15}
_THREE = {"weight_decay": 0.7, "rotation_deg": 4.0, "crop_padding": 4}

PUBLISHED_SCRIPTS: dict[tuple[str, str], PublishedScript] = {
    (s.dataset, s.protocol): s
    for s in (
        PublishedScript(
            "casme2", "5class", "classes/cas2/train_c5.py", "ts_micro", 174, **_FIVE,
            train_pairs=True, dataset_file="classes/cas2/dataset_c5.py",  # flow_difference
        ),
        PublishedScript(
            "casme2", "3class", "fusion/cas2/train_c3.py", "ts_fusion", 199, **_THREE,
            train_pairs=True, dataset_file="fusion/cas2/dataset_cas2_c3.py",  # flow_difference
            note="classes/cas2/train_c3.py is an empty file: the only CASME II 3-class "
            "script is the fusion one, which trains ts_fusion (T-S early)",
        ),
        PublishedScript(
            "samm", "5class", "classes/samm/train_c5.py", "ts_micro", 199, **_FIVE,
            train_pairs=True, dataset_file="classes/samm/dataset_c5.py",  # samm_difference
        ),
        PublishedScript(
            "samm", "3class", "classes/samm/train_c3.py", "ts_micro", 199, **_THREE,
            train_pairs=False, dataset_file="classes/samm/dataset_c3.py",
            note="classes/samm/dataset_c3.py has its samm_difference call commented out: "
            "it trains on the annotated pair",
        ),
        PublishedScript(
            "casme3", "4class", "classes/cas3/train_c4.py", "ts_micro", 199, **_FIVE,
            train_pairs=True, dataset_file="classes/cas3/dataset_c4.py",  # casme3_difference
        ),
        PublishedScript(
            "casme3", "7class", "classes/cas3/train_c7.py", "ts_micro", 199, **_FIVE,
            train_pairs=True, dataset_file="classes/cas3/dataset_c7.py",  # casme3_difference
        ),
    )
}  # fmt: skip


def published_script(dataset: str, protocol: str, num_classes: int) -> PublishedScript:
    """The published values for `dataset`/`protocol` (a protocol's short name, "5class"):
    its script's, or, where it has none (MMEW, the composite, CAS(ME)3 3-class, the toy
    task), those of the scripts with `num_classes` classes, with `script` None."""
    found = PUBLISHED_SCRIPTS.get((dataset, protocol))
    if found is not None:
        return found
    family = _THREE if num_classes == 3 else _FIVE
    kind = "3-class" if num_classes == 3 else "4-, 5- and 7-class"
    return PublishedScript(
        dataset,
        protocol,
        None,
        "ts_micro",
        199,
        **family,
        train_pairs=True,
        note=f"no published script for {dataset} {protocol}: the values of the {kind} scripts",
    )


def recipe_values(
    name: str, dataset: str = "toy", protocol: str = "", num_classes: int = 5
) -> dict[str, Any]:
    """The TrainConfig fields recipe `name` sets for this dataset and protocol (none for
    "default"). Raises ConfigError for an unknown recipe."""
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    if name == "default":
        return {}
    return published_script(dataset, protocol, num_classes).values()


def describe(name: str, dataset: str = "toy", protocol: str = "", num_classes: int = 5) -> str:
    """One line saying where a recipe's values come from (for logs and run records)."""
    if name == "default":
        return "recipe default"
    script = published_script(dataset, protocol, num_classes)
    where = script.script or script.note
    return f"recipe published ({dataset} {protocol}: {where})"
