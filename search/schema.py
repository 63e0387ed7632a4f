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


# MLflow's own experiment tag choosing its UI: the classic ML view (runs, metrics, models) for
# this value, rather than the GenAI view (traces) MLflow 3 may infer otherwise.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# The context tag of the dataset logged as each search and trial run's input: every subject is
# trained on and tested on (leave one subject out)
DATASET_CONTEXT = "loso"


# ---- run tags -----------------------------------------------------------------------------------

TAG_PREFIX = "tsfmicro."
PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own: a fold run's trial run


class Tag:
    """Names of the tags on tsfmicro runs."""

    KIND = TAG_PREFIX + "kind"  # KIND_TRIAL, KIND_FOLD, KIND_REFIT, KIND_SEARCH or KIND_OUTER
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
    # a trial run's trial number in the search's Optuna study (search.study), as
    # optuna-dashboard numbers it
    OPTUNA_TRIAL = TAG_PREFIX + "optuna_trial"
    # "true" when the search trained on permuted labels (a chance-level control); such a
    # search also has a dataset name of its own (search.data.dataset_label)
    SHUFFLED_LABELS = TAG_PREFIX + "shuffled_labels"
    STORAGE_PATH = TAG_PREFIX + "storage_path"  # a search run's Tune storage folder
    HONEST_NOTE = TAG_PREFIX + "honest_note"  # why a search run has no honest estimates
    # Nested LOSO (search.nested): "true" on a nested search's own run; on its outer fold runs
    # and on every run of its inner searches, the nested search's name and the outer fold
    # (1-based); on an outer fold run, the name of the inner search run inside it.
    NESTED = TAG_PREFIX + "nested"
    FLAT_SEARCH = TAG_PREFIX + "flat_search"  # a nested search's run: the flat search it describes
    NESTED_IN = TAG_PREFIX + "nested_in"
    OUTER_FOLD = TAG_PREFIX + "outer_fold"
    INNER_SEARCH = TAG_PREFIX + "inner_search"
    # A cross-dataset protocol's folds (tsfmicro.datasets.cross), comma-separated: the
    # dataset(s) held out / tested on (trial and fold runs; absent for subject folds)
    HELD_OUT = TAG_PREFIX + "held_out"
    # A pooled run over several datasets (the composite's 3class, megc2019): its parts,
    # comma-separated (complete trial runs), whose own scores are the part/ metrics
    PARTS = TAG_PREFIX + "parts"


KIND_TRIAL, KIND_FOLD, KIND_REFIT = "trial", "fold", "refit"
KIND_SEARCH = "search"  # one run per search: its settings and its honest estimates
KIND_OUTER = "outer"  # a nested search's outer fold: child of its search run, parent of trials
STATE_RUNNING = "running"
STATE_COMPLETE = "complete"
STATE_PRUNED = "pruned"
STATE_FAILED = "failed"
STATE_KILLED = "killed"
STATE_LOST = "lost"  # a trial the driver started but Tune's saved state never held (deleted)


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


def held_out_metric(dataset: str, mode: str, metric: str) -> str:
    """A cross-dataset trial's score on one held-out dataset alone, e.g. held_out/samm/final_uf1
    (no interval: the pooled score's interval is the trial's)."""
    return f"held_out/{dataset}/{score_metric(mode, metric)}"


def part_metric(dataset: str, mode: str, metric: str) -> str:
    """A pooled multi-dataset trial's score on one part's samples alone, e.g.
    part/smic/final_uf1 (MEGC reports these beside the pooled scores; no interval)."""
    return f"part/{dataset}/{score_metric(mode, metric)}"


# A trial's per-dataset scores (tsfmicro LosoResult.part_reports): the report's key, the tag
# that names the trial's datasets, and their metrics' names.
PER_DATASET = {"held_out": (Tag.HELD_OUT, held_out_metric), "parts": (Tag.PARTS, part_metric)}


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
    HOST = "host"  # the worker's host name (runs logged before it have only the node id)
    VAL_SUBJECTS = "val_subjects"


# ---- artifacts of a complete trial run ----------------------------------------------------------

CURVES_ARTIFACT = CURVES_FILE  # written by tsfmicro.training.evaluation.LosoResult.save


def per_class_artifact(mode: str) -> str:
    return f"per_class_{mode}.csv"


def per_subject_artifact(mode: str) -> str:
    return f"per_subject_{mode}.csv"


def confusion_artifact(mode: str) -> str:
    return f"confusion_{mode}.json"


# ---- the search run (kind KIND_SEARCH): honest estimates of the whole search --------------------

# The figures that describe a search (docs/evaluation.md): the champion's own pooled scores
# (optimistic: selected on the same folds), the BBC-CV bias-corrected estimate of the selection
# procedure, and a nested search's estimate (written by the nested search, when one is run).
FIGURE_SEARCH_BEST, FIGURE_BBC, FIGURE_NESTED = "search_best", "bbc", "nested"
FIGURES = (FIGURE_SEARCH_BEST, FIGURE_BBC, FIGURE_NESTED)
OPTIMISTIC_FIGURES = frozenset({FIGURE_SEARCH_BEST})
HONEST_ARTIFACT = "honest.json"  # every figure, every tie, the method, as JSON
SETTINGS_ARTIFACT = "search_settings.json"  # the search's settings (SearchConfig.to_dict)


def figure_metric(figure: str, metric: str) -> str:
    """A figure's score on the search run, e.g. bbc_uf1 (with CI_LO / CI_HI for its interval)."""
    return f"{figure}_{metric}"


class SearchMetric:
    """One-off metrics of a search run besides the figures."""

    N_TRIALS = "n_trials"  # trials with a run
    N_COMPLETE = "n_complete"
    N_SUBJECTS = "n_subjects"
    N_TIED = "n_tied"  # trials tied with the champion (the champion included)
    N_BOOT = "n_boot"  # subject resamples behind every interval and BBC
    BBC_SKIPPED = "bbc_skipped_resamples"  # resamples with no out-of-bag subject


class TieMetric:
    """Metrics of a trial run against its search's champion (paired subject bootstrap of
    objective(trial) - objective(champion)); written when the search's estimates are."""

    DIFF = "tie_diff"  # with CI_LO / CI_HI
    SHARE = "tie_share"  # share of resamples in which the trial is at least as good
    TIED = "tied_with_best"  # 1.0 when the difference's interval contains 0, else 0.0
    SUBJECTS = "tie_subjects"  # subjects the difference is computed on


# ---- nested LOSO (search.nested): the nested search run and its outer fold runs ----------------

# The nested search run holds figure_metric(FIGURE_NESTED, m) (with CI_LO / CI_HI) and these.
NESTED_ARTIFACT = "nested.json"  # the estimate, every outer fold's choice, the choice counts, cost
OUTER_ARTIFACT = "outer_predictions.csv"  # an outer fold run's test samples and predictions


class NestedMetric:
    """Metrics of a nested search run besides its figure: its measured cost and the cost of
    the flat search it describes (docs/search.md, Nested LOSO)."""

    OUTER_FOLDS = "outer_folds"
    SECONDS = "nested_seconds"  # wall time of every outer fold (inner search, refit, scoring)
    FOLD_SECONDS = "nested_fold_seconds"  # training time of every inner fold and refit
    FOLDS = "nested_folds"  # inner fold trainings (refits not counted)
    REFITS = "nested_refits"
    FLAT_FOLDS = "flat_folds"  # fold trainings of the flat search (trials x subjects)
    FOLD_RATIO = "fold_ratio"  # nested fold trainings / the flat search's
    # nested / flat training in sample passes per epoch (every trial trains every fold)
    PASS_RATIO = "sample_pass_ratio"


class OuterMetric:
    """Metrics of an outer fold run: the refitted champion on the outer test subjects (no
    interval: a few subjects), the inner objective it was chosen by, and what it cost."""

    INNER_OBJECTIVE = "inner_objective"
    N_TEST = "n_test"
    SECONDS = "seconds"  # the outer fold's wall time
    INNER_FOLDS = "inner_folds"
    REFIT_SECONDS = "refit_seconds"


def outer_test_metric(metric: str) -> str:
    """An outer fold run's score on its held-out subjects, e.g. test_uf1."""
    return f"test_{metric}"


class OuterParam:
    """Parameters of an outer fold run besides the chosen configuration's sampled values."""

    TEST_SUBJECTS = "test_subjects"  # comma-separated
    TRAIN_SUBJECTS = "train_subjects"
    CHOSEN_TRIAL = "chosen_trial"


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
