"""Trials from MLflow as a ranked table (the CLI's leaderboard; the dashboard builds on it).

Reading needs only MLflow and pandas (no Ray or torch), so the dashboard starts quickly.
"""

from __future__ import annotations

import textwrap
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
    PER_DATASET,
    STATE_COMPLETE,
    Tag,
    TieMetric,
    run_filter,
    score_metric,
)
from tsfmicro.metrics import METRICS
from tsfmicro.vocab import EVAL_MODES, OPTIMISTIC_MODES

# Each trial against its search's champion (search.honest): the leaderboard's columns.
TIE_COLUMNS = (
    TieMetric.DIFF,
    TieMetric.DIFF + CI_LO,
    TieMetric.DIFF + CI_HI,
    TieMetric.SHARE,
    TieMetric.SUBJECTS,
)
TIED = "tied_with_best"  # the column: True, False, or None where the search has no estimates

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
        if not search and Tag.NESTED_IN in tags:
            # an inner search of a nested one (search.nested): scored on a subset of the
            # subjects, so not ranked with whole searches; --search <its name> shows it
            continue
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
        tied = metrics.get(TieMetric.TIED)
        row[TIED] = None if tied is None else bool(tied)
        for key in TIE_COLUMNS:
            row[key] = metrics.get(key)
        row["shuffled_labels"] = tags.get(Tag.SHUFFLED_LABELS) == "true"
        # a run over several datasets: a cross-dataset protocol's held-out (tested) datasets,
        # or a pooled run's parts, with each one's own scores
        for kind, (tag, name) in PER_DATASET.items():
            row[kind] = tags.get(tag)
            for dataset in (row[kind] or "").split(","):
                for mode in EVAL_MODES if dataset else ():
                    for m in METRICS:
                        key = name(dataset, mode, m)
                        if key in metrics:
                            row[key] = metrics[key]
        rows.append(row)
    return pd.DataFrame(rows)


# The leaderboards' per-dataset columns (schema.PER_DATASET): "held out (UF1)" for a
# cross-dataset protocol, "per part (UF1)" for a pooled run over several datasets.
DATASET_COLUMNS = {"held_out": "held out", "parts": "per part"}


def dataset_column(kind: str, metric: str) -> str:
    """The title of a per-dataset column: 'held out (UF1)', 'per part (UAR)'."""
    return f"{DATASET_COLUMNS[kind]} ({metric.upper()})"


def dataset_text(row: Any, kind: str, mode: str, metric: str) -> str:
    """A trial's datasets of `kind` (PER_DATASET: 'held_out', 'parts') with each one's own
    `mode` `metric`: 'casme2 0.412, samm 0.380' (a name alone where the score is missing);
    '' for a trial that has none (folds by subject, one dataset)."""
    names = row.get(kind)
    if not isinstance(names, str) or not names:
        return ""
    name = PER_DATASET[kind][1]
    cells = []
    for dataset in names.split(","):
        value = _value(row.get(name(dataset, mode, metric)))
        cells.append(dataset if value is None else f"{dataset} {value:.3f}")
    return ", ".join(cells)


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
        with_ties = _has_ties(board)
        # a run over several datasets: each one's own score (held out, or pooled parts)
        per_dataset = {}
        for kind in PER_DATASET:
            texts = [dataset_text(row, kind, mode, metric) for _, row in shown.iterrows()]
            width = max(map(len, texts), default=0)
            if width:
                per_dataset[kind] = (texts, max(width, len(dataset_column(kind, metric))))
        header = (
            f"{'#':>2} {'trial':<10}"
            + "".join(f"  {dataset_column(k, metric):<{w}}" for k, (_, w) in per_dataset.items())
            + "".join(f"{p[:14]:>15}" for p in params)
            + "".join(f"{m.upper():>22}" for m in METRICS)
            + (f"{'oracle UF1':>12}" if mode != "oracle" else "")
            + (f"  {'Δ vs search best [95% CI]':<31}" if with_ties else "")
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
            tie = f"  {tie_text(row)}" if with_ties else ""
            held_cell = "".join(f"  {t[rank - 1]:<{w}}" for t, w in per_dataset.values())
            lines.append(
                f"{rank:>2} {str(row['trial']):<10}{held_cell}{cells}{scores}{oracle}{tie}"
            )
        if mode != "oracle":
            lines.append(
                "oracle UF1: per-subject best-accuracy epoch (optimistic; --eval-mode "
                "published-oracle is the published scripts' own selection)"
            )
        if with_ties:
            lines.append(TIE_NOTE)
    others = board[board["state"] != STATE_COMPLETE]
    for _, row in others.iterrows():
        reason = (row.get("reason") or "").splitlines()[-1:] or [""]
        tie = ""
        if _value(row.get(TieMetric.DIFF)) is not None:
            tie = f" (on its {int(row[TieMetric.SUBJECTS])} subjects: Δ {tie_text(row)})"
        lines.append(f"   {row['trial']}: {row['state']} {reason[0][:100]}{tie}")
    return "\n".join(lines)


TIE_NOTE = (
    "Δ vs search best: the trial's objective (its search's mode and metric) minus its "
    "search champion's, paired subject bootstrap; tied: the 95% interval contains 0"
)


def _has_ties(board: pd.DataFrame) -> bool:
    return TieMetric.DIFF in board and board[TieMetric.DIFF].notna().any()


def _value(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def tie_text(row: Any) -> str:
    """'-0.031 [-0.12,+0.05] tied', '+0.000 [+0.00,+0.00] best', '' without figures."""
    diff = _value(row.get(TieMetric.DIFF))
    lo, hi = _value(row.get(TieMetric.DIFF + CI_LO)), _value(row.get(TieMetric.DIFF + CI_HI))
    if diff is None or lo is None or hi is None:
        return ""
    mark = "best" if lo == hi == diff == 0.0 else ("tied" if row.get(TIED) else "")
    return f"{diff:+.3f} [{lo:+.2f},{hi:+.2f}] {mark}".rstrip()


def board_json(board: pd.DataFrame, mode: str = "final", metric: str = "uf1") -> list[dict]:
    """The leaderboard's rows as JSON-ready dicts: complete trials ranked by `mode` `metric`,
    then the others; each with its scores, intervals and `tied_with_best`."""
    if board.empty:
        return []
    key = score_metric(mode, metric)
    complete = board[board["state"] == STATE_COMPLETE]
    if key in complete:
        complete = complete.sort_values(key, ascending=False)
    ordered = pd.concat([complete, board[board["state"] != STATE_COMPLETE]])
    rows = []
    for rank, (_, row) in enumerate(ordered.iterrows(), start=1):
        out: dict[str, Any] = {
            "rank": rank if row["state"] == STATE_COMPLETE else None,
            **{k: _plain(row.get(k)) for k in ("experiment", "search", "trial", "state",
                                                "run_id", "eval_mode", "objective_name",
                                                "objective")},
        }  # fmt: skip
        for kind in PER_DATASET:
            out[kind] = _plain(row.get(kind))
        for m in METRICS:
            name = score_metric(mode, m)
            out[m] = _value(row.get(name))
            out[f"{m}_ci"] = [_value(row.get(name + CI_LO)), _value(row.get(name + CI_HI))]
        tied = row.get(TIED)
        out[TIED] = None if tied is None or tied != tied else bool(tied)
        out["diff_vs_best"] = _value(row.get(TieMetric.DIFF))
        out["diff_vs_best_ci"] = [
            _value(row.get(TieMetric.DIFF + CI_LO)),
            _value(row.get(TieMetric.DIFF + CI_HI)),
        ]
        out["share_at_least_as_good"] = _value(row.get(TieMetric.SHARE))
        rows.append(out)
    return rows


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return _value(value)
    return None if value is None or value is pd.NA else value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def leaderboard_command(args: Any) -> int:
    """`tsfmicro leaderboard`: the ranked trials with their ties; with `--search NAME
    --honest`, the search's honest estimates recomputed (and logged) first; with `--search`
    alone, the estimates the search stored, if any. `--json FILE` writes rows and estimates.
    It only reads the store: a SQLite file that does not exist, or is not an MLflow database,
    is refused (search.stores), and what MLflow raises is one line."""
    from search.stores import require_readable, store_errors
    from tsfmicro.errors import ConfigError

    if args.honest and not args.search:
        raise ConfigError("--honest needs --search NAME: the estimates are those of one search")
    if args.bootstrap is not None and args.bootstrap < 1:
        raise ConfigError(f"--bootstrap must be at least 1, got {args.bootstrap}")
    require_readable(args.tracking_uri)
    with store_errors(args.tracking_uri):
        return _leaderboard_command(args)


def _leaderboard_command(args: Any) -> int:
    import json
    import sys

    from mlflow import MlflowClient

    from search.honest import format_report, honest_for_search, stored_for_search
    from tsfmicro.fileio import written_whole

    client = MlflowClient(args.tracking_uri)
    report, stored = None, False
    if args.honest:
        report = honest_for_search(
            args.tracking_uri,
            args.search,
            experiment=args.experiment,
            storage_path=args.storage_path,
            n_boot=args.bootstrap,
            say=lambda message: print(message, file=sys.stderr),
            client=client,
        )
    elif args.search:
        report, stored = stored_for_search(client, args.search, args.experiment), True
    board = leaderboard(args.tracking_uri, args.experiment, search=args.search, client=client)
    print(format_leaderboard(board, args.eval_mode, args.metric))
    if report:
        if stored:
            print(f"(stored with the search, computed {report.get('computed_at', '?')}; "
                  "--honest recomputes)")  # fmt: skip
        print(format_report(report))
    if args.json:
        payload = {
            "tracking_uri": args.tracking_uri,
            "experiment": args.experiment,
            "search": args.search,
            "eval_mode": args.eval_mode,
            "metric": args.metric,
            "trials": board_json(board, args.eval_mode, args.metric),
            "estimates": report["estimates"] if report else None,
            "honest": report,
        }
        with written_whole(args.json) as temp:
            temp.write_text(json.dumps(payload, indent=2, default=str))
    return 0


def format_compact_leaderboard(
    board: pd.DataFrame, mode: str = "final", metric: str = "uf1", limit: int = 20
) -> str:
    """The leaderboard a search prints at its end, about 120 columns wide for a default
    search: a column only for the hyperparameters that differ between the trials shown (the
    others on one line), the interval of the ranked metric only, and no oracle column;
    `format_leaderboard` (`tsfmicro leaderboard`) has them all. A cross-dataset board keeps
    the full layout (its held-out column), and so does a pooled run over several datasets
    (its per-part column)."""
    complete = board[board["state"] == STATE_COMPLETE] if not board.empty else board
    key = score_metric(mode, metric)
    several = any(
        kind in board.columns and bool(board[kind].fillna("").astype(str).ne("").any())
        for kind in PER_DATASET
    )
    if complete.empty or key not in complete.columns or several:
        return format_leaderboard(board, mode, metric, limit)
    shown = complete.sort_values(key, ascending=False).head(limit)
    optimistic = " -- OPTIMISTIC: selected on test subjects" if mode in OPTIMISTIC_MODES else ""
    present = [p for p in HYPERPARAMETERS if p in shown.columns and shown[p].notna().any()]
    varying = [p for p in present if len(shown) > 1 and shown[p].astype(str).nunique() > 1]
    same = [p for p in present if p not in varying]
    cells = {p: [_fmt(v) for v in shown[p]] for p in varying}
    widths = {p: max(len(p) + 1, *(len(c) + 2 for c in cells[p])) for p in varying}
    with_ties = _has_ties(board)
    name = metric.upper()
    header = (
        f"{'#':>2} {'trial':<10}"
        + "".join(f"{p:>{widths[p]}}" for p in varying)
        + "".join(
            f"{m.upper():>7}" if m != metric else f"  {name + ' [95% CI]':<17}" for m in METRICS
        )  # fmt: skip
        + (f"  Δ {name} vs best [95% CI]" if with_ties else "")
    )
    lines = [
        f"leaderboard by {mode} {name} (pooled over LOSO folds, 95% CI over subjects){optimistic}",
        header,
        "-" * len(header),
    ]
    for rank, (_, row) in enumerate(shown.iterrows(), start=1):
        scores = ""
        for m in METRICS:
            value = _value(row.get(score_metric(mode, m)))
            text = "nan" if value is None else f"{value:.3f}"
            if m == metric:
                lo = _value(row.get(score_metric(mode, m) + CI_LO))
                hi = _value(row.get(score_metric(mode, m) + CI_HI))
                interval = f" [{lo:.2f},{hi:.2f}]" if lo is not None and hi is not None else ""
                scores += f"  {text + interval:<17}"
            else:
                scores += f"{text:>7}"
        tie = f"  {tie_text(row)}" if with_ties else ""
        params = "".join(f"{cells[p][rank - 1]:>{widths[p]}}" for p in varying)
        lines.append(f"{rank:>2} {str(row['trial']):<10}{params}{scores}{tie}".rstrip())
    if same:
        first = shown.iloc[0]
        text = "same in every trial: " + ", ".join(f"{p} {_fmt(first[p])}" for p in same)
        lines += textwrap.wrap(text, 120, subsequent_indent="  ", break_on_hyphens=False)
    if with_ties:
        lines.append(
            f"Δ: the trial's {name} minus the champion's, paired subject bootstrap; tied: its "
            "95% interval contains 0"
        )
    for _, row in board[board["state"] != STATE_COMPLETE].iterrows():
        reason = (row.get("reason") or "").splitlines()[-1:] or [""]
        lines.append(f"   {row['trial']}: {row['state']} {reason[0][:90]}")
    return "\n".join(lines)
