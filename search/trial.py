"""One trial of a search: one configuration, its LOSO folds as Ray tasks.

Each task trains `fold_batch` folds with the library's own engine (`run_loso` with a runner,
`tsfmicro.training.runners.Runner.for_task`): one (the default, folds spread over workers) or
several trained together on the task's device, either with their models stacked into one
(`fold_group` "stacked") or each in a thread of its own on a CUDA stream of its own
("streams"). Ray only decides where each group of folds runs.

The trial's placement group reserves one bundle per fold slot; the fold tasks
it launches are captured by that group, so the folds of one configuration
spread over the GPUs and nodes the bundles landed on. As each fold finishes,
the trial writes every finished fold to a Tune checkpoint and reports the
metrics pooled over the folds done so far. A trial that is retried, or
restored after the driver died, reloads its finished folds and trains only the rest.

Finished folds are also written, before they are reported, to the search's own fold store
(`<storage>/<name>/folds/<trial id>/<position>.npz`, one file per fold, written whole, no
pickles). Tune saves its experiment state a little after the driver has handled a report (and
the MLflow callback has logged the fold), so a driver killed in between restores a trial from an
older checkpoint than MLflow shows; the fold store is never behind MLflow, and a restored trial
takes the union of both.
"""

from __future__ import annotations

import json
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.schema import (
    FOLD_SECONDS,
    FOLDS_DONE,
    FOLDS_RESTORED,
    N_FOLDS,
    OBJECTIVE,
    report_key,
)
from tsfmicro.config import DEFAULT_MACHINE, MachineConfig, ModelConfig, TrainConfig
from tsfmicro.fileio import write_errors, written_whole
from tsfmicro.training.evaluation import available_modes, pooled_scores
from tsfmicro.training.fold import FoldResult
from tsfmicro.training.loso import run_loso
from tsfmicro.training.runners import Runner

FOLD_STORE = "folds"  # <storage>/<name>/folds/<trial id>/: each finished fold, one npz
FOLDS_NPZ = "folds.npz"
FOLDS_JSON = "folds.json"
_ARRAYS = (
    "train_index",
    "test_index",
    "val_index",
    "test_probs",
    "val_probs",
    "train_loss",
    "train_acc",
)
_SCALARS = ("seed", "seconds", "train_samples", "device", "val_subjects", "worker", "host",
            "started")  # fmt: skip


@dataclass(frozen=True)
class TrialSetup:
    """Everything a trial needs besides its sampled parameters (sent once per trial)."""

    data_ref: list  # [ObjectRef of the PairSet]; in a list so Ray passes the reference itself
    subjects: tuple[str, ...]  # one fold each, in launch order
    labels: np.ndarray  # labels of the whole PairSet, for pooled metrics
    num_classes: int
    base_model: ModelConfig
    base_train: TrainConfig
    eval_mode: str
    objective: str
    fold_cpus: float
    fold_gpus: float
    fold_parallelism: int  # fold tasks at once
    fold_retries: int
    fold_batch: int = 1  # folds per task, trained together
    fold_group: str = "stacked"  # how: models stacked, or a thread and CUDA stream per fold
    machine: MachineConfig = DEFAULT_MACHINE  # device, precision, compile of the folds
    fold_store: str | None = None  # <storage>/<name>/folds: finished folds, per trial


def save_folds(folds: dict[str, FoldResult], directory: Path) -> None:
    """Write finished folds: arrays to one npz, the rest to JSON (no pickles); each file whole
    or not at all, a full disk one InputError naming it."""
    arrays = {f"{name}/{s}": getattr(f, name) for s, f in folds.items() for name in _ARRAYS}
    with written_whole(directory / FOLDS_NPZ) as temp, open(temp, "wb") as handle:
        np.savez(handle, **arrays)
    meta = {s: {name: getattr(f, name) for name in _SCALARS} for s, f in folds.items()}
    with written_whole(directory / FOLDS_JSON) as temp:
        temp.write_text(json.dumps(meta))


def load_folds(directory: str | Path) -> dict[str, FoldResult]:
    directory = Path(directory)
    if not (directory / FOLDS_JSON).is_file():
        return {}
    meta = json.loads((directory / FOLDS_JSON).read_text())
    with np.load(directory / FOLDS_NPZ, allow_pickle=False) as arrays:
        return {
            s: FoldResult(subject=s, **values, **{n: arrays[f"{n}/{s}"] for n in _ARRAYS})
            for s, values in meta.items()
        }


def store_fold(directory: Path, position: int, fold: FoldResult) -> None:
    """One finished fold in the fold store: arrays and its scalars (as a JSON string) in one
    npz, written to a temporary name and renamed, so a reader sees all of it or nothing (a
    full disk: one InputError naming the file, no temporary left)."""
    with write_errors(directory):
        directory.mkdir(parents=True, exist_ok=True)
    meta = {"subject": fold.subject, **{name: getattr(fold, name) for name in _SCALARS}}
    with written_whole(directory / f"{position:04d}.npz") as temp, open(temp, "wb") as handle:
        np.savez(
            handle,
            meta=np.array(json.dumps(meta)),
            **{name: np.asarray(getattr(fold, name)) for name in _ARRAYS},
        )


def load_stored_folds(directory: Path, subjects: tuple[str, ...]) -> dict[str, FoldResult]:
    """The folds of the fold store whose position still names the same subject (other files,
    half-written temporaries and unreadable files are ignored: those folds are trained
    again)."""
    folds: dict[str, FoldResult] = {}
    for position, subject in enumerate(subjects):
        path = directory / f"{position:04d}.npz"
        if not path.is_file():
            continue
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {name: data[name] for name in _ARRAYS}
        except (OSError, ValueError, KeyError):
            continue
        if meta.pop("subject", None) != subject:
            continue
        folds[subject] = FoldResult(subject=subject, **meta, **arrays)
    return folds


def trial_metrics(folds: dict[str, FoldResult], setup: TrialSetup) -> dict[str, Any]:
    """What a trial reports: progress, the objective, and pooled scores per available mode,
    all over the folds finished so far."""
    done = [folds[s] for s in setup.subjects if s in folds]
    metrics: dict[str, Any] = {
        FOLDS_DONE: len(done),
        N_FOLDS: len(setup.subjects),
        FOLD_SECONDS: float(sum(f.seconds for f in done)),
    }
    for mode in available_modes(done):
        scores = pooled_scores(
            done, mode, setup.labels, setup.num_classes, setup.base_train.val_metric
        )
        for name, value in scores.items():
            metrics[report_key(mode, name)] = float(value)
    metrics[OBJECTIVE] = metrics[report_key(setup.eval_mode, setup.objective)]
    return metrics


def run_folds(
    data: Any,
    subjects: list[str],
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    threads: int,
    group: str = "stacked",
    machine: MachineConfig = DEFAULT_MACHINE,
) -> list[FoldResult]:
    """Body of a fold-group task: the library's LOSO engine on these folds, with the runner a
    task of `threads` CPUs uses for `group` (Runner.for_task); each fold labelled with the node
    it ran on (Ray node id and host name)."""
    import ray

    runner = Runner.for_task(group, len(subjects), threads, machine)
    folds = run_loso(data, model_cfg, train_cfg, runner, subjects=subjects).folds
    node, host = ray.get_runtime_context().get_node_id(), socket.gethostname()
    for fold in folds:
        fold.worker, fold.host = node, host
    return folds


def loso_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """The Tune function trainable. `config` holds the sampled parameters and constants."""
    import ray
    from ray import tune

    from search.space import resolve_configs

    model_cfg, train_cfg = resolve_configs(setup.base_model, setup.base_train, config)
    folds: dict[str, FoldResult] = {}
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        try:
            with checkpoint.as_directory() as directory:
                folds = load_folds(directory)
        except (OSError, ValueError):  # gone or damaged: the fold store still has its folds
            folds = {}
    store = None
    if setup.fold_store is not None:
        store = Path(setup.fold_store) / tune.get_context().get_trial_id()
        folds = {**load_stored_folds(store, setup.subjects), **folds}
    restored = len(folds)  # folds kept from an earlier attempt of this trial
    todo = [s for s in setup.subjects if s not in folds]
    if not todo:  # restored with every fold done: report once more and finish
        # with a checkpoint of every fold: the fold store may hold folds the driver never
        # logged (killed between the fold's report and its MLflow run), and the trial's
        # results are computed from its last checkpoint
        with tempfile.TemporaryDirectory(prefix="tsfmicro-folds-") as tmp:
            save_folds(folds, Path(tmp))
            tune.report(
                {**trial_metrics(folds, setup), FOLDS_RESTORED: restored},
                checkpoint=tune.Checkpoint.from_directory(tmp),
            )
        return

    fold_task = ray.remote(run_folds).options(
        num_cpus=setup.fold_cpus,
        num_gpus=setup.fold_gpus,
        max_retries=setup.fold_retries,
        name="loso_fold",
    )
    threads = max(1, int(setup.fold_cpus))
    data_ref = setup.data_ref[0]
    group = max(1, setup.fold_batch)
    groups = [todo[i : i + group] for i in range(0, len(todo), group)]
    pending: dict[Any, list[str]] = {}

    def launch() -> None:
        while groups and len(pending) < setup.fold_parallelism:
            chosen = groups.pop(0)
            pending[
                fold_task.remote(
                    data_ref, chosen, model_cfg, train_cfg, threads, setup.fold_group, setup.machine
                )
            ] = chosen

    launch()
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        pending.pop(ready[0])
        for fold in ray.get(ready[0]):
            folds[fold.subject] = fold
            if store is not None:
                store_fold(store, setup.subjects.index(fold.subject), fold)
        launch()
        with tempfile.TemporaryDirectory(prefix="tsfmicro-folds-") as tmp:
            save_folds(folds, Path(tmp))
            metrics = {**trial_metrics(folds, setup), FOLDS_RESTORED: restored}
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def fold_placement(
    setup_cpus: float, fold_cpus: float, fold_gpus: float, parallelism: int
) -> list[dict[str, float]]:
    """Bundles of a trial's placement group: the trial's own (may be empty), then one per
    concurrent fold."""
    fold = {"CPU": fold_cpus}
    if fold_gpus:
        fold["GPU"] = fold_gpus
    head = {"CPU": setup_cpus} if setup_cpus else {}
    return [head] + [dict(fold) for _ in range(parallelism)]
