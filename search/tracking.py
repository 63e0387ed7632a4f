"""Every trial and fold in MLflow, written from the search driver only.

One experiment per dataset and protocol. Each trial is a parent run (its
parameters, pooled metrics with subject-bootstrap intervals for every
evaluation mode, per-class metrics, confusion matrices, per-sample predictions,
the resolved config, git commit, search name, tags for dataset, protocol and
evaluation mode); each fold is a child run with its curves. The driver is the
only writer, so a SQLite store is safe; a tracking server works the same way.

Runs are found again by their tags (search name, trial id, fold), never by
in-memory state: a resumed search reopens its trials' runs instead of making
new ones. No run is left RUNNING: failed trials end FAILED with the error, the
driver closes what is open when it stops, and a later search on the same host
closes runs whose driver process is gone.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune import Callback

from search.schema import (
    CI_SUFFIXES,
    CLASS_SCORES,
    CURVE_METRICS,
    DATASET_CONTEXT,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    FOLD_SECONDS,
    FOLDS_DONE,
    FOLDS_RESTORED,
    KIND_FOLD,
    KIND_TRIAL,
    OBJECTIVE,
    PARENT_RUN_TAG,
    PER_DATASET,
    STATE_COMPLETE,
    STATE_FAILED,
    STATE_LOST,
    STATE_PRUNED,
    STATE_RUNNING,
    FoldMetric,
    FoldParam,
    Tag,
    class_metric,
    confusion_artifact,
    fold_mean_metric,
    partial_metric,
    per_class_artifact,
    per_subject_artifact,
    report_key,
    run_filter,
    score_metric,
)
from search.searcher import trial_number
from search.trial import load_folds
from tsfmicro.config import DEFAULT_MACHINE, MachineConfig, ModelConfig, TrainConfig
from tsfmicro.metrics import METRICS
from tsfmicro.runinfo import pid_alive
from tsfmicro.training.evaluation import LosoResult, select_epoch
from tsfmicro.training.fold import FoldResult
from tsfmicro.vocab import EVAL_MODES, OPTIMISTIC_MODES

log = logging.getLogger(__name__)


def ensure_experiment(client: Any, name: str) -> str:
    """The experiment's id, created if missing (by the driver, once; a concurrent creation by
    another driver is tolerated), tagged for MLflow's classic ML view (EXPERIMENT_KIND)."""
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            client.restore_experiment(existing.experiment_id)
        if EXPERIMENT_KIND_TAG not in existing.tags:  # one made before the tag was set
            client.set_experiment_tag(existing.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return existing.experiment_id
    try:
        return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except Exception:
        existing = client.get_experiment_by_name(name)
        if existing is None:
            raise
        return existing.experiment_id


def close_orphaned_runs(client: Any, experiment_id: str) -> list[str]:
    """End RUNNING runs whose driver ran on this host and is gone: FAILED, with the reason.

    Returns the run ids closed.
    """
    host = socket.gethostname()
    runs = client.search_runs(
        [experiment_id],
        filter_string=run_filter({Tag.DRIVER_HOST: host}, status="RUNNING"),
        max_results=5000,
    )
    closed = []
    for run in runs:
        pid = int(run.data.tags.get(Tag.DRIVER_PID, "0") or 0)
        if pid and pid != os.getpid() and not pid_alive(pid):
            end_run(
                client,
                run.info.run_id,
                "FAILED",
                f"the search driver (pid {pid} on {host}) ended without closing this run",
            )
            closed.append(run.info.run_id)
    return closed


def end_run(
    client: Any, run_id: str, status: str, reason: str | None = None, state: str | None = None
) -> None:
    """Terminate a run with a status and, for anything but success, a readable reason."""
    tags = {}
    if reason:
        tags[Tag.REASON] = reason[-4900:]  # tag values are limited to 5000 chars
    tags[Tag.STATE] = state or status.lower()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    client.set_terminated(run_id, status=status)


@dataclass(frozen=True)
class DatasetRecord:
    """The data a search trains and tests on, as an MLflow dataset input: its name, protocol,
    a digest of its content (every sample's key, subject, label and frames as cropped), where
    it comes from, and a profile (counts and classes)."""

    name: str
    protocol: str
    digest: str
    source_type: str  # MLflow's dataset source kinds: "local" (a folder) or "code" (generated)
    source: str  # JSON, as MLflow's dataset sources write themselves
    profile: str  # JSON

    def entity(self) -> Any:
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        dataset = Dataset(self.name, self.digest, self.source_type, self.source,
                          profile=self.profile)  # fmt: skip
        tags = [InputTag(MLFLOW_DATASET_CONTEXT, DATASET_CONTEXT),
                InputTag(Tag.PROTOCOL, self.protocol)]  # fmt: skip
        return DatasetInput(dataset, tags=tags)


def dataset_record(pairs: Any, dataset: str, protocol: str, spec: Any) -> DatasetRecord:
    """The MLflow dataset input of a search's samples `pairs` (named `dataset` / `protocol`,
    read as DataSpec `spec` says)."""
    import hashlib

    from search.data import synthetic_root

    digest = hashlib.sha256(json.dumps(list(pairs.class_names)).encode())
    for array in (pairs.keys, pairs.subjects):
        digest.update("\n".join(map(str, np.asarray(array).tolist())).encode())
    for tensor in (pairs.labels, pairs.onset, pairs.apex, pairs.train_onset, pairs.train_apex):
        if tensor is not None:
            digest.update(tensor.contiguous().numpy().tobytes())
    if spec.dataset == "toy":
        source_type = "code"
        source = {"tags": {"generator": "tsfmicro toy task", "subjects": str(spec.toy_subjects),
                           "per_subject": str(spec.toy_per_subject)}}  # fmt: skip
    else:
        root = synthetic_root(spec) if spec.dataset == "synthetic" else Path(spec.root or ".")
        source_type, source = "local", {"uri": str(Path(root).expanduser().absolute())}
    profile = {
        "protocol": protocol,
        "samples": len(pairs),
        "subjects": len(set(np.asarray(pairs.subjects).tolist())),
        "classes": list(pairs.class_names),
        "image_size": int(pairs.onset.shape[-1]),
        "shuffled_labels": bool(spec.shuffle_labels),
    }
    return DatasetRecord(dataset, protocol, digest.hexdigest()[:16], source_type,
                         json.dumps(source), json.dumps(profile))  # fmt: skip


def log_dataset(client: Any, run_id: str, record: DatasetRecord | None) -> None:
    """Log the search's dataset as an input of the run (MLflow keeps one link per run and
    dataset: logging it again, on a resume, adds nothing)."""
    if record is not None:
        client.log_inputs(run_id, datasets=[record.entity()])


def run_label(search: str, number: int | None, trial_id: str, sampled: dict[str, Any],
              searched: tuple[str, ...]) -> str:  # fmt: skip
    """A trial run's name: the search, the trial's number in the Optuna study (its Tune id
    where the number is not known) and its sampled values, e.g.
    `s1 #3 temporal_depth=8 spatial_depth=4 fusion=early lr=0.00233`."""
    head = f"{search} #{number}" if number is not None else f"{search} {trial_id}"
    values = " ".join(
        f"{k}={_short(sampled[k])}" for k in searched if k in sampled
    )
    return f"{head} {values}".strip()[:250]  # MLflow keeps run names up to 250 characters


def _short(value: Any) -> str:
    if isinstance(value, float) and not isinstance(value, bool):
        return f"{value:.3g}"
    return str(value)


@dataclass(frozen=True)
class SearchContext:
    """What the tracker needs to know about the search and its data (picklable, small)."""

    search_name: str
    tracking_uri: str
    experiment_id: str
    dataset: str
    protocol: str
    preset: str
    eval_mode: str
    objective: str
    class_names: tuple[str, ...]
    keys: np.ndarray
    subjects: np.ndarray
    labels: np.ndarray
    base_model: ModelConfig
    base_train: TrainConfig
    searched: tuple[str, ...]
    git_commit: str | None
    bootstrap: int
    train_pairs_moved: int = 0  # samples whose training pair is not the annotated one
    shuffled_labels: bool = False  # trained on permuted labels (a chance-level control)
    machine: MachineConfig = DEFAULT_MACHINE  # where the folds ran (logged with the params)
    dataset_input: DatasetRecord | None = None  # logged as each trial run's input
    # An inner search of a nested one (search.nested): its trial runs are children of this
    # run (the outer fold's), and its trial and fold runs carry these tags too.
    parent_run: str | None = None
    extra_tags: tuple[tuple[str, str], ...] = ()
    # Each sample's fold key where folds are held-out datasets (PairSet.folds), else None
    folds: np.ndarray | None = None

    def fold_ids(self) -> list[str]:
        """The search's folds: its subjects, or its held-out datasets."""
        keys = self.subjects if getattr(self, "folds", None) is None else self.folds
        return sorted(set(np.asarray(keys).tolist()) - {""})


class MlflowTracker(Callback):
    """A Tune callback (runs in the driver) that mirrors trials and folds into MLflow."""

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx
        self._client = None
        self._runs: dict[str, str] = {}  # trial id -> parent run id
        self._folds: dict[str, set[str]] = {}  # trial id -> subjects logged as child runs
        self._labels: dict[str, str] = {}  # trial id -> "search #number", for its fold runs

    # The callback is pickled with the experiment state (for resume): keep only the context.
    def __getstate__(self) -> dict[str, Any]:
        return {"ctx": self.ctx}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["ctx"])

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.ctx.tracking_uri)
        return self._client

    # ---- runs -------------------------------------------------------------------------

    def _base_tags(self) -> dict[str, str]:
        c = self.ctx
        return {
            Tag.SEARCH: c.search_name,
            Tag.DATASET: c.dataset,
            Tag.PROTOCOL: c.protocol,
            Tag.PRESET: c.preset,
            Tag.EVAL_MODE: c.eval_mode,
            Tag.OBJECTIVE: c.objective,
            Tag.GIT_COMMIT: c.git_commit or "unknown",
            Tag.TRAIN_PAIRS_MOVED: str(c.train_pairs_moved),
            # getattr: a context pickled by an older driver (a resumed search) lacks the field
            Tag.SHUFFLED_LABELS: str(getattr(c, "shuffled_labels", False)).lower(),
            Tag.DRIVER_HOST: socket.gethostname(),
            Tag.DRIVER_PID: str(os.getpid()),
            **dict(getattr(c, "extra_tags", ())),
            **({} if getattr(c, "folds", None) is None else {Tag.HELD_OUT: ",".join(c.fold_ids())}),
        }

    def parent_run(self, trial: Any) -> str:
        """The trial's run: from memory, else found by tags (resume), else created."""
        trial_id = trial.trial_id
        if trial_id in self._runs:
            return self._runs[trial_id]
        c = self.ctx
        found = self.client.search_runs(
            [c.experiment_id],
            filter_string=run_filter(
                {Tag.SEARCH: c.search_name, Tag.TRIAL_ID: trial_id, Tag.KIND: KIND_TRIAL}
            ),
            max_results=1,
        )
        if found:
            run_id = found[0].info.run_id
            self._folds[trial_id] = self._logged_folds(run_id)
            number = found[0].data.tags.get(Tag.OPTUNA_TRIAL)
        else:
            number = trial_number(c.search_name, trial_id)
            tags = {
                **self._base_tags(),
                Tag.KIND: KIND_TRIAL,
                Tag.TRIAL_ID: trial_id,
                Tag.STATE: STATE_RUNNING,
                Tag.SEARCHED: ",".join(c.searched),
            }
            if getattr(c, "parent_run", None):  # an inner search: below its outer fold run
                tags[PARENT_RUN_TAG] = c.parent_run
            if number is not None:
                tags[Tag.OPTUNA_TRIAL] = str(number)
            name = run_label(c.search_name, number, trial_id, dict(trial.config), c.searched)
            run = self.client.create_run(c.experiment_id, tags=tags, run_name=name)
            run_id = run.info.run_id
            self._log_params(run_id, trial.config)
            log_dataset(self.client, run_id, getattr(c, "dataset_input", None))
            self._folds[trial_id] = set()
        self._labels[trial_id] = (
            f"{c.search_name} #{number}" if number is not None else f"{c.search_name} {trial_id}"
        )
        self._runs[trial_id] = run_id
        return run_id

    def _logged_folds(self, parent_id: str) -> set[str]:
        children = self.client.search_runs(
            [self.ctx.experiment_id],
            filter_string=run_filter({PARENT_RUN_TAG: parent_id}),
            max_results=5000,
        )
        return {r.data.tags.get(Tag.FOLD) for r in children}

    def _log_params(self, run_id: str, sampled: dict[str, Any]) -> None:
        from mlflow.entities import Param

        from search.space import resolve_configs

        model_cfg, train_cfg = resolve_configs(self.ctx.base_model, self.ctx.base_train, sampled)
        values = {**model_cfg.to_dict(), **train_cfg.to_dict(), **self.ctx.machine.to_dict()}
        params = [Param(k, str(v)[:6000]) for k, v in sorted(values.items())]
        self.client.log_batch(run_id, params=params)

    # ---- Tune callback hooks --------------------------------------------------------------

    def _already_complete(self, run_id: str) -> bool:
        """A run whose results were logged before (a trial Tune replays after a resume)."""
        run = self.client.get_run(run_id)
        return run.info.status == "FINISHED" and run.data.tags.get(Tag.STATE) == STATE_COMPLETE

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self.parent_run(trial)
        if self._already_complete(run_id):
            return  # results already logged; the replay only re-reports them
        run = self.client.get_run(run_id)
        if run.info.status != "RUNNING":  # reopened after a resume or a retry
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, Tag.STATE, STATE_RUNNING)
            if Tag.REASON in run.data.tags:  # why it was closed before; kept for the record
                self.client.set_tag(run_id, Tag.PREVIOUS_REASON, run.data.tags[Tag.REASON])
                self.client.delete_tag(run_id, Tag.REASON)
        self.client.set_tag(run_id, Tag.DRIVER_PID, str(os.getpid()))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self.parent_run(trial)
        error = _trial_error(trial) or "unknown error"
        self.client.set_tag(run_id, Tag.LAST_RETRY_REASON, _last_lines(error))

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        from mlflow.entities import Metric

        run_id = self.parent_run(trial)
        if self._already_complete(run_id):
            return
        step = int(result.get(FOLDS_DONE, 0))
        stamp = int(time.time() * 1000)
        names = [OBJECTIVE, FOLDS_DONE, FOLDS_RESTORED] + [
            report_key(m, s) for m in EVAL_MODES for s in METRICS
        ]
        metrics = [
            Metric(partial_metric(n), float(result[n]), stamp, step) for n in names if n in result
        ]
        self.client.log_batch(run_id, metrics=metrics)

    def on_checkpoint(
        self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any
    ) -> None:
        run_id = self.parent_run(trial)
        with checkpoint.as_directory() as directory:
            folds = load_folds(directory)
        logged = self._folds.setdefault(trial.trial_id, set())
        for subject in sorted(set(folds) - logged):
            self._log_fold(run_id, trial.trial_id, folds[subject])
            logged.add(subject)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self.parent_run(trial)
        if self._already_complete(run_id):
            return
        folds = self._trial_folds(trial)
        n_folds = len(self.ctx.fold_ids())
        if len(folds) < n_folds:
            end_run(
                self.client,
                run_id,
                "FINISHED",
                f"stopped after {len(folds)} of {n_folds} folds (scheduler or time budget); "
                "pruned, its partial metrics are not a result",
                state=STATE_PRUNED,
            )
            return
        try:
            self._log_result(run_id, trial, folds)
        except Exception as exc:  # a logging failure must not leave the run open
            end_run(self.client, run_id, "FAILED", f"could not log results: {exc!r}")
            raise
        end_run(self.client, run_id, "FINISHED", state=STATE_COMPLETE)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self.parent_run(trial)
        error = _trial_error(trial) or "the trial failed without an error message"
        end_run(self.client, run_id, "FAILED", _last_lines(error), state=STATE_FAILED)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.close_open("KILLED", "the search ended before this trial finished")
        self.drop_lost_trials({t.trial_id for t in trials})

    def drop_lost_trials(self, known: set[str]) -> list[str]:
        """Delete (MLflow's soft delete) the trial runs of this search, with their fold runs,
        whose trial Tune does not know: a driver killed after the MLflow callback opened a
        trial's run but before Tune saved a state that holds the trial. The resumed search
        never sees that trial again (its sampler was restored from the same state) and samples
        another in its place, so the lost run would be a duplicate that no later result
        updates. Each is tagged lost, with the reason, before it is deleted."""
        c = self.ctx
        if not known:  # Tune ended before it held any trial: nothing to compare with
            return []
        runs = self.client.search_runs(
            [c.experiment_id],
            filter_string=run_filter({Tag.SEARCH: c.search_name, Tag.KIND: KIND_TRIAL}),
            max_results=5000,
        )
        lost = [r for r in runs if r.data.tags.get(Tag.TRIAL_ID) not in known]
        reason = (
            "lost: the search driver stopped before Tune saved a state holding this trial; "
            "the resumed search sampled another in its place"
        )
        for run in lost:
            children = self.client.search_runs(
                [c.experiment_id],
                filter_string=run_filter({PARENT_RUN_TAG: run.info.run_id}),
                max_results=5000,
            )
            for child in [*children, run]:
                run_id = child.info.run_id
                if child.info.status == "RUNNING":
                    end_run(self.client, run_id, "KILLED", reason, state=STATE_LOST)
                else:
                    self.client.set_tag(run_id, Tag.STATE, STATE_LOST)
                    self.client.set_tag(run_id, Tag.REASON, reason)
                self.client.delete_run(run_id)
        return [r.info.run_id for r in lost]

    def close_open(self, status: str, reason: str) -> list[str]:
        """End every run this driver opened that is still RUNNING."""
        closed = []
        for run_id in self._runs.values():
            if self.client.get_run(run_id).info.status == "RUNNING":
                end_run(self.client, run_id, status, reason)
                closed.append(run_id)
        return closed

    # ---- content ---------------------------------------------------------------------------

    def _trial_folds(self, trial: Any) -> dict[str, FoldResult]:
        checkpoint = trial.checkpoint
        if checkpoint is None:
            return {}
        with checkpoint.as_directory() as directory:
            return load_folds(directory)

    def _log_fold(self, parent_id: str, trial_id: str, fold: FoldResult) -> None:
        from mlflow.entities import Metric, Param

        c = self.ctx
        tags = {
            **self._base_tags(),
            PARENT_RUN_TAG: parent_id,
            Tag.KIND: KIND_FOLD,
            Tag.TRIAL_ID: trial_id,
            Tag.FOLD: fold.subject,
            Tag.STATE: STATE_COMPLETE,
        }
        # the run's times are the fold's own training interval (where it was recorded), so
        # MLflow's timeline shows when folds really ran and how many at once
        began = int(fold.started * 1000) if fold.started else None
        run = self.client.create_run(
            c.experiment_id,
            start_time=began,
            tags=tags,
            run_name=f"{fold.subject} ({self._labels.get(trial_id, c.search_name)})",
        )
        stamp = int(time.time() * 1000)
        y_test = c.labels[fold.test_index]
        test_acc = (fold.test_probs.argmax(2) == y_test[None]).mean(axis=1)
        metrics = []
        for e in range(fold.epochs):
            curves = (fold.train_loss[e], fold.train_acc[e], test_acc[e])
            metrics += [
                Metric(name, float(value), stamp, e + 1)
                for name, value in zip(CURVE_METRICS, curves, strict=True)
            ]
        k = len(c.class_names)
        oracle_epoch = select_epoch(fold, "oracle", c.labels, k)
        metrics += [
            Metric(FoldMetric.FINAL_ACC, float(test_acc[-1]), stamp, 0),
            Metric(FoldMetric.ORACLE_ACC, float(test_acc[oracle_epoch]), stamp, 0),
            Metric(FoldMetric.ORACLE_EPOCH, float(oracle_epoch + 1), stamp, 0),
            Metric(FoldMetric.SECONDS, float(fold.seconds), stamp, 0),
            Metric(FoldMetric.N_TEST, float(len(fold.test_index)), stamp, 0),
            Metric(FoldMetric.N_TRAIN, float(fold.train_samples), stamp, 0),
        ]
        params = [
            Param(FoldParam.SUBJECT, fold.subject),
            Param(FoldParam.SEED, str(fold.seed)),
            Param(FoldParam.DEVICE, fold.device),
            Param(FoldParam.WORKER, fold.worker or "local"),
            Param(FoldParam.VAL_SUBJECTS, ",".join(fold.val_subjects)),
        ]
        if fold.host:
            params.append(Param(FoldParam.HOST, fold.host))
        for begin in range(0, len(metrics), 900):  # log_batch takes at most 1000 metrics
            self.client.log_batch(
                run.info.run_id,
                metrics=metrics[begin : begin + 900],
                params=params if begin == 0 else [],
            )
        ended = int((fold.started + fold.seconds) * 1000) if fold.started else None
        self.client.set_terminated(run.info.run_id, status="FINISHED", end_time=ended)

    def _log_result(self, run_id: str, trial: Any, folds: dict[str, FoldResult]) -> None:
        from mlflow.entities import Metric

        from search.space import resolve_configs

        c = self.ctx
        model_cfg, train_cfg = resolve_configs(c.base_model, c.base_train, trial.config)
        result = LosoResult(
            folds=sorted(folds.values(), key=lambda f: f.subject),
            keys=c.keys,
            subjects=c.subjects,
            labels=c.labels,
            class_names=c.class_names,
            dataset=c.dataset,
            model_cfg=model_cfg,
            train_cfg=train_cfg,
            seconds=float(sum(f.seconds for f in folds.values())),
            fold_keys=getattr(c, "folds", None),
            info={
                "search": c.search_name,
                "trial_id": trial.trial_id,
                "mlflow_run_id": run_id,
                "git_commit": c.git_commit,
                "sampled": dict(trial.config),
            },
        )
        result.check()
        stamp = int(time.time() * 1000)
        with tempfile.TemporaryDirectory(prefix="tsfmicro-trial-") as tmp:
            reports = result.save(tmp, n_boot=c.bootstrap)
            metrics = [
                Metric(OBJECTIVE, reports[c.eval_mode].to_dict()["pooled"][c.objective], stamp, 0),
                Metric(FOLD_SECONDS, result.seconds, stamp, 0),
            ]
            for mode, report in reports.items():
                metrics += _report_metrics(mode, report, stamp)
                metrics += _dataset_metrics(mode, report, stamp)
                report.per_class.to_csv(Path(tmp) / per_class_artifact(mode), index=False)
                report.per_fold.to_csv(Path(tmp) / per_subject_artifact(mode), index=False)
                _write_confusion(Path(tmp) / confusion_artifact(mode), report)
            self.client.log_batch(run_id, metrics=metrics)
            self.client.log_artifacts(run_id, tmp)
        self.client.set_tag(run_id, Tag.OPTIMISTIC_MODES, ",".join(sorted(OPTIMISTIC_MODES)))
        parts = reports[c.eval_mode].extra.get("parts")
        if parts:  # a pooled run over several datasets: the part/ metrics' datasets
            self.client.set_tag(run_id, Tag.PARTS, ",".join(parts))


def _report_metrics(mode: str, report: Any, stamp: int) -> list:
    from mlflow.entities import Metric

    out = []
    for m in METRICS:
        value = getattr(report, m)
        lo, hi = report.ci[m]
        out += [
            *(
                Metric(score_metric(mode, m) + suffix, float(v), stamp, 0)
                for suffix, v in zip(CI_SUFFIXES, (value, lo, hi), strict=True)
            ),
            Metric(fold_mean_metric(mode, m), float(report.fold_mean[m]), stamp, 0),
        ]
    for row in report.per_class.to_dict(orient="records"):
        for name in CLASS_SCORES:
            if np.isfinite(row[name]):
                out.append(
                    Metric(class_metric(mode, name, row["class"]), float(row[name]), stamp, 0)
                )
    return out


def _dataset_metrics(mode: str, report: Any, stamp: int) -> list:
    """A run over several datasets: each dataset's own ACC, UF1 and UAR in `mode`
    (held_out/<dataset>/<mode>_<metric> where folds are datasets, part/<dataset>/... for a
    pooled run's parts; schema.PER_DATASET), from the report's LosoResult.part_reports."""
    from mlflow.entities import Metric

    return [
        Metric(name(dataset, mode, m), float(scores[m]), stamp, 0)
        for key, (_, name) in PER_DATASET.items()
        for dataset, scores in report.extra.get(key, {}).items()
        for m in METRICS
    ]


def _write_confusion(path: Path, report: Any) -> None:
    path.write_text(
        json.dumps({"class_names": list(report.class_names), "matrix": report.confusion.tolist()})
    )


def _trial_error(trial: Any) -> str | None:
    """The trial's latest error text. Tune appends it to the error file in the driver's staging
    folder just before calling on_trial_recover / on_trial_error, and copies that file to the
    storage path (where `Trial.get_error` reads) only at its next sync: read the local copy."""
    path = getattr(trial, "error_file", None)
    if path:
        try:
            text = Path(path).read_text()
        except OSError:
            text = ""
        if text.strip():
            return text
    return trial.get_error()


def _last_lines(text: str, lines: int = 12) -> str:
    return "\n".join(str(text).strip().splitlines()[-lines:])
