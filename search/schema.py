"""The MLflow schema of tsfmicro searches: every name the search service writes to MLflow and
the dashboard reads back (experiments, run tags, metrics, parameters, artifacts, registered
models).

It lives in `search/`, the package that writes the store. The dashboard is a layer above the
service (it already reads `search.leaderboard`), so `dashboards/` imports these names from here;
the library (`tsfmicro/`) never imports `search`. Importing this module imports only
`tsfmicro.vocab` (no MLflow, Ray, torch or pandas), so the dashboard and `tsfmicro --help` do
not pay for it.

The values are what stores already hold: changing one makes existing stores unreadable by the
dashboard. Add names; do not rename.
"""

from __future__ import annotations

from collections.abc import Mapping

from tsfmicro.vocab import CURVES_FILE, EVAL_MODES

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

# ---- experiments: one per dataset and protocol --------------------------------------------------

EXPERIMENT_PREFIX = "tsfmicro/"


def experiment_name(dataset: str, protocol: str) -> str:
    return f"{EXPERIMENT_PREFIX}{dataset}/{protocol}"


# ---- run tags -----------------------------------------------------------------------------------

TAG_PREFIX = "tsfmicro."
PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own: a fold run's trial run


class Tag:
    """Names of the tags on tsfmicro runs."""

    KIND = TAG_PREFIX + "kind"  # KIND_TRIAL, KIND_FOLD or KIND_REFIT
    SEARCH = TAG_PREFIX + "search"
    TRIAL_ID = TAG_PREFIX + "trial_id"
    FOLD = TAG_PREFIX + "fold"  # a fold run's held-out subject
    STATE = TAG_PREFIX + "state"  # one of the STATE_* values, or the run's status in lower case
    REASON = TAG_PREFIX + "reason"  # why a run did not complete
    PREVIOUS_REASON = TAG_PREFIX + "previous_reason"  # the reason of a run that was reopened
    LAST_RETRY_REASON = TAG_PREFIX + "last_retry_reason"
    DATASET = TAG_PREFIX + "dataset"
    PROTOCOL = TAG_PREFIX + "protocol"
    PRESET = TAG_PREFIX + "preset"
    EVAL_MODE = TAG_PREFIX + "eval_mode"
    OBJECTIVE = TAG_PREFIX + "objective"
    GIT_COMMIT = TAG_PREFIX + "git_commit"
    TRAIN_PAIRS_MOVED = TAG_PREFIX + "train_pairs_moved"
    DRIVER_HOST = TAG_PREFIX + "driver_host"
    DRIVER_PID = TAG_PREFIX + "driver_pid"
    SEARCHED = TAG_PREFIX + "searched"  # the searched parameters, comma-separated
    OPTIMISTIC_MODES = TAG_PREFIX + "optimistic_modes"  # comma-separated
    SOURCE_RUN = TAG_PREFIX + "source_run"  # a refit run's trial run


KIND_TRIAL, KIND_FOLD, KIND_REFIT = "trial", "fold", "refit"
STATE_RUNNING = "running"
STATE_COMPLETE = "complete"
STATE_PRUNED = "pruned"
STATE_FAILED = "failed"
STATE_KILLED = "killed"


def run_filter(tags: Mapping[str, str], status: str | None = None) -> str:
    """A `search_runs` filter: runs (with this status, if given) whose tags hold these values."""
    clauses = [f"attributes.status = '{status}'"] if status else []
    clauses += [f"tags.`{name}` = '{value}'" for name, value in tags.items()]
    return " and ".join(clauses)


# ---- metrics of trial runs ----------------------------------------------------------------------

OBJECTIVE = "objective"  # also the metric Tune and Optuna maximise
FOLD_SECONDS = "fold_seconds"
CI_LO, CI_HI = "_ci_lo", "_ci_hi"
CI_SUFFIXES = ("", CI_LO, CI_HI)  # a score, its interval's low and high ends
CLASS_SCORES = ("recall", "f1")  # logged per class
# What a trial reports to Tune after each fold; MLflow keeps the reports as partial_* metrics
# (step: folds done).
FOLDS_DONE, FOLDS_RESTORED, N_FOLDS = "folds_done", "folds_restored", "n_folds"
PARTIAL_PREFIX = "partial_"
# Prefixes of the per-mode scores: metrics of trial runs and tags of registered model versions.
SCORE_PREFIXES = tuple(f"{mode}_" for mode in EVAL_MODES)


def score_metric(mode: str, metric: str) -> str:
    """A pooled score, e.g. final_uf1 (a metric of trial runs, a tag of model versions)."""
    return f"{mode}_{metric}"


def fold_mean_metric(mode: str, metric: str) -> str:
    return f"{mode}_fold_mean_{metric}"


def class_metric_prefix(mode: str, score: str) -> str:
    return f"{mode}_{score}_"


def class_metric(mode: str, score: str, class_name: str) -> str:
    """A per-class score, e.g. final_recall_happiness (the class name made metric-safe)."""
    safe = "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in str(class_name))
    return class_metric_prefix(mode, score) + safe


def report_key(mode: str, metric: str) -> str:
    """A pooled score in a trial's Tune report, e.g. final/uf1."""
    return f"{mode}/{metric}"


def partial_metric(key: str) -> str:
    """The MLflow metric of a Tune report key, e.g. partial_final_uf1."""
    return PARTIAL_PREFIX + key.replace("/", "_")


# ---- fold runs ----------------------------------------------------------------------------------

CURVE_METRICS = ("train_loss", "train_acc", "test_acc")  # per epoch (step: epoch)


class FoldMetric:
    """One-off metrics of a fold run."""

    FINAL_ACC = "final_acc"
    ORACLE_ACC = "oracle_acc"
    ORACLE_EPOCH = "oracle_epoch"  # 1-based
    SECONDS = "seconds"
    N_TEST = "n_test"
    N_TRAIN = "n_train"


class FoldParam:
    """Parameters of a fold run."""

    SUBJECT = "subject"
    SEED = "seed"
    DEVICE = "device"
    WORKER = "worker"
    VAL_SUBJECTS = "val_subjects"


# ---- artifacts of a complete trial run ----------------------------------------------------------

CURVES_ARTIFACT = CURVES_FILE  # written by tsfmicro.training.evaluation.LosoResult.save


def per_class_artifact(mode: str) -> str:
    return f"per_class_{mode}.csv"


def per_subject_artifact(mode: str) -> str:
    return f"per_subject_{mode}.csv"


def confusion_artifact(mode: str) -> str:
    return f"confusion_{mode}.json"


# ---- the model registry -------------------------------------------------------------------------

MODEL_PREFIX = "tsfmicro-"
CHAMPION = "champion"  # the alias of a registered model's best version
LOSO_PREFIX = "loso_"  # a refit run's metrics: its trial's LOSO scores
MODEL_ARTIFACT = "model"  # the logged model of a refit run
MODEL_DIR_ARTIFACT = "model_dir"  # the pyfunc's artifact that holds the model folder


class VersionTag:
    """Tags of a registered model version, besides its scores (score_metric names)."""

    EVAL_MODE = "eval_mode"
    OBJECTIVE = "objective"
    SEARCH = "search"
    TRIAL_ID = "trial_id"
    DATASET = "dataset"
    PROTOCOL = "protocol"


def model_name(dataset: str, protocol: str) -> str:
    return f"{MODEL_PREFIX}{dataset}-{protocol}"


def model_uri(name: str, version: int | str) -> str:
    return f"models:/{name}/{version}"
