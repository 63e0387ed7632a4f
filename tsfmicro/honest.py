"""Honest leaderboards: how good is the configuration a search picks, and which trials tie?

A hyperparameter search evaluates N configurations ("trials") by leave-one-subject-out
(LOSO) cross-validation and crowns the one with the best pooled objective (UF1 by
default). The champion is chosen on the very folds it is then scored on, so three
figures describe a search and only two of them are honest:

- **search-best** (`search_best`): the champion's own pooled scores over all subjects,
  with subject-bootstrap intervals. *Optimistic*: the maximum of many noisy estimates is
  biased up, the more so the more trials were tried and the fewer subjects there are.
  Labelled `"optimistic": true` wherever it is written.
- **BBC-CV** (`bbc`): the bootstrap bias-corrected estimate of Tsamardinos, Greasidou and
  Borboudakis, "Bootstrapping the out-of-sample predictions for efficient and accurate
  cross-validation", Machine Learning 107, 2018. It estimates the performance of *the
  configuration the search would pick* (the whole selection procedure, not one fixed
  configuration) without training anything again: B times, the subjects are resampled with
  replacement, the best trial is selected on the in-bag subjects and scored on the
  out-of-bag ones. Here the unit resampled is the subject (what LOSO generalises over),
  not the sample. BBC-CV is known to be slightly conservative (pessimistic) on small data.
- **nested** (not here): a nested search, in which each outer fold runs its own search on
  the remaining subjects, is the reference estimate; it is computed elsewhere, at N times
  the cost, and these statistics do not replace it.

`ties` answers a different question: which trials are statistically indistinguishable
from the champion? It bootstraps the paired difference objective(trial) -
objective(champion) over subjects.

Input: per trial and per held-out subject, the subject's K x K confusion matrix in the
evaluation mode the search ranks by (`SubjectConfusions`, built from per-sample
predictions by `subject_confusions`). Pooled scores over any multiset of subjects are the
scores of the count-weighted sum of those subjects' matrices (`pooled_scores`), so every
bootstrap here is one matrix product plus `tsfmicro.metrics.scores` on a stack of
matrices.

Rules (the same in every function):

- **Trial order and ties**: trials keep the order they are given in (pass them in the
  order they were run, e.g. by trial number). When several trials share the best
  objective exactly, the one with the lowest index is selected (`numpy.argmax`). A NaN
  objective (a pooled matrix with no sample) never wins.
- **Eligibility**: only *complete* trials, those that have a confusion matrix for every
  subject, can be the champion or be selected inside BBC. Trials pruned early (ASHA) or
  failed have fewer folds and could not have been crowned by the search; they are listed
  in `excluded_trials`. Removing them changes nothing in `bbc` or `search_best`: the
  resamples are the same (they depend only on the seed and the number of subjects).
- **Ties for pruned trials**: the difference with the champion is computed on the
  subjects *both* trials have (the pruned trial's subjects, since the champion has all),
  and in each resample pooled over the drawn subjects among those, with their
  multiplicity. A resample that draws none of them gives no difference and is left out
  (`n_used` counts the resamples kept).
- **Resamples**: `numpy.random.default_rng(seed).multinomial(S, [1/S] * S, size=n_boot)`
  over the subjects in sorted order, as `tsfmicro.metrics.subject_bootstrap` does, so for
  the same seed every function here uses the same resamples, and the search-best
  intervals equal that function's intervals on the champion's predictions.
- **Intervals**: percentile intervals (`numpy.nanquantile`, linear interpolation) at
  `level` (0.95: the 2.5th and 97.5th percentiles).

Only numpy and pandas are needed (no torch, Ray, MLflow or Optuna).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tsfmicro.errors import ConfigError, InputError
from tsfmicro.metrics import METRICS, confusion_matrix, scores

__all__ = [
    "BBCResult",
    "SearchBestResult",
    "SubjectConfusions",
    "TieRow",
    "bbc",
    "leaderboard",
    "pooled_scores",
    "resample_counts",
    "search_best",
    "subject_confusions",
    "ties",
    "ties_frame",
]


# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class SubjectConfusions:
    """Per-trial, per-subject confusion matrices of a search.

    - `cms`: (C, S, K, K) int64; `cms[c, s]` counts the held-out predictions of trial `c`
      on subject `s` (rows: true class, columns: predicted class). Zero where the trial
      does not have the subject.
    - `has`: (C, S) bool; whether trial `c` has a fold for subject `s` (False for the
      subjects a pruned or failed trial never reached). Default: the subjects with at
      least one sample.
    - `trials`: C trial ids (str), in run order (earliest first; ties go to the earliest).
      Default "0", "1", ...
    - `subjects`: S subject ids (str). Default "0", "1", ...
    """

    cms: np.ndarray
    has: np.ndarray | None = None
    trials: tuple[str, ...] | None = None
    subjects: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        cms = np.asarray(self.cms)
        if cms.ndim != 4 or cms.shape[2] != cms.shape[3]:
            raise InputError(f"cms must have shape (trials, subjects, K, K), got {cms.shape}")
        if cms.size and not np.issubdtype(cms.dtype, np.integer):
            if not np.all(np.isfinite(cms)) or not np.all(cms == np.round(cms)):
                raise InputError("cms must hold whole-number counts")
        if cms.size and cms.min() < 0:
            raise InputError("cms must hold non-negative counts")
        cms = cms.astype(np.int64)
        n_trials, n_subjects = cms.shape[:2]
        if self.has is None:
            has = cms.sum(axis=(2, 3)) > 0
        else:
            has = np.asarray(self.has)
            if has.shape != (n_trials, n_subjects):
                raise InputError(
                    f"has has shape {has.shape}, expected (trials, subjects) = "
                    f"{(n_trials, n_subjects)} to match cms {cms.shape}"
                )
            has = has.astype(bool)
            if np.any(cms.sum(axis=(2, 3))[~has] > 0):
                raise InputError("cms has counts for (trial, subject) pairs that has marks absent")
        trials = _ids("trials", self.trials, n_trials)
        subjects = _ids("subjects", self.subjects, n_subjects)
        cms.setflags(write=False)
        has.setflags(write=False)
        object.__setattr__(self, "cms", cms)
        object.__setattr__(self, "has", has)
        object.__setattr__(self, "trials", trials)
        object.__setattr__(self, "subjects", subjects)

    @property
    def n_trials(self) -> int:
        return int(self.cms.shape[0])

    @property
    def n_subjects(self) -> int:
        return int(self.cms.shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.cms.shape[2])

    @property
    def complete(self) -> np.ndarray:
        """(C,) bool: trials that have every subject (the ones eligible as champion)."""
        assert self.has is not None
        return self.has.all(axis=1)

    def flat(self) -> np.ndarray:
        """(C, S, K*K) float64 view of the counts, the operand of the matrix products."""
        c, s, k, _ = self.cms.shape
        return self.cms.reshape(c, s, k * k).astype(np.float64)


def _ids(name: str, ids: Sequence[Hashable] | None, n: int) -> tuple[str, ...]:
    if ids is None:
        return tuple(str(i) for i in range(n))
    out = tuple(str(i) for i in ids)
    if len(out) != n:
        raise InputError(f"{name} has {len(out)} ids, expected {n} to match cms")
    if len(set(out)) != n:
        raise InputError(f"{name} ids must be unique (as strings)")
    return out


def subject_confusions(
    predictions: Mapping[Hashable, tuple[Any, Any, Any]],
    num_classes: int,
    *,
    subjects: Sequence[Hashable] | None = None,
    check_labels: bool = True,
) -> SubjectConfusions:
    """Per-subject confusion matrices of every trial, from per-sample predictions.

    `predictions`: trial id -> (subjects, y_true, y_pred), three equal-length 1-D arrays of
    the trial's held-out LOSO predictions in the evaluation mode the search ranks by. Trial
    order is the mapping's order (pass trials in run order: ties go to the earliest). A
    pruned or failed trial simply has fewer subjects (possibly none).

    `subjects`: every subject of the protocol (default: all subjects seen in any trial);
    stored in sorted order. `check_labels`: two trials that both have a subject were tested
    on the same samples, so their per-class true counts must agree; raise InputError if not.
    """
    if int(num_classes) < 2:
        raise InputError(f"num_classes must be at least 2, got {num_classes}")
    k = int(num_classes)
    if not predictions:
        raise InputError("predictions is empty: no trial to read")
    parsed: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    for trial, value in predictions.items():
        try:
            subj, y_true, y_pred = value
        except (TypeError, ValueError):
            raise InputError(
                f"predictions[{trial!r}] must be a (subjects, y_true, y_pred) triple"
            ) from None
        subj = np.asarray(subj).astype(str)
        y_true = np.asarray(y_true)
        y_pred = np.asarray(y_pred)
        if not (subj.ndim == y_true.ndim == y_pred.ndim == 1) or not (
            len(subj) == len(y_true) == len(y_pred)
        ):
            raise InputError(
                f"predictions[{trial!r}]: subjects {subj.shape}, y_true {y_true.shape} and "
                f"y_pred {y_pred.shape} must be 1-D and of equal length"
            )
        parsed.append((str(trial), subj, y_true, y_pred))
    if subjects is None:
        names = np.unique(np.concatenate([p[1] for p in parsed]))
    else:
        names = np.unique(np.asarray(subjects).astype(str))
        if len(names) != len(subjects):
            raise InputError("subjects must be unique")
    index = {name: i for i, name in enumerate(names.tolist())}
    cms = np.zeros((len(parsed), len(names), k, k), dtype=np.int64)
    has = np.zeros((len(parsed), len(names)), dtype=bool)
    for c, (trial, subj, y_true, y_pred) in enumerate(parsed):
        unknown = sorted(set(subj.tolist()) - index.keys())
        if unknown:
            raise InputError(f"predictions[{trial!r}] has subjects not in subjects: {unknown[:5]}")
        for name in np.unique(subj):
            sel = subj == name
            try:
                cm = confusion_matrix(y_true[sel], y_pred[sel], k)
            except InputError as err:
                raise InputError(f"predictions[{trial!r}], subject {name!r}: {err}") from None
            s = index[name]
            cms[c, s] = cm
            has[c, s] = True
    data = SubjectConfusions(
        cms=cms, has=has, trials=tuple(p[0] for p in parsed), subjects=tuple(names.tolist())
    )
    if check_labels:
        _check_labels(data)
    return data


def _check_labels(data: SubjectConfusions) -> None:
    assert data.has is not None and data.trials is not None and data.subjects is not None
    support = data.cms.sum(axis=3)  # (C, S, K) true samples per class
    for s in range(data.n_subjects):
        rows = np.flatnonzero(data.has[:, s])
        if rows.size < 2:
            continue
        bad = np.flatnonzero(np.any(support[rows, s] != support[rows[0], s], axis=1))
        if bad.size:
            raise InputError(
                f"subject {data.subjects[s]!r}: trials {data.trials[rows[0]]!r} and "
                f"{data.trials[rows[bad[0]]]!r} have different true labels "
                f"({support[rows[0], s].tolist()} vs {support[rows[bad[0]], s].tolist()} "
                "samples per class); they must be predictions on the same held-out samples"
            )


# --------------------------------------------------------------------------- core


def resample_counts(n_subjects: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_subjects) float64 multiplicities of a subject bootstrap: each row draws
    n_subjects subjects with replacement (the same draws as metrics.subject_bootstrap)."""
    _check_n_boot(n_boot)
    _check_seed(seed)
    if int(n_subjects) < 1:
        raise InputError(f"n_subjects must be at least 1, got {n_subjects}")
    rng = np.random.default_rng(seed)
    p = np.full(n_subjects, 1.0 / n_subjects)
    return rng.multinomial(n_subjects, p, size=n_boot).astype(np.float64)


def _pooled(weights: np.ndarray, flat: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Scores of sum_s weights[b, s] * flat[c, s] for every b, c: (B, C) arrays."""
    n_trials, n_subjects, kk = flat.shape
    stacked = flat.transpose(1, 0, 2).reshape(n_subjects, n_trials * kk)
    total = weights @ stacked  # (B, C*K*K): one matrix product for all resamples and trials
    return scores(total.reshape(weights.shape[0], n_trials, k, k))


def pooled_scores(
    data: SubjectConfusions, weights: np.ndarray, trials: Sequence[int] | None = None
) -> dict[str, np.ndarray]:
    """Pooled ACC, UF1 and UAR of every trial over weighted multisets of subjects.

    `weights`: (S,) or (B, S) non-negative subject multiplicities (a bootstrap resample's
    counts, a 0/1 out-of-bag mask, ...). Returns {metric: (B, C)} ((C,) for 1-D weights),
    for `trials` (indices) only if given. A subject the trial does not have contributes
    nothing (its matrix is zero). NaN where the weighted matrix is empty.
    """
    w = np.asarray(weights, dtype=np.float64)
    one = w.ndim == 1
    w2 = w[None] if one else w
    if w2.ndim != 2 or w2.shape[1] != data.n_subjects:
        raise InputError(
            f"weights has shape {w.shape}, expected (subjects,) or (resamples, subjects) with "
            f"{data.n_subjects} subjects"
        )
    if not np.all(np.isfinite(w2)) or np.any(w2 < 0):
        raise InputError("weights must be finite and non-negative")
    flat = data.flat()
    if trials is not None:
        flat = flat[np.asarray(trials, dtype=np.int64)]
    out = _pooled(w2, flat, data.num_classes)
    return {m: v[0] if one else v for m, v in out.items()}


def _objective_argmax(values: np.ndarray) -> np.ndarray:
    """Index of the best value along the last axis; NaN never wins; ties -> lowest index."""
    return np.where(np.isnan(values), -np.inf, values).argmax(axis=-1)


def _interval(values: np.ndarray, level: float) -> list[float]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return [float("nan"), float("nan")]
    alpha = (1.0 - level) / 2.0
    return [float(np.quantile(values, alpha)), float(np.quantile(values, 1.0 - alpha))]


def _mean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


# --------------------------------------------------------------------------- checks


def _check_objective(objective: str) -> None:
    if objective not in METRICS:
        raise ConfigError(f"objective must be one of {', '.join(METRICS)}, got {objective!r}")


def _check_n_boot(n_boot: int) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise ConfigError(f"n_boot must be an integer of at least 1, got {n_boot!r}")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")


def _check_level(level: float) -> None:
    if not isinstance(level, int | float | np.floating) or not 0.0 < float(level) < 1.0:
        raise ConfigError(f"level must be strictly between 0 and 1, got {level!r}")


def _check(data: SubjectConfusions, objective: str, n_boot: int, seed: int, level: float) -> None:
    if not isinstance(data, SubjectConfusions):
        raise InputError(
            f"data must be a SubjectConfusions (see subject_confusions), got {type(data).__name__}"
        )
    _check_objective(objective)
    _check_n_boot(n_boot)
    _check_seed(seed)
    _check_level(level)
    if data.n_subjects < 2:
        raise InputError(
            f"data has {data.n_subjects} subject(s); a subject bootstrap needs at least 2"
        )
    if data.n_trials < 1:
        raise InputError("data has no trial")


def _eligible(data: SubjectConfusions) -> np.ndarray:
    eligible = np.flatnonzero(data.complete)
    if eligible.size == 0:
        raise InputError(
            f"no eligible trial: none of the {data.n_trials} trials has all {data.n_subjects} "
            "subjects (only complete trials can be the champion)"
        )
    return eligible


def _champion_index(
    data: SubjectConfusions, objective: str, champion: Hashable | None
) -> tuple[int, np.ndarray]:
    """(champion's index, eligible indices). Default champion: the best complete trial by
    the pooled objective over all subjects, ties to the earliest."""
    assert data.trials is not None
    eligible = _eligible(data)
    if champion is None:
        full = pooled_scores(data, np.ones(data.n_subjects), trials=eligible)[objective]
        return int(eligible[_objective_argmax(full)]), eligible
    name = str(champion)
    if name not in data.trials:
        raise InputError(f"champion {name!r} is not one of the trials")
    index = data.trials.index(name)
    if not data.complete[index]:
        raise InputError(
            f"champion {name!r} does not have every subject; only complete trials can be "
            "the champion"
        )
    return index, eligible


# --------------------------------------------------------------------------- results


@dataclass
class _Estimate:
    """Pooled ACC, UF1 and UAR with percentile intervals over a subject bootstrap."""

    acc: float
    uf1: float
    uar: float
    acc_ci: list[float]
    uf1_ci: list[float]
    uar_ci: list[float]
    level: float
    n_boot: int
    n_trials: int  # trials given, complete or not
    excluded_trials: list[str]  # trials that could not be selected (missing subjects)
    skipped_resamples: int
    objective: str
    seed: int
    n_subjects: int

    def _common(self) -> dict[str, Any]:
        return {
            "acc": self.acc,
            "uf1": self.uf1,
            "uar": self.uar,
            "acc_ci": list(self.acc_ci),
            "uf1_ci": list(self.uf1_ci),
            "uar_ci": list(self.uar_ci),
            "level": self.level,
            "n_boot": self.n_boot,
            "n_trials": self.n_trials,
            "excluded_trials": list(self.excluded_trials),
            "n_excluded": len(self.excluded_trials),
            "skipped_resamples": self.skipped_resamples,
            "objective": self.objective,
            "seed": self.seed,
            "n_subjects": self.n_subjects,
        }


@dataclass
class SearchBestResult(_Estimate):
    """The champion's own pooled scores over all subjects: optimistic (selected on the same
    folds). Intervals: subject bootstrap of the champion's pooled scores."""

    champion: str = ""
    optimistic: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (`"optimistic": true`)."""
        return {
            "figure": "search_best",
            **self._common(),
            "champion": self.champion,
            "optimistic": True,
            "method": "champion's pooled scores over all subjects; percentile subject "
            "bootstrap intervals; optimistic (selected on the same folds)",
        }


@dataclass
class BBCResult(_Estimate):
    """BBC-CV over subjects: mean (and percentile interval) over resamples of the out-of-bag
    pooled scores of the trial selected on the in-bag subjects."""

    n_used: int = 0  # resamples with at least one out-of-bag subject
    picked: dict[str, int] = field(default_factory=dict)  # eligible trial -> times selected
    optimistic: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "figure": "bbc",
            **self._common(),
            "n_used": self.n_used,
            "picked": dict(self.picked),
            "optimistic": False,
            "method": "BBC-CV over subjects (Tsamardinos, Greasidou & Borboudakis, "
            "Machine Learning 107, 2018): select on in-bag subjects, score out-of-bag",
        }


@dataclass
class TieRow:
    """One trial against the champion: paired subject bootstrap of
    objective(trial) - objective(champion), both pooled over the subjects the trial has."""

    trial: str
    index: int  # position in SubjectConfusions.trials
    is_champion: bool
    complete: bool  # has every subject
    n_subjects: int  # subjects in common with the champion (= the trial's subjects)
    objective: str
    value: float  # trial's objective pooled over the common subjects
    champion_value: float  # champion's objective pooled over the same subjects
    diff: float  # value - champion_value
    diff_ci: list[float]
    share_at_least_as_good: float  # share of resamples with trial >= champion
    tied_with_best: bool  # diff_ci contains 0 (True for the champion itself)
    n_used: int  # resamples that drew at least one common subject

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "trial": self.trial,
            "index": self.index,
            "is_champion": self.is_champion,
            "complete": self.complete,
            "n_subjects": self.n_subjects,
            "objective": self.objective,
            "value": self.value,
            "champion_value": self.champion_value,
            "diff": self.diff,
            "diff_ci": list(self.diff_ci),
            "share_at_least_as_good": self.share_at_least_as_good,
            "tied_with_best": self.tied_with_best,
            "n_used": self.n_used,
        }


# --------------------------------------------------------------------------- figures


def search_best(
    data: SubjectConfusions,
    objective: str = "uf1",
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    champion: Hashable | None = None,
) -> SearchBestResult:
    """The champion's pooled scores over all subjects with subject-bootstrap intervals.

    Optimistic: the champion was selected on these same folds. `champion`: the trial id the
    search crowned (default: the best complete trial by `objective`, ties to the earliest).
    """
    _check(data, objective, n_boot, seed, level)
    assert data.trials is not None
    best, eligible = _champion_index(data, objective, champion)
    flat = data.flat()[best]  # (S, K*K)
    k = data.num_classes
    point = scores(flat.sum(axis=0).reshape(k, k))
    boot = scores((resample_counts(data.n_subjects, n_boot, seed) @ flat).reshape(-1, k, k))
    return SearchBestResult(
        **{m: float(point[m]) for m in METRICS},
        **{f"{m}_ci": _interval(boot[m], level) for m in METRICS},
        level=float(level),
        n_boot=int(n_boot),
        n_trials=data.n_trials,
        excluded_trials=[data.trials[i] for i in np.flatnonzero(~data.complete)],
        skipped_resamples=0,
        objective=objective,
        seed=int(seed),
        n_subjects=data.n_subjects,
        champion=data.trials[best],
    )


def bbc(
    data: SubjectConfusions,
    objective: str = "uf1",
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    score_data: SubjectConfusions | None = None,
) -> BBCResult:
    """BBC-CV over subjects: a bias-corrected estimate of the configuration the search picks.

    For each of `n_boot` resamples of the subjects with replacement: among the complete
    trials, select the one with the best pooled `objective` on the in-bag subjects (with
    their multiplicity; ties to the earliest trial), and score it on the out-of-bag subjects
    (pooled, each once; ACC, UF1 and UAR). A resample with no out-of-bag subject is skipped
    and counted in `skipped_resamples`. The estimate is the mean over the kept resamples,
    the interval their percentiles. Trials missing a subject cannot be selected and are
    listed in `excluded_trials`. If every resample is skipped (only possible for very few
    subjects and resamples) the scores are NaN.

    `score_data` (default `data`): other confusion matrices of the same trials and subjects
    that the out-of-bag scores are read from, the selection staying on `data`'s objective;
    for an evaluation mode whose ACC comes from other epochs than its UF1 and UAR
    (published-oracle), so that each score is read from its own epochs.
    """
    _check(data, objective, n_boot, seed, level)
    assert data.trials is not None
    eligible = _eligible(data)
    flat = data.flat()[eligible]  # (E, S, K*K)
    scored = flat
    if score_data is not None:
        if (
            score_data.cms.shape != data.cms.shape
            or score_data.trials != data.trials
            or score_data.subjects != data.subjects
            or not np.array_equal(score_data.has, data.has)
        ):
            raise InputError("score_data must hold the same trials and subjects as data")
        scored = score_data.flat()[eligible]
    k = data.num_classes
    counts = resample_counts(data.n_subjects, n_boot, seed)
    out_of_bag = counts == 0
    used = out_of_bag.any(axis=1)
    in_bag = _pooled(counts[used], flat, k)[objective]  # (B_used, E)
    chosen = _objective_argmax(in_bag)  # (B_used,) index into eligible
    oob = out_of_bag[used].astype(np.float64)
    oob_cm = np.zeros((int(used.sum()), k * k))
    for e in np.unique(chosen):
        rows = chosen == e
        oob_cm[rows] = oob[rows] @ scored[e]
    oob_scores = scores(oob_cm.reshape(-1, k, k))
    picks = np.bincount(chosen, minlength=eligible.size)
    return BBCResult(
        **{m: _mean(np.atleast_1d(oob_scores[m])) for m in METRICS},
        **{f"{m}_ci": _interval(np.atleast_1d(oob_scores[m]), level) for m in METRICS},
        level=float(level),
        n_boot=int(n_boot),
        n_trials=data.n_trials,
        excluded_trials=[data.trials[i] for i in np.flatnonzero(~data.complete)],
        skipped_resamples=int((~used).sum()),
        objective=objective,
        seed=int(seed),
        n_subjects=data.n_subjects,
        n_used=int(used.sum()),
        picked={data.trials[i]: int(n) for i, n in zip(eligible, picks, strict=True)},
    )


def ties(
    data: SubjectConfusions,
    objective: str = "uf1",
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    champion: Hashable | None = None,
) -> list[TieRow]:
    """Which trials are statistically tied with the champion, one row per trial.

    For each trial t, the same subject resamples are applied to t and to the champion
    (paired), and both are pooled over the drawn subjects that t has (all subjects for a
    complete trial; for a pruned trial only its own, which the champion has too). Row:
    the difference objective(t) - objective(champion) over all common subjects, its
    percentile interval, the share of resamples with t at least as good, and
    `tied_with_best` = the interval contains 0. Resamples that draw no common subject are
    left out of that row (`n_used`). The champion's own row: difference 0, interval
    [0, 0], share 1, tied by definition. A trial with no subject has NaN figures and is
    not tied. `champion`: as in `search_best`.
    """
    _check(data, objective, n_boot, seed, level)
    assert data.trials is not None and data.has is not None
    best, _ = _champion_index(data, objective, champion)
    flat = data.flat()
    k = data.num_classes
    counts = resample_counts(data.n_subjects, n_boot, seed)
    rows: list[TieRow | None] = [None] * data.n_trials
    patterns, group_of = np.unique(data.has, axis=0, return_inverse=True)
    group_of = np.asarray(group_of).reshape(-1)
    for g, mask in enumerate(patterns):
        members = np.flatnonzero(group_of == g)
        n_common = int(mask.sum())
        weights = counts * mask  # (B, S): drawn subjects among the common ones
        kept = weights.sum(axis=1) > 0
        w = weights[kept]
        point_t = pooled_scores(data, mask.astype(np.float64), trials=members)[objective]
        point_c = pooled_scores(data, mask.astype(np.float64), trials=[best])[objective][0]
        boot_t = _pooled(w, flat[members], k)[objective]  # (B_kept, G)
        boot_c = _pooled(w, flat[[best]], k)[objective][:, 0]  # (B_kept,)
        for j, t in enumerate(members):
            t = int(t)
            if t == best:
                value = float(point_c)
                rows[t] = TieRow(
                    trial=data.trials[t],
                    index=t,
                    is_champion=True,
                    complete=True,
                    n_subjects=n_common,
                    objective=objective,
                    value=value,
                    champion_value=value,
                    diff=0.0,
                    diff_ci=[0.0, 0.0],
                    share_at_least_as_good=1.0,
                    tied_with_best=True,
                    n_used=int(kept.sum()),
                )
                continue
            diffs = boot_t[:, j] - boot_c
            valid = ~np.isnan(diffs)
            ci = _interval(diffs, level)
            share = float(np.mean(diffs[valid] >= 0)) if valid.any() else float("nan")
            rows[t] = TieRow(
                trial=data.trials[t],
                index=t,
                is_champion=False,
                complete=bool(mask.all()),
                n_subjects=n_common,
                objective=objective,
                value=float(point_t[j]),
                champion_value=float(point_c),
                diff=float(point_t[j] - point_c),
                diff_ci=ci,
                share_at_least_as_good=share,
                tied_with_best=bool(ci[0] <= 0.0 <= ci[1]),  # False when NaN
                n_used=int(valid.sum()),
            )
    return [r for r in rows if r is not None]


def ties_frame(rows: Sequence[TieRow]) -> pd.DataFrame:
    """The rows of `ties` as a DataFrame indexed by trial id (diff_ci split in two)."""
    records = []
    for row in rows:
        d = row.to_dict()
        lo, hi = d.pop("diff_ci")
        records.append({**d, "diff_lo": lo, "diff_hi": hi})
    return pd.DataFrame.from_records(records).set_index("trial") if records else pd.DataFrame()


def leaderboard(
    data: SubjectConfusions,
    objective: str = "uf1",
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    champion: Hashable | None = None,
) -> dict[str, Any]:
    """All three in one JSON-ready dict: {"search_best", "bbc", "ties"} (same resamples)."""
    return {
        "search_best": search_best(data, objective, n_boot, seed, level, champion).to_dict(),
        "bbc": bbc(data, objective, n_boot, seed, level).to_dict(),
        "ties": [r.to_dict() for r in ties(data, objective, n_boot, seed, level, champion)],
    }
