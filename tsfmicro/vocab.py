"""The project's shared vocabulary: scores, evaluation modes, fold groupings and the files of a
run, named once.

Plain names with no heavy imports, so command-line parsers, the search service and the
dashboard can read them without loading torch. What the names do lives elsewhere: the modes
in `tsfmicro.training.evaluation`, the fold groupings in `tsfmicro.training.runners`.
"""

from __future__ import annotations

from typing import Literal, get_args

# The pooled scores (tsfmicro.metrics): what an inner validation split or a search maximises.
Score = Literal["uf1", "acc", "uar"]
SCORES: tuple[str, ...] = get_args(Score)

# Evaluation modes of a LOSO run (tsfmicro.training.evaluation).
EvalMode = Literal["final", "val", "oracle", "published-oracle"]
EVAL_MODES: tuple[str, ...] = get_args(EvalMode)
PUBLISHED_ORACLE = "published-oracle"
OPTIMISTIC_MODES = frozenset({"oracle", PUBLISHED_ORACLE})
# Modes whose ACC is read from other epochs than their UF1 and UAR (a run's predictions
# table says which in its acc_pred/acc_epoch columns; elsewhere they equal pred/epoch).
SEPARATE_ACC_MODES = frozenset({PUBLISHED_ORACLE})
MODE_NOTES = {
    "final": "leak-free: model at the end of the fixed epoch budget",
    "val": "leak-free: epoch chosen on an inner validation split of training subjects",
    "oracle": "OPTIMISTIC: epoch chosen per subject on that test subject's accuracy "
    "(selects on test data)",
    PUBLISHED_ORACLE: "OPTIMISTIC: the published scripts' selection: per test subject, ACC "
    "from its best-ACC epoch and UF1/UAR from its best-UF1 epoch, chosen separately, no "
    "epoch after the first one with every test sample right (selects on test data)",
}

# How the folds given to one process train together (tsfmicro.training.runners).
FoldGroup = Literal["sequential", "stacked", "streams"]
FOLD_GROUPS: tuple[str, ...] = get_args(FoldGroup)

# The files a LOSO run writes to its folder (LosoResult.save), and a search logs as artifacts.
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.parquet"
CURVES_FILE = "curves.csv"
EPOCH_PROBS_FILE = "epoch_probs.npz"
