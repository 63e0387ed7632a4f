"""Recognition metrics for LOSO evaluation: ACC, UF1, UAR and friends.

Definitions (on a confusion matrix C[true, predicted]):

- ACC = trace(C) / sum(C).
- UF1 = mean over classes of 2 TP / (2 TP + FP + FN).
- UAR = mean over classes of TP / (TP + FN)  (recall, *not* precision).

The means run over the classes that have at least one true sample in the set
being scored. A class with no true sample has no recall; leaving it out of UF1
too keeps the two consistent. Wrong predictions *into* such a class still count
against the true class. On pooled LOSO predictions every class is present, so
this only matters for per-fold figures and bootstrap resamples.

The primary figures are computed on predictions pooled over all folds. Per-fold
means are reported as well, labelled as such, because a few papers use them.
Confidence intervals resample *subjects* (the unit LOSO generalises over), not
samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tsfmicro.errors import ConfigError, InputError

METRICS = ("acc", "uf1", "uar")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """C[t, p] = number of samples of true class t predicted as p: (K, K) int64."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise InputError(
            f"y_true {y_true.shape} and y_pred {y_pred.shape} must be 1-D and of equal length"
        )
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise InputError(f"{name} has labels outside 0..{num_classes - 1}")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """ACC, UF1 and UAR of one confusion matrix (K, K) or a stack (..., K, K).

    Returns arrays of the leading shape (floats for a single matrix); NaN where
    the matrix is empty.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)  # true samples per class
    predicted = cm.sum(axis=-2)  # predictions per class
    total = support.sum(axis=-1)
    present = support > 0
    n_present = present.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(present, 2 * tp / np.where(present, support + predicted, 1), 0.0)
        recall = np.where(present, tp / np.where(present, support, 1), 0.0)
        out = {
            "acc": tp.sum(axis=-1) / total,
            "uf1": f1.sum(axis=-1) / n_present,
            "uar": recall.sum(axis=-1) / n_present,
        }
    return {k: (float(v) if np.ndim(v) == 0 else v) for k, v in out.items()}


def per_class(cm: np.ndarray, class_names: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """Support, predictions, recall, precision and F1 per class (NaN where undefined)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), np.nan)
    return pd.DataFrame(
        {
            "class": list(class_names),
            "support": support.astype(int),
            "predicted": predicted.astype(int),
            "recall": recall,
            "precision": precision,
            "f1": f1,
        }
    )


def subject_bootstrap(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    subjects: np.ndarray,
    num_classes: int,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile confidence intervals of ACC, UF1 and UAR by resampling subjects.

    Each replicate draws as many subjects as there are, with replacement, and
    pools all samples of the drawn subjects (a subject drawn twice counts twice).
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise ConfigError(f"bootstrap replicates must be a whole number >= 1, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"interval level must be between 0 and 1, got {level!r}")
    subjects = np.asarray(subjects)
    names, inverse = np.unique(subjects, return_inverse=True)
    k = num_classes
    # Per-subject confusion matrices, flattened: (S, K*K).
    flat = np.zeros((len(names), k * k), dtype=np.float64)
    np.add.at(flat, (inverse, np.asarray(y_true) * k + np.asarray(y_pred)), 1.0)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(names), np.full(len(names), 1.0 / len(names)), size=n_boot)
    boot = scores((counts @ flat).reshape(n_boot, k, k))
    alpha = (1.0 - level) / 2.0
    return {
        m: (float(np.nanquantile(boot[m], alpha)), float(np.nanquantile(boot[m], 1.0 - alpha)))
        for m in METRICS
    }


@dataclass
class MetricsReport:
    """Everything computed from one set of pooled LOSO predictions."""

    acc: float
    uf1: float
    uar: float
    ci: dict[str, tuple[float, float]]  # subject-bootstrap interval per metric
    ci_level: float
    fold_mean: dict[str, float]  # mean of per-fold scores (labelled; not the primary figure)
    fold_std: dict[str, float]
    per_fold: pd.DataFrame  # one row per fold: subject, n, acc, uf1, uar
    per_class: pd.DataFrame
    confusion: np.ndarray
    class_names: tuple[str, ...]
    n_samples: int
    n_subjects: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "pooled": {"acc": self.acc, "uf1": self.uf1, "uar": self.uar},
            "ci": {m: list(v) for m, v in self.ci.items()},
            "ci_level": self.ci_level,
            "ci_method": "percentile bootstrap over subjects",
            "fold_mean": self.fold_mean,
            "fold_std": self.fold_std,
            "per_fold": self.per_fold.to_dict(orient="records"),
            "per_class": self.per_class.to_dict(orient="records"),
            "confusion": self.confusion.tolist(),
            "class_names": list(self.class_names),
            "n_samples": self.n_samples,
            "n_subjects": self.n_subjects,
            **self.extra,
        }


def evaluate(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    subjects: np.ndarray,
    class_names: tuple[str, ...] | list[str],
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> MetricsReport:
    """Pooled metrics, subject-bootstrap intervals, per-fold means, per-class table and
    confusion matrix of LOSO predictions (one fold per subject)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    subjects = np.asarray(subjects).astype(str)
    if not (len(y_true) == len(y_pred) == len(subjects)):
        raise InputError(
            f"y_true ({len(y_true)}), y_pred ({len(y_pred)}) and subjects ({len(subjects)}) "
            "must have the same length"
        )
    if len(y_true) == 0:
        raise InputError("no predictions to evaluate")
    k = len(class_names)
    cm = confusion_matrix(y_true, y_pred, k)
    pooled = scores(cm)
    rows = []
    for subject in np.unique(subjects):
        sel = subjects == subject
        fold = scores(confusion_matrix(y_true[sel], y_pred[sel], k))
        rows.append({"subject": subject, "n": int(sel.sum()), **fold})
    per_fold = pd.DataFrame(rows, columns=["subject", "n", *METRICS])
    return MetricsReport(
        acc=pooled["acc"],
        uf1=pooled["uf1"],
        uar=pooled["uar"],
        ci=subject_bootstrap(y_true, y_pred, subjects, k, n_boot=n_boot, level=level, seed=seed),
        ci_level=level,
        fold_mean={m: float(per_fold[m].mean()) for m in METRICS},
        fold_std={m: float(per_fold[m].std(ddof=0)) for m in METRICS},
        per_fold=per_fold,
        per_class=per_class(cm, class_names),
        confusion=cm,
        class_names=tuple(class_names),
        n_samples=len(y_true),
        n_subjects=len(per_fold),
    )


def key_parts(keys: Any) -> np.ndarray:
    """(N,) str: each sample key's dataset part, its first component (casme2/sub01/EP02_01f:
    casme2)."""
    return np.array([str(k).split("/", 1)[0] for k in np.asarray(keys).tolist()], dtype=object)


def part_scores(
    pred: pd.DataFrame, num_classes: int, by: str | None = None
) -> dict[str, dict[str, float | int]]:
    """Scores per part of a run over several datasets, as MEGC reports them beside the pooled
    ones: samples, subjects, ACC, UF1 and UAR on each part's own samples. `pred` is
    LosoResult.predictions (`key`, `subject`, `label`, `pred`, and `acc_pred` where the mode
    reads its ACC from other epochs: the ACC then comes from it, as the pooled ACC does).
    The parts are the values of column `by` (a cross-dataset run's `fold`: its held-out
    datasets), or by default each key's dataset (`key_parts`)."""
    part = pred[by].astype(str) if by else pd.Series(key_parts(pred["key"]), index=pred.index)
    acc_column = "acc_pred" if "acc_pred" in pred else "pred"
    out: dict[str, dict[str, float | int]] = {}
    for name, rows in pred.groupby(part, sort=True):
        y = rows["label"].to_numpy()
        scored = scores(confusion_matrix(y, rows["pred"].to_numpy(), num_classes))
        acc = scores(confusion_matrix(y, rows[acc_column].to_numpy(), num_classes))["acc"]
        out[str(name)] = {
            "n": int(len(rows)),
            "n_subjects": int(rows["subject"].nunique()),
            "acc": float(acc),
            "uf1": float(scored["uf1"]),
            "uar": float(scored["uar"]),
        }
    return out
