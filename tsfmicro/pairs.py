"""From a dataset on disk to training pairs: sample table -> cached face crops -> PairSet.

    pairs = load_pairs("casme2", "/data/CASME2", protocol="5class", image_size=64)

The first call detects faces and fills the crop cache (see docs/faces.md); later
calls, with the same files and parameters, only read the cache.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from tsfmicro.datasets import SampleTable, load_dataset
from tsfmicro.datasets.train_pairs import training_pairs
from tsfmicro.errors import DataError
from tsfmicro.faces import FaceCropConfig, preprocess_faces
from tsfmicro.faces.cache import default_cache_dir
from tsfmicro.training.data import PairSet


def pairs_from_table(
    table: SampleTable,
    image_size: int,
    *,
    face_config: FaceCropConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    train_pairs: bool = True,
) -> PairSet:
    """Crop the faces of every sample of a loaded table (onset and apex) into a PairSet.

    With `train_pairs` (the default) and the clips' frames on disk, each sample's training-time
    pair (the published recipe's choice near the annotated frames, see
    tsfmicro.datasets.train_pairs) is cropped too, with the same face square, and kept as
    the set's `train_onset`/`train_apex` when it differs from the annotated pair anywhere.
    """
    samples = table.samples
    if len(samples) == 0:
        raise DataError(f"{table.protocol.id}: no samples to train on")
    root = cache_dir if cache_dir is not None else default_cache_dir()
    chosen = None
    if train_pairs and samples["clip_dir"].astype(bool).all():
        chosen = training_pairs(samples, cache_dir=root)
        same = (chosen["train_onset"] == samples["onset"]) & (
            chosen["train_apex"] == samples["apex"]
        )
        if same.all():
            chosen = None
    config = dataclasses.replace(
        face_config or FaceCropConfig(), size=image_size, frames="onset_apex"
    )
    if chosen is not None:
        samples = samples.assign(
            pair_frames=[
                [str(o), str(a), str(to), str(ta)]
                for o, a, to, ta in zip(
                    samples["onset_path"],
                    samples["apex_path"],
                    chosen["train_onset_path"],
                    chosen["train_apex_path"],
                    strict=True,
                )
            ]
        )
        config = dataclasses.replace(
            config, frames="clip", clip_column="pair_frames", clip_length=None
        )
    crops = preprocess_faces(samples, config, root, progress=progress)
    stacked = np.array(crops.stacked())  # (N, 2 or 4, S, S, 3) uint8: onset, apex (and the
    # training pair); a copy of the read-only memory map
    frames = torch.from_numpy(stacked).permute(0, 1, 4, 2, 3)  # (N, F, 3, S, S)
    # Each field a tensor of its own: a view would pickle (to Ray workers) the whole stack.
    per_frame = [frames[:, f].contiguous() for f in range(frames.shape[1])]
    return PairSet(
        onset=per_frame[0],
        apex=per_frame[1],
        labels=torch.tensor(samples["label"].to_numpy(dtype=np.int64)),
        subjects=samples["subject"].astype(str).to_numpy(),
        keys=samples["key"].astype(str).to_numpy(),
        class_names=table.class_names,
        name=table.protocol.id,
        # the fold key of a cross-dataset protocol (tsfmicro.datasets.cross): folds by dataset
        folds=samples["fold"].astype(str).to_numpy() if "fold" in samples.columns else None,
        train_onset=per_frame[2] if chosen is not None else None,
        train_apex=per_frame[3] if chosen is not None else None,
    )


def load_pairs(
    dataset: str,
    root: str | os.PathLike[str] | Mapping[str, Any],
    protocol: str | None = None,
    *,
    image_size: int,
    annotation: Any = None,
    layout: Any = None,
    policies: Any = None,
    face_config: FaceCropConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    train_pairs: bool = True,
) -> PairSet:
    """Load a dataset copy (all frames must be present), crop its faces through the cache,
    and return the training pairs."""
    table = load_dataset(
        dataset,
        root,
        protocol=protocol,
        annotation=annotation,
        layout=layout,
        policies=policies,
        require_frames=True,
    )
    return pairs_from_table(
        table,
        image_size,
        face_config=face_config,
        cache_dir=cache_dir,
        progress=progress,
        train_pairs=train_pairs,
    )


# The options of a named data source, read by attribute from whatever holds them: a search's
# DataSpec, or the train command's parsed flags (load_source_pairs).
SOURCE_FIELDS = (
    "root",
    "protocol",
    "annotation",
    "layout",
    "cache_dir",
    "toy_subjects",
    "toy_per_subject",
    "toy_classes",
)


def load_source_pairs(
    source: Any, *, image_size: int, seed: int = 0, progress: bool = True
) -> PairSet:
    """load_named_pairs with the dataset name (`source.dataset`) and its options (the
    SOURCE_FIELDS attributes of `source`) read from one object."""
    options = {name: getattr(source, name) for name in SOURCE_FIELDS}
    return load_named_pairs(
        source.dataset, image_size=image_size, seed=seed, progress=progress, **options
    )


def load_named_pairs(
    dataset: str,
    *,
    image_size: int,
    root: str | os.PathLike[str] | None = None,
    protocol: str | None = None,
    annotation: Any = None,
    layout: Any = None,
    cache_dir: str | os.PathLike[str] | None = None,
    toy_subjects: int = 6,
    toy_per_subject: int = 12,
    toy_classes: int = 3,
    seed: int = 0,
    progress: bool = True,
) -> PairSet:
    """Training pairs by name: "toy" (the in-memory motion task of tsfmicro.toy) or a dataset
    adapter (casme2, samm, casme3, mmew, composite) reading the copy in `root`."""
    from tsfmicro.errors import ConfigError

    if dataset == "toy":
        from tsfmicro.toy import make_toy_pairs

        return make_toy_pairs(
            subjects=toy_subjects,
            per_subject=toy_per_subject,
            classes=toy_classes,
            size=image_size,
            seed=seed,
        )
    if root is None:
        raise ConfigError(f"dataset {dataset!r} needs the folder of its copy (root)")
    return load_pairs(
        dataset,
        root,
        protocol,
        image_size=image_size,
        annotation=annotation,
        layout=layout,
        cache_dir=cache_dir,
        progress=progress,
    )


def source_key(
    dataset: str, protocol: str | None = None, toy_classes: int = 3
) -> tuple[str, str, int]:
    """(dataset, protocol name, classes) of a named data source, resolved without reading any
    data (what tsfmicro.recipes keys its values by): the toy task is `toy`/`<K>class`; a
    dataset adapter's protocol is its default when None."""
    if dataset == "toy":
        return "toy", f"{toy_classes}class", int(toy_classes)
    from tsfmicro.datasets import get_protocol

    found = get_protocol(dataset, protocol)
    return dataset, found.name, len(found.class_names)
