"""Optuna through Ray Tune, with trials that did not finish reported as PRUNED.

Tune's OptunaSearch hands Optuna the last reported value of every finished
trial. A trial stopped early (by ASHA or the time budget) has scored only some
of its LOSO folds: telling TPE that partial score as a COMPLETE result would
mislead it. Here such trials reach Optuna as PRUNED.

The study lives in a database under the search's name (search.study): a resumed search
continues it, and optuna-dashboard shows it.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search.optuna import OptunaSearch

from search.schema import FOLDS_DONE, N_FOLDS, OBJECTIVE
from search.space import SearchSpace
from search.study import TUNE_TRIAL_ATTR, lost_trials_failed, rdb_storage

# (study name, Tune trial id) -> the Optuna trial number, for the trials sampled in this
# process: the MLflow tracker (search.tracking), which runs in the same driver, names each
# trial's run by it so that a run and the dashboard's trial read alike.
_TRIAL_NUMBERS: dict[tuple[str, str], int] = {}


def trial_number(study_name: str, trial_id: str) -> int | None:
    """The Optuna number of a trial sampled in this process, or None."""
    return _TRIAL_NUMBERS.get((study_name, trial_id))


class LosoOptunaSearch(OptunaSearch):
    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        trial = self._ot_trials.get(trial_id)
        if config is not None and trial is not None:
            _TRIAL_NUMBERS[(self._study_name, trial_id)] = trial.number
            trial.set_user_attr(TUNE_TRIAL_ATTR, trial_id)
        return config

    def restore(self, checkpoint_path: str) -> None:
        """Tune's resume: the searcher's pickle holds the study bound to its database (the same
        URL, so the same study is continued); trials asked for after that pickle was written
        are marked FAIL there (search.study.lost_trials_failed)."""
        super().restore(checkpoint_path)
        self.lost = lost_trials_failed(self._ot_study, {t.number for t in self._ot_trials.values()})

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


def make_searcher(
    space: SearchSpace,
    sampler: str,
    seed: int,
    storage: str | None = None,
    study_name: str | None = None,
    attrs: dict[str, Any] | None = None,
) -> LosoOptunaSearch:
    """The searcher; with `storage` (a database URL) its study is kept there under
    `study_name`, created or, for a search resumed before Tune saved its state, loaded (its
    trials left RUNNING by the stopped driver marked FAIL); `attrs` become the study's user
    attributes (what optuna-dashboard shows beside it)."""
    searcher = LosoOptunaSearch(
        space=space.define,
        metric=OBJECTIVE,
        mode="max",
        sampler=make_sampler(sampler, space, seed),
        storage=rdb_storage(storage) if storage else None,
        study_name=study_name,
    )
    study = searcher._ot_study
    searcher.lost = lost_trials_failed(study, set())
    study.set_metric_names([OBJECTIVE])
    for key, value in (attrs or {}).items():
        study.set_user_attr(key, value)
    return searcher
