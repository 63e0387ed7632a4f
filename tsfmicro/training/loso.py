"""Leave-one-subject-out (LOSO) runs: the one engine that the CLI, the search's Ray tasks and
the benchmarks share.

`run_loso(data, model_cfg, train_cfg, runner)` trains the folds of the given subjects (all by
default) with a runner (`tsfmicro.training.runners`: sequential, stacked or streams) and
returns a `LosoResult` (`tsfmicro.training.evaluation`) that evaluates every mode. A search
calls it inside each Ray task for that task's folds; Ray only decides where a group of folds
runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from tsfmicro.config import ModelConfig, TrainConfig
from tsfmicro.training.data import PairSet
from tsfmicro.training.evaluation import LosoResult
from tsfmicro.training.fold import EpochStats, FoldResult, check_compatible
from tsfmicro.training.runners import SEQUENTIAL, Runner


def run_loso(
    data: PairSet,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    runner: Runner = SEQUENTIAL,
    *,
    subjects: Sequence[str] | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    on_fold: Callable[[FoldResult], None] | None = None,
    keep_model: bool = False,
) -> LosoResult:
    """Train the LOSO folds holding out each of `subjects` (default: every fold, a whole
    LOSO run; a fold is a subject, or a held-out dataset where the set has `folds`) in this
    process with `runner`. The result checks that the folds predict every
    sample of their held-out subjects exactly once, with no subject leaking; only a whole run
    (`LosoResult.complete`) gives the pooled scores of the data set."""
    check_compatible(data, model_cfg)
    start = time.perf_counter()
    chosen = data.fold_ids() if subjects is None else list(subjects)
    folds = runner.run(
        data,
        chosen,
        model_cfg,
        train_cfg,
        on_epoch=on_epoch,
        on_fold=on_fold,
        keep_model=keep_model,
    )
    info = {
        "fold_group": runner.group,
        "fold_size": runner.at_once(len(chosen)),
        "machine": runner.machine.to_dict(),
        "train_pairs_moved": data.moved_training_pairs() if train_cfg.train_pairs else 0,
    }
    return LosoResult.from_folds(
        data,
        folds,
        model_cfg,
        train_cfg,
        time.perf_counter() - start,
        info=info,
        complete=set(chosen) == set(data.fold_ids()),
    )
