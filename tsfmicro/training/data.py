"""Face-cropped onset/apex pairs held in memory, and their normalisation.

A `PairSet` is what training consumes: uint8 frames already cropped and resized
(by the face-preprocessing cache or a synthetic generator), with labels and
subject ids. Nothing is decoded per epoch; batches are sliced from these
tensors, converted to float on the training device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from tsfmicro.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PairSet:
    """N samples of (onset, apex) frames as uint8 (N, 3, S, S) tensors, with labels and subjects."""

    onset: Tensor  # (N, 3, S, S) uint8, RGB
    apex: Tensor  # (N, 3, S, S) uint8, RGB
    labels: Tensor  # (N,) int64 in 0..K-1
    subjects: np.ndarray  # (N,) str: the LOSO grouping
    keys: np.ndarray  # (N,) str: unique sample ids
    class_names: tuple[str, ...]  # K names; label i is class_names[i]
    name: str = "pairs"  # dataset/protocol name, for reports
    # The published recipe's training-time pair (tsfmicro.datasets.train_pairs), cropped like
    # onset/apex; None where it is the annotated pair for every sample (or was not chosen).
    train_onset: Tensor | None = None
    train_apex: Tensor | None = None
    # The fold each sample is held out in, where folds are not subjects (the cross-dataset
    # protocols of tsfmicro.datasets.cross: the sample's dataset); "" marks a sample that is
    # only ever trained on. None: leave-one-subject-out, each subject a fold.
    folds: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.labels)
        if (self.train_onset is None) != (self.train_apex is None):
            raise InputError("PairSet.train_onset and train_apex must be given together")
        for field_name in ("onset", "apex", "train_onset", "train_apex"):
            t = getattr(self, field_name)
            if t is None and field_name.startswith("train_"):
                continue
            if (
                not isinstance(t, Tensor)
                or t.dtype != torch.uint8
                or t.ndim != 4
                or t.shape[1] != 3
            ):
                raise InputError(
                    f"PairSet.{field_name} must be a uint8 tensor (N, 3, S, S), got "
                    f"{getattr(t, 'dtype', type(t).__name__)} {tuple(getattr(t, 'shape', ()))}"
                )
            if t.shape[0] != n:
                raise InputError(f"PairSet.{field_name} has {t.shape[0]} samples, labels have {n}")
            if t.shape[2] != t.shape[3]:
                raise InputError(
                    f"PairSet.{field_name} frames must be square, got {tuple(t.shape)}"
                )
        for field_name in ("apex", "train_onset", "train_apex"):
            t = getattr(self, field_name)
            if t is not None and t.shape != self.onset.shape:
                raise InputError(
                    f"PairSet.{field_name} {tuple(t.shape)} and onset {tuple(self.onset.shape)} "
                    "differ in shape"
                )
        if len(self.subjects) != n or len(self.keys) != n:
            raise InputError(
                f"PairSet has {n} labels but {len(self.subjects)} subjects "
                f"and {len(self.keys)} keys"
            )
        if self.folds is not None and len(self.folds) != n:
            raise InputError(f"PairSet has {n} labels but {len(self.folds)} fold keys")
        k = len(self.class_names)
        if k < 2:
            raise InputError(f"PairSet needs at least 2 classes, got {self.class_names!r}")
        if n and (int(self.labels.min()) < 0 or int(self.labels.max()) >= k):
            bad = int(self.labels.max()) if int(self.labels.max()) >= k else int(self.labels.min())
            raise InputError(
                f"PairSet labels must be in 0..{k - 1} for classes {list(self.class_names)}, "
                f"found {bad}"
            )
        if len(set(self.keys.tolist())) != n:
            raise InputError("PairSet keys must be unique")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        return int(self.onset.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def training_frames(self, train_pairs: bool = True) -> tuple[Tensor, Tensor]:
        """The (onset, apex) frames to train on: the training-time pair when the set has one
        and `train_pairs` is set, else the annotated pair."""
        if train_pairs and self.train_onset is not None and self.train_apex is not None:
            return self.train_onset, self.train_apex
        return self.onset, self.apex

    def moved_training_pairs(self) -> int:
        """How many samples have a training pair other than their annotated pair."""
        if self.train_onset is None or self.train_apex is None:
            return 0
        moved = (self.train_onset != self.onset).flatten(1).any(1)
        return int((moved | (self.train_apex != self.apex).flatten(1).any(1)).sum())

    def subject_ids(self) -> list[str]:
        """Distinct subjects, sorted (one LOSO fold each, unless the set has `folds`)."""
        return sorted(set(self.subjects.tolist()))

    @property
    def fold_keys(self) -> np.ndarray:
        """(N,) str: the fold each sample is held out in ("" never); the subjects by default."""
        return self.subjects if self.folds is None else self.folds

    def fold_ids(self) -> list[str]:
        """The folds, sorted: one per subject (LOSO), or per held-out group of `folds`."""
        return sorted(set(self.fold_keys.tolist()) - {""})

    def take(self, index: np.ndarray) -> PairSet:
        """The samples at `index` (in that order), every per-sample field alike."""
        index = np.asarray(index, dtype=np.int64)
        rows = torch.as_tensor(index)

        def pick(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[rows]

        return dataclasses.replace(
            self,
            onset=self.onset[rows],
            apex=self.apex[rows],
            labels=self.labels[rows],
            subjects=self.subjects[index],
            keys=self.keys[index],
            folds=None if self.folds is None else self.folds[index],
            train_onset=pick(self.train_onset),
            train_apex=pick(self.train_apex),
        )

    def only_subjects(self, subjects: Sequence[str]) -> PairSet:
        """The samples of these subjects, in their original order; unknown names are an
        InputError that lists them."""
        wanted = [str(s) for s in subjects]
        unknown = sorted(set(wanted) - set(self.subject_ids()))
        if unknown:
            raise InputError(
                f"{self.name!r} has no subject(s) {', '.join(map(repr, unknown))} "
                f"(it has {', '.join(self.subject_ids())})"
            )
        return self.take(np.flatnonzero(np.isin(self.subjects.astype(str), wanted)))

    def shuffled_labels(self, seed: int) -> PairSet:
        """The same set with labels permuted at random (a chance-level control)."""
        rng = np.random.default_rng(seed)
        perm = torch.as_tensor(rng.permutation(len(self)))
        return dataclasses.replace(
            self, labels=self.labels[perm], name=f"{self.name} (shuffled labels)"
        )


def to_unit_float(frames: Tensor) -> Tensor:
    """uint8 (B, 3, S, S) -> float32 in [0, 1]."""
    return frames.to(torch.float32).div_(255.0)


def normalize(frames: Tensor) -> Tensor:
    """Float frames in [0, 1] -> ImageNet mean/std normalised (B, 3, S, S)."""
    mean = torch.tensor(IMAGENET_MEAN, device=frames.device, dtype=frames.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=frames.device, dtype=frames.dtype).view(1, 3, 1, 1)
    return (frames - mean) / std
