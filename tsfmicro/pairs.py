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
from tsfmicro.errors import DataError
from tsfmicro.faces import FaceCropConfig, preprocess_faces
from tsfmicro.training.data import PairSet


def pairs_from_table(
    table: SampleTable,
    image_size: int,
    *,
    face_config: FaceCropConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> PairSet:
    """Crop the faces of every sample of a loaded table (onset and apex) into a PairSet."""
    samples = table.samples
    if len(samples) == 0:
        raise DataError(f"{table.protocol.id}: no samples to train on")
    config = dataclasses.replace(
        face_config or FaceCropConfig(), size=image_size, frames="onset_apex"
    )
    crops = preprocess_faces(samples, config, cache_dir, progress=progress)
    stacked = np.array(crops.stacked())  # (N, 2, S, S, 3) uint8, onset then apex; a copy of
    # the read-only memory map
    frames = torch.from_numpy(stacked).permute(0, 1, 4, 2, 3).contiguous()  # (N, 2, 3, S, S)
    return PairSet(
        onset=frames[:, 0],
        apex=frames[:, 1],
        labels=torch.tensor(samples["label"].to_numpy(dtype=np.int64)),
        subjects=samples["subject"].astype(str).to_numpy(),
        keys=samples["key"].astype(str).to_numpy(),
        class_names=table.class_names,
        name=table.protocol.id,
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
        table, image_size, face_config=face_config, cache_dir=cache_dir, progress=progress
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
