"""Evaluation of LOSO runs: the evaluation modes, epoch selection and pooled scores, in one
place.

Every fold records its held-out subject's predictions after every epoch
(`tsfmicro.training.fold`), so every mode is read from one run without retraining:

- ``final`` (default, leak-free): the model at the end of the fixed epoch budget.
- ``val`` (leak-free, when ``TrainConfig.val_subjects > 0``): the epoch with the
  best score on an inner validation split drawn from the *training* subjects.
- ``oracle`` (optimistic): for each held-out subject the epoch with the best
  accuracy *on that subject*. This selects on the test data and overstates what a
  model would do on a new subject; it is always labelled.
- ``published-oracle`` (optimistic): the selection of the public TSFmicro scripts
  as they compute it (`published_epochs`): per held-out subject, an ACC epoch and a
  UF1 epoch chosen separately on that subject, no epoch after the first one at
  which every test sample is right (the scripts stop a subject's training there).
  Its ACC is pooled from the ACC epochs' predictions, its UF1 and UAR from the UF1
  epochs' (where the scripts keep their per-class counts). Always labelled.

The modes' names and notes (`EVAL_MODES`, `OPTIMISTIC_MODES`, `MODE_NOTES`) live in
`tsfmicro.vocab`, which every other part of the project (the CLI, the search, its MLflow
records, the dashboard) reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsfmicro import metrics as M
from tsfmicro.config import ModelConfig, TrainConfig
from tsfmicro.errors import ConfigError, InputError
from tsfmicro.fileio import written_whole
from tsfmicro.training.data import PairSet
from tsfmicro.training.fold import FoldResult
from tsfmicro.vocab import (
    CONFIG_FILE,
    CURVES_FILE,
    EPOCH_PROBS_FILE,
    EVAL_MODES,
    METRICS_FILE,
    MODE_NOTES,
    OPTIMISTIC_MODES,
    PREDICTIONS_FILE,
    PUBLISHED_ORACLE,
    SEPARATE_ACC_MODES,
)


def available_modes(folds: Sequence[FoldResult]) -> tuple[str, ...]:
    """The evaluation modes these folds support: ``val`` only when every fold has an inner
    validation split."""
    has_val = all(len(f.val_index) for f in folds)
    return tuple(m for m in EVAL_MODES if m != "val" or has_val)


def published_stop(fold: FoldResult, labels: np.ndarray) -> int:
    """The last 0-based epoch the published scripts train for this fold: the first epoch at
    which every test sample is right (they stop the subject's training there, `if acc == 1.:
    break`), else the last epoch."""
    y_test = labels[fold.test_index]
    perfect = np.flatnonzero((fold.test_probs.argmax(2) == y_test[None]).all(axis=1))
    return int(perfect[0]) if len(perfect) else fold.epochs - 1


def published_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """The scripts' per-subject F1 of each epoch: (epochs,) mean over the classes that occur
    among the subject's labels *or* predictions of 2 TP / (predicted + true). `y_true`: (n,),
    `y_pred`: (epochs, n)."""
    y_pred = np.asarray(y_pred)
    cms = np.stack([M.confusion_matrix(y_true, p, num_classes) for p in y_pred]).astype(float)
    tp = np.diagonal(cms, axis1=1, axis2=2)
    both = cms.sum(axis=2) + cms.sum(axis=1)  # true + predicted, per class
    present = both > 0
    f1 = np.where(present, 2 * tp / np.where(present, both, 1), 0.0)
    return f1.sum(axis=1) / present.sum(axis=1)


def published_epochs(fold: FoldResult, labels: np.ndarray, num_classes: int) -> tuple[int, int]:
    """(ACC epoch, UF1 epoch), 0-based, of `fold` as the public TSFmicro scripts choose them
    (classes/*/train_c*.py, fusion/*/train_*.py): among the epochs up to `published_stop`,
    the ACC epoch is the *first* with the most test samples right (`bingo_cnt > max_corr`)
    and the UF1 epoch the *last* with the highest `published_f1` (`AVG_F1 >= max_f1`).
    Their ACC counts the ACC epochs' right answers; their UF1 (and the per-class counts of
    their UAR and confusion matrix) pool the UF1 epochs' predictions."""
    stop = published_stop(fold, labels)
    y_test = labels[fold.test_index]
    preds = fold.test_probs[: stop + 1].argmax(2)
    correct = (preds == y_test[None]).sum(axis=1)
    acc_epoch = int(np.argmax(correct))  # the first maximum
    uf1_epoch = _last_argmax(published_f1(y_test, preds, num_classes))
    return acc_epoch, uf1_epoch


def select_epoch(
    fold: FoldResult,
    mode: str,
    labels: np.ndarray,
    num_classes: int,
    val_metric: str = "uf1",
    score: str = "uf1",
) -> int:
    """The 0-based epoch whose test predictions `fold` contributes in evaluation `mode`.

    final: the last epoch. val: the best `val_metric` on the fold's inner validation split.
    oracle: the best accuracy on the held-out subject itself (optimistic). Ties go to the
    later epoch. published-oracle (optimistic): `published_epochs`, the ACC epoch for
    `score` "acc" and the UF1 epoch for "uf1" and "uar"; the other modes use one epoch for
    every score. `labels` are the labels of the whole PairSet.
    """
    if mode == PUBLISHED_ORACLE:
        acc_epoch, uf1_epoch = published_epochs(fold, labels, num_classes)
        return acc_epoch if score == "acc" else uf1_epoch
    if mode == "final":
        return fold.epochs - 1
    if mode == "val":
        if len(fold.val_index) == 0:
            raise ConfigError(f"fold {fold.subject!r} has no validation split for mode 'val'")
        y_val = labels[fold.val_index]
        cms = np.stack(
            [M.confusion_matrix(y_val, p.argmax(1), num_classes) for p in fold.val_probs]
        )
        return _last_argmax(M.scores(cms)[val_metric])
    if mode == "oracle":
        y_test = labels[fold.test_index]
        return _last_argmax((fold.test_probs.argmax(2) == y_test[None]).mean(axis=1))
    raise ConfigError(f"unknown evaluation mode {mode!r}; choose from {', '.join(EVAL_MODES)}")


def pooled_scores(
    folds: list[FoldResult],
    mode: str,
    labels: np.ndarray,
    num_classes: int,
    val_metric: str = "uf1",
) -> dict[str, float]:
    """ACC, UF1 and UAR pooled over the given folds in `mode`: the figures of a LOSO run
    that is still going (the full run's are in LosoResult.evaluate). In published-oracle
    the ACC pools the ACC epochs' predictions, UF1 and UAR the UF1 epochs'."""

    def confusion(score: str) -> np.ndarray:
        y_true, y_pred = [], []
        for fold in folds:
            epoch = select_epoch(fold, mode, labels, num_classes, val_metric, score)
            y_true.append(labels[fold.test_index])
            y_pred.append(fold.test_probs[epoch].argmax(1))
        return M.confusion_matrix(np.concatenate(y_true), np.concatenate(y_pred), num_classes)

    out = M.scores(confusion("uf1"))
    if mode in SEPARATE_ACC_MODES:
        out["acc"] = M.scores(confusion("acc"))["acc"]
    return out


@dataclass
class LosoResult:
    """All folds of a LOSO run, with the data's labels and the configs; evaluates any mode."""

    folds: list[FoldResult]
    keys: np.ndarray
    subjects: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    dataset: str
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    # Each sample's fold where folds are not subjects (PairSet.folds: the held-out dataset of
    # a cross-dataset protocol, "" for train-only samples); None: one fold per subject.
    fold_keys: np.ndarray | None = None

    @classmethod
    def from_folds(
        cls,
        data: PairSet,
        folds: list[FoldResult],
        model_cfg: ModelConfig,
        train_cfg: TrainConfig,
        seconds: float,
        info: dict[str, Any] | None = None,
        complete: bool = True,
    ) -> LosoResult:
        """Assemble folds trained anywhere (in this process or as Ray tasks) and check that
        together they predict every sample exactly once with no subject leaking (with
        `complete` False: every sample of their held-out subjects, for a part of a run)."""
        result = cls(
            folds=sorted(folds, key=lambda f: f.subject),
            keys=data.keys,
            subjects=data.subjects,
            labels=data.labels.numpy(),
            class_names=data.class_names,
            dataset=data.name,
            model_cfg=model_cfg,
            train_cfg=train_cfg,
            seconds=seconds,
            info=dict(info or {}),
            fold_keys=data.folds,
        )
        result.check(complete)
        return result

    @property
    def groups(self) -> np.ndarray:
        """(N,) str: the fold each sample is held out in (its subject, by default)."""
        return self.subjects if self.fold_keys is None else self.fold_keys

    @property
    def modes(self) -> tuple[str, ...]:
        """Evaluation modes this run supports."""
        return available_modes(self.folds)

    def check(self, complete: bool = True) -> None:
        """Every sample (of the held-out subjects, unless `complete`) predicted exactly once; no
        fold trains or validates on its test subject."""
        counts = np.zeros(len(self.labels), dtype=np.int64)
        groups = self.groups
        for fold in self.folds:
            np.add.at(counts, fold.test_index, 1)
            test_subjects = set(groups[fold.test_index].tolist())
            if test_subjects != {fold.subject}:
                raise InputError(f"fold {fold.subject!r} tests on subjects {sorted(test_subjects)}")
            if fold.subject in set(groups[fold.val_index].tolist()):
                raise InputError(f"fold {fold.subject!r} validates on its own test subject")
            if fold.subject in set(groups[fold.train_index].tolist()):
                raise InputError(f"fold {fold.subject!r} trains on its own test subject")
            if np.intersect1d(fold.train_index, fold.val_index).size:
                raise InputError(f"fold {fold.subject!r} trains on its validation samples")
            tested = set(self.subjects[fold.test_index].tolist())
            if tested & set(self.subjects[fold.train_index].tolist()):
                raise InputError(f"fold {fold.subject!r} trains on a subject it tests on")
        required = groups != ""  # train-only samples are never predicted
        if not complete:
            required = np.isin(groups, [f.subject for f in self.folds])
        if not np.all(counts[required] == 1):
            keys, counts = self.keys[required], counts[required]
            missing = keys[counts == 0][:5].tolist()
            doubled = keys[counts > 1][:5].tolist()
            raise InputError(
                f"LOSO folds must predict every sample exactly once: {int((counts == 0).sum())} "
                f"never predicted (e.g. {missing}), {int((counts > 1).sum())} more than once "
                f"(e.g. {doubled})"
            )

    def selected_epochs(self, mode: str, score: str = "uf1") -> dict[str, int]:
        """The 0-based epoch whose predictions each fold contributes in `mode` (for `score`:
        published-oracle reads ACC from other epochs than UF1 and UAR)."""
        if mode not in self.modes:
            raise ConfigError(
                f"evaluation mode {mode!r} is not available; choose from {self.modes}"
            )
        chosen = {}
        for fold in self.folds:
            chosen[fold.subject] = select_epoch(
                fold, mode, self.labels, len(self.class_names), self.train_cfg.val_metric, score
            )
        return chosen

    def predictions(self, mode: str = "final") -> pd.DataFrame:
        """One row per sample: key, subject, label, prediction, epoch used (1-based), the
        prediction and epoch the mode's ACC counts (`acc_pred`, `acc_epoch`: the same as
        `pred` and `epoch` except in published-oracle, whose rows hold the UF1 epoch), class
        probabilities (of `epoch`)."""
        epochs = self.selected_epochs(mode)
        acc_epochs = self.selected_epochs(mode, "acc") if mode in SEPARATE_ACC_MODES else epochs
        frames = []
        for fold in self.folds:
            e, a = epochs[fold.subject], acc_epochs[fold.subject]
            probs = fold.test_probs[e]
            frame = pd.DataFrame(
                {
                    "key": self.keys[fold.test_index],
                    "subject": self.subjects[fold.test_index],
                    "label": self.labels[fold.test_index],
                    "pred": probs.argmax(1),
                    **({} if self.fold_keys is None else {"fold": fold.subject}),
                    "epoch": e + 1,
                    "acc_pred": fold.test_probs[a].argmax(1),
                    "acc_epoch": a + 1,
                }
            )
            for c, name in enumerate(self.class_names):
                frame[f"p_{name}"] = probs[:, c]
            frames.append(frame)
        out = pd.concat(frames, ignore_index=True)
        out.insert(0, "mode", mode)
        out.insert(4, "label_name", [self.class_names[i] for i in out["label"]])
        out.insert(6, "pred_name", [self.class_names[i] for i in out["pred"]])
        return out

    def evaluate(self, mode: str = "final", n_boot: int = 1000, seed: int = 0) -> M.MetricsReport:
        pred = self.predictions(mode)
        report = M.evaluate(
            pred["label"].to_numpy(),
            pred["pred"].to_numpy(),
            pred["subject"].to_numpy(),
            self.class_names,
            n_boot=n_boot,
            seed=seed,
        )
        if mode in SEPARATE_ACC_MODES:
            _take_acc(
                report,
                M.evaluate(
                    pred["label"].to_numpy(),
                    pred["acc_pred"].to_numpy(),
                    pred["subject"].to_numpy(),
                    self.class_names,
                    n_boot=n_boot,
                    seed=seed,
                ),
            )
            report.extra.update(
                acc_from="each subject's ACC epoch",
                uf1_uar_from="each subject's UF1 epoch (also the per-class table and confusion)",
            )
        report.extra.update(mode=mode, optimistic=mode in OPTIMISTIC_MODES, note=MODE_NOTES[mode])
        report.extra.update(self.part_reports(pred))
        return report

    def part_reports(self, pred: pd.DataFrame) -> dict[str, dict[str, dict[str, Any]]]:
        """Each dataset's own scores (M.part_scores) in a run over several: {"held_out": ...}
        where the folds are datasets (a cross-dataset protocol: the held-out ones), {"parts":
        ...} for a pooled run whose samples come from several datasets (the composite: MEGC
        reports the pooled and the per-part scores), {} otherwise."""
        k = len(self.class_names)
        if self.fold_keys is not None:
            return {"held_out": M.part_scores(pred, k, by="fold")}
        if len(set(M.key_parts(self.keys).tolist())) > 1:
            return {"parts": M.part_scores(pred, k)}
        return {}

    def evaluate_all(self, n_boot: int = 1000, seed: int = 0) -> dict[str, M.MetricsReport]:
        return {mode: self.evaluate(mode, n_boot=n_boot, seed=seed) for mode in self.modes}

    def curves(self) -> pd.DataFrame:
        """Per fold and epoch: training loss and accuracy, test-subject accuracy."""
        rows = []
        for fold in self.folds:
            y_test = self.labels[fold.test_index]
            test_acc = (fold.test_probs.argmax(2) == y_test[None]).mean(axis=1)
            for e in range(fold.epochs):
                rows.append(
                    {
                        "subject": fold.subject,
                        "epoch": e + 1,
                        "train_loss": float(fold.train_loss[e]),
                        "train_acc": float(fold.train_acc[e]),
                        "test_acc": float(test_acc[e]),
                    }
                )
        return pd.DataFrame(rows)

    def save(self, out_dir: str | Path, n_boot: int = 1000) -> dict[str, M.MetricsReport]:
        """Write config.json, metrics.json, predictions.parquet, curves.csv and
        epoch_probs.npz (enough to re-evaluate any mode later) to `out_dir`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        reports = self.evaluate_all(n_boot=n_boot)
        config = {
            "model": self.model_cfg.to_dict(),
            "train": self.train_cfg.to_dict(),
            "dataset": self.dataset,
            "class_names": list(self.class_names),
            "n_samples": int(len(self.labels)),
            "subjects": sorted(set(self.subjects.tolist())),
            **({} if self.fold_keys is None else {"folds": [f.subject for f in self.folds]}),
            "seconds": self.seconds,
            **self.info,
        }
        _write_json(out / CONFIG_FILE, config)
        _write_json(out / METRICS_FILE, {m: r.to_dict() for m, r in reports.items()})
        predictions = pd.concat([self.predictions(m) for m in self.modes], ignore_index=True)
        with written_whole(out / PREDICTIONS_FILE) as temp:
            predictions.to_parquet(temp, index=False)
        with written_whole(out / CURVES_FILE) as temp:
            self.curves().to_csv(temp, index=False)
        with written_whole(out / EPOCH_PROBS_FILE) as temp, open(temp, "wb") as handle:
            np.savez_compressed(
                handle,
                **{f"test_probs/{f.subject}": f.test_probs for f in self.folds},
                **{f"test_index/{f.subject}": f.test_index for f in self.folds},
            )
        return reports


def _take_acc(report: M.MetricsReport, source: M.MetricsReport) -> None:
    """Put `source`'s ACC (pooled, interval, per-fold, fold mean and spread) into `report`.
    Both come from the same subjects and bootstrap seed, so the intervals share resamples."""
    report.acc = source.acc
    report.ci["acc"] = source.ci["acc"]
    report.fold_mean["acc"] = source.fold_mean["acc"]
    report.fold_std["acc"] = source.fold_std["acc"]
    per_fold = report.per_fold.set_index("subject")
    per_fold["acc"] = source.per_fold.set_index("subject")["acc"]
    report.per_fold = per_fold.reset_index()


def _last_argmax(values: np.ndarray) -> int:
    """Index of the maximum; ties go to the latest epoch (NaN counts as worst)."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=-np.inf)
    return int(len(v) - 1 - np.argmax(v[::-1]))


def _write_json(path: Path, payload: Any) -> None:
    with written_whole(path) as temp:
        temp.write_text(json.dumps(payload, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
