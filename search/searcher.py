"""Optuna through Ray Tune, with trials that did not finish reported as PRUNED.

Tune's OptunaSearch hands Optuna the last reported value of every finished
trial. A trial stopped early (by ASHA or the time budget) has scored only some
of its LOSO folds: telling TPE that partial score as a COMPLETE result would
mislead it. Here such trials reach Optuna as PRUNED.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search.optuna import OptunaSearch

from search.schema import FOLDS_DONE, N_FOLDS, OBJECTIVE
from search.space import SearchSpace


class LosoOptunaSearch(OptunaSearch):
    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if result and not error and result.get(FOLDS_DONE, 0) < result.get(N_FOLDS, 0):
            # OptunaSearch tells Optuna PRUNED for a trial with no value and no error.
            result = None
        super().on_trial_complete(trial_id, result=result, error=error)


def make_sampler(kind: str, space: SearchSpace, seed: int) -> Any:
    """An Optuna sampler by name: tpe (default), gp, random, or grid (for ablations)."""
    import optuna

    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    raise ValueError(f"unknown sampler {kind!r}")


def make_searcher(space: SearchSpace, sampler: str, seed: int) -> LosoOptunaSearch:
    return LosoOptunaSearch(
        space=space.define,
        metric=OBJECTIVE,
        mode="max",
        sampler=make_sampler(sampler, space, seed),
    )
