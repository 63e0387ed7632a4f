"""Trials from MLflow as a ranked table (the CLI's leaderboard; the dashboard builds on it).

Reading needs only MLflow and pandas (no Ray or torch), so the dashboard starts quickly.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from search.schema import (
    CI_HI,
    CI_LO,
    CI_SUFFIXES,
    EXPERIMENT_PREFIX,
    FOLD_SECONDS,
    KIND_TRIAL,
    OBJECTIVE,
    STATE_COMPLETE,
    Tag,
    run_filter,
    score_metric,
)
from tsfmicro.metrics import METRICS
from tsfmicro.vocab import EVAL_MODES, OPTIMISTIC_MODES

HYPERPARAMETERS = (
    "temporal_depth",
    "spatial_depth",
    "fusion",
    "lr",
    "weight_decay",
    "batch_size",
    "epochs",
    "class_weighting",
    "temporal_mixer",
)


def leaderboard(
    tracking_uri: str,
    experiment: str | None = None,
    search: str | None = None,
    client: Any = None,
) -> pd.DataFrame:
    """One row per trial run: identity, state, hyperparameters (the usual ones and whatever
    the run's search searched) and pooled metrics with their subject-bootstrap intervals for
    every evaluation mode. `client`: an MlflowClient to reuse (default: a new one)."""
    if client is None:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri)
    if experiment:
        found = client.get_experiment_by_name(experiment)
        experiments = [found] if found else []
    else:
        experiments = [
            e for e in client.search_experiments() if e.name.startswith(EXPERIMENT_PREFIX)
        ]
    if not experiments:
        return pd.DataFrame()
    names = {e.experiment_id: e.name for e in experiments}
    wanted = {Tag.KIND: KIND_TRIAL}
    if search:
        wanted[Tag.SEARCH] = search
    where = run_filter(wanted)
    runs = client.search_runs(list(names), filter_string=where, max_results=50000)
    rows = []
    for run in runs:
        tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
        row: dict[str, Any] = {
            "experiment": names[run.info.experiment_id],
            "experiment_id": run.info.experiment_id,
            "dataset": tags.get(Tag.DATASET),
            "protocol": tags.get(Tag.PROTOCOL),
            "search": tags.get(Tag.SEARCH),
            "trial": tags.get(Tag.TRIAL_ID),
            "state": tags.get(Tag.STATE, run.info.status.lower()),
            "status": run.info.status,
            "reason": tags.get(Tag.REASON),
            "started": pd.to_datetime(run.info.start_time, unit="ms", utc=True),
            "ended": pd.to_datetime(run.info.end_time, unit="ms", utc=True),
            "run_id": run.info.run_id,
            "eval_mode": tags.get(Tag.EVAL_MODE),
            "objective_name": tags.get(Tag.OBJECTIVE),
            "preset": tags.get(Tag.PRESET),
            "git_commit": tags.get(Tag.GIT_COMMIT),
            "searched": tags.get(Tag.SEARCHED, ""),
            "objective": metrics.get(OBJECTIVE),
        }
        searched = [p for p in row["searched"].split(",") if p]
        for name in dict.fromkeys([*HYPERPARAMETERS, *searched]):
            if name in params:
                row[name] = _number(params[name])
        for mode in EVAL_MODES:
            for m in METRICS:
                for suffix in CI_SUFFIXES:
                    key = score_metric(mode, m) + suffix
                    if key in metrics:
                        row[key] = metrics[key]
        row[FOLD_SECONDS] = metrics.get(FOLD_SECONDS)
        rows.append(row)
    return pd.DataFrame(rows)


def _number(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def format_leaderboard(
    board: pd.DataFrame, mode: str = "final", metric: str = "uf1", limit: int = 20
) -> str:
    """A plain-text leaderboard ranked by `mode` `metric` (complete trials first)."""
    if board.empty:
        return "no trials found"
    key = score_metric(mode, metric)
    complete = board[board["state"] == STATE_COMPLETE]
    optimistic = " -- OPTIMISTIC: selected on test subjects" if mode in OPTIMISTIC_MODES else ""
    lines = [
        f"leaderboard by {mode} {metric.upper()} (pooled over LOSO folds, 95% CI over "
        f"subjects){optimistic}"
    ]
    if key not in complete.columns or complete.empty:
        lines.append("no complete trials with this metric yet")
    else:
        shown = complete.sort_values(key, ascending=False).head(limit)
        params = [p for p in HYPERPARAMETERS if p in shown.columns and shown[p].nunique() > 0]
        header = (
            f"{'#':>2} {'trial':<10}"
            + "".join(f"{p[:14]:>15}" for p in params)
            + "".join(f"{m.upper():>22}" for m in METRICS)
            + (f"{'oracle UF1':>12}" if mode != "oracle" else "")
        )
        lines += [header, "-" * len(header)]
        for rank, (_, row) in enumerate(shown.iterrows(), start=1):
            cells = "".join(f"{_fmt(row.get(p)):>15}" for p in params)
            scores = "".join(
                f"{row.get(score_metric(mode, m), float('nan')):>8.3f} "
                f"[{row.get(score_metric(mode, m) + CI_LO, float('nan')):.2f},"
                f"{row.get(score_metric(mode, m) + CI_HI, float('nan')):.2f}]"
                for m in METRICS
            )
            oracle_uf1 = row.get(score_metric("oracle", "uf1"), float("nan"))
            oracle = f"{oracle_uf1:>12.3f}" if mode != "oracle" else ""
            lines.append(f"{rank:>2} {str(row['trial']):<10}{cells}{scores}{oracle}")
        if mode != "oracle":
            lines.append(
                "oracle UF1: per-subject best epoch (optimistic, for comparison with "
                "published figures)"
            )
    others = board[board["state"] != STATE_COMPLETE]
    for _, row in others.iterrows():
        reason = (row.get("reason") or "").splitlines()[-1:] or [""]
        lines.append(f"   {row['trial']}: {row['state']} {reason[0][:100]}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)
