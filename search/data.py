"""The samples a search trains on, as one PairSet loaded in the driver.

`synthetic` (the default) writes the synthetic benchmark once, in a real
dataset's layout and spreadsheet format, under the data folder, then reads it
back through that dataset's adapter and the face-crop cache exactly like a
licensed copy. `toy` is the in-memory motion task (no faces). Any adapter name
reads a user's copy from `root`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from search.config import DataSpec
from tsfmicro.datasets import get_protocol
from tsfmicro.training.data import PairSet

SHUFFLED_SUFFIX = "-shuffled"  # the dataset name of a search on permuted labels


def dataset_label(spec: DataSpec) -> tuple[str, str]:
    """(dataset, protocol) names for the experiment and the registered model; a search on
    shuffled labels has its own dataset name (`toy-shuffled`), hence its own experiment."""
    suffix = SHUFFLED_SUFFIX if spec.shuffle_labels else ""
    if spec.dataset == "toy":
        return "toy" + suffix, f"{spec.toy_classes}class"
    if spec.dataset == "synthetic":
        return f"synthetic-{spec.synth_dataset}{suffix}", get_protocol(
            spec.synth_dataset, spec.protocol
        ).name
    return spec.dataset + suffix, get_protocol(spec.dataset, spec.protocol).name


def recipe_train(name: str, spec: DataSpec) -> dict[str, Any]:
    """The TrainConfig values of recipe `name` (tsfmicro.recipes) for the data `spec` names,
    resolved without reading the data: the synthetic benchmark takes the recipe of the dataset
    it imitates."""
    from tsfmicro.pairs import source_key
    from tsfmicro.recipes import recipe_values

    if name == "default":
        return recipe_values(name)
    if spec.dataset == "synthetic":
        return recipe_values(name, *source_key(spec.synth_dataset, spec.protocol))
    return recipe_values(name, *source_key(spec.dataset, spec.protocol, spec.toy_classes))


def default_data_dir() -> Path:
    from tsfmicro.faces import default_cache_dir

    return Path(default_cache_dir()) / "synth"


def synthetic_root(spec: DataSpec) -> Path:
    """Folder of the synthetic copy these settings describe (named by a hash of them)."""
    settings = {
        "dataset": spec.synth_dataset,
        "subjects": spec.synth_subjects,
        "clips": spec.synth_clips,
        "difficulty": spec.synth_difficulty,
        "seed": spec.synth_seed,
        "protocol": spec.protocol,
    }
    if spec.synth_pair_frames:  # only then, so copies written before keep their folder
        settings["pair_frames"] = True
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    base = Path(spec.data_dir) if spec.data_dir else default_data_dir()
    return base / f"{spec.synth_dataset}-{digest}"


def ensure_synthetic(spec: DataSpec, progress: bool = True) -> Path:
    """Write the synthetic copy if it is not there yet; return its folder.

    It is written to a temporary sibling and renamed into place, so an interrupted
    generation never leaves a partial copy under the final name.
    """
    import shutil

    from tsfmicro.synth import SynthConfig, write_dataset

    root = synthetic_root(spec)
    if root.is_dir():
        return root
    config = SynthConfig(
        dataset=spec.synth_dataset,
        subjects=spec.synth_subjects,
        clips_per_subject=spec.synth_clips,
        difficulty=spec.synth_difficulty,
        seed=spec.synth_seed,
        pair_frames=spec.synth_pair_frames,
    )
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.with_name(f"{root.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    write_dataset(config, staging, progress=progress)
    try:
        os.rename(staging, root)
    except OSError:  # another process finished the same copy first
        if not root.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)
    return root


def load_search_pairs(
    spec: DataSpec, image_size: int, seed: int = 0, progress: bool = True
) -> PairSet:
    """The search's samples; with `spec.shuffle_labels`, their labels permuted with `seed`;
    with `spec.subjects`, only those subjects' samples (taken after the shuffle, so they keep
    the labels they have in the whole set). An unknown subject is a ConfigError naming it."""
    from tsfmicro.errors import ConfigError, InputError

    pairs = _load_pairs(spec, image_size, seed, progress)
    pairs = pairs.shuffled_labels(seed) if spec.shuffle_labels else pairs
    if spec.subjects is None:
        return pairs
    try:
        return pairs.only_subjects(spec.subjects)
    except InputError as exc:
        raise ConfigError(f"DataSpec.subjects: {exc}") from None


def _load_pairs(spec: DataSpec, image_size: int, seed: int, progress: bool) -> PairSet:
    from tsfmicro.pairs import load_pairs, load_source_pairs

    if spec.dataset == "synthetic":
        root = ensure_synthetic(spec, progress=progress)
        pairs = load_pairs(
            spec.synth_dataset,
            root,
            spec.protocol,
            image_size=image_size,
            cache_dir=spec.cache_dir,
            progress=progress,
        )
        name = "-".join(dataset_label(spec))
        return dataclasses.replace(pairs, name=name)
    return load_source_pairs(spec, image_size=image_size, seed=seed, progress=progress)
