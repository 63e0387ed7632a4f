"""What the pages show, as plain pandas: pure functions of the trial table and their options.

The trial table is `search.leaderboard.leaderboard()`'s: one row per trial run with its state,
hyperparameters and `<mode>_<metric>[_ci_lo|_ci_hi]` for the modes final, val and oracle.
Only complete trials are results; pruned, failed, killed and running ones are listed apart
with their reason and never ranked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from search.leaderboard import HYPERPARAMETERS, TIED
from search.schema import (
    CI_HI,
    CI_LO,
    CI_SUFFIXES,
    CLASS_SCORES,
    FIGURE_BBC,
    FIGURE_NESTED,
    FIGURE_SEARCH_BEST,
    FIGURES,
    OPTIMISTIC_FIGURES,
    STATE_COMPLETE,
    SearchMetric,
    TieMetric,
    class_metric_prefix,
    figure_metric,
    fold_mean_metric,
    score_metric,
)
from tsfmicro.metrics import METRICS
from tsfmicro.vocab import EVAL_MODES, OPTIMISTIC_MODES

MODE_LABELS = {
    mode: f"{mode} ⚠ optimistic" if mode in OPTIMISTIC_MODES else f"{mode} (leak-free)"
    for mode in EVAL_MODES
}
METRIC_LABELS = {"acc": "ACC", "uf1": "UF1", "uar": "UAR"}
MEASURED = "measured here"
REPORTED = "reported figure"
REFERENCES = Path(__file__).with_name("references.csv")
# A score and its interval's ends, per metric: `acc`, `acc_ci_lo`, `acc_ci_hi`, `uf1` ...
SCORE_COLUMNS = tuple(m + s for m in METRICS for s in CI_SUFFIXES)
REFERENCE_COLUMNS = (
    "dataset", "protocol", "method", "fusion", "selection", *SCORE_COLUMNS, "source", "note",
)  # fmt: skip


def naive_utc(table: pd.DataFrame) -> pd.DataFrame:
    """Time-zone-aware columns as naive UTC (the column titles say UTC), as tables render
    them without a deprecated conversion."""
    out = table.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def mode_label(mode: str) -> str:
    return MODE_LABELS.get(mode, mode)


def ci_text(lo: Any, hi: Any) -> str:
    """'[0.36, 0.59]', or '' when either end is unknown."""
    if _missing(lo) or _missing(hi):
        return ""
    return f"[{float(lo):.3f}, {float(hi):.3f}]"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def last_line(text: Any, width: int = 200) -> str:
    if _missing(text) or not str(text).strip():
        return ""
    return str(text).strip().splitlines()[-1][:width]


# ---- the trial table -----------------------------------------------------------------------


def complete(board: pd.DataFrame) -> pd.DataFrame:
    """The trials that are results: state complete."""
    if board.empty or "state" not in board:
        return board.iloc[0:0]
    return board[board["state"] == STATE_COMPLETE]


def not_ranked(board: pd.DataFrame) -> pd.DataFrame:
    """Pruned, failed, killed and running trials: not results; with the last line of the
    reason each was stopped."""
    columns = ["dataset", "protocol", "search", "trial", "state", "reason", "started", "run_id"]
    if board.empty or "state" not in board:
        return pd.DataFrame(columns=columns)
    out = board[board["state"] != STATE_COMPLETE].copy()
    out["reason"] = out["reason"].map(last_line) if "reason" in out else ""
    return naive_utc(out[columns].sort_values("started", ascending=False, ignore_index=True))


def options(board: pd.DataFrame, column: str) -> list:
    """The distinct non-empty values of a column, sorted (for filter widgets)."""
    if board.empty or column not in board:
        return []
    return sorted({v for v in board[column].dropna().tolist() if v != ""}, key=str)


def date_bounds(board: pd.DataFrame) -> tuple[date, date] | None:
    if board.empty or "started" not in board or board["started"].isna().all():
        return None
    started = board["started"].dropna()
    return started.min().date(), started.max().date()


def filter_trials(
    board: pd.DataFrame,
    *,
    experiments: Sequence[str] | None = None,
    searches: Sequence[str] | None = None,
    fusions: Sequence[str] | None = None,
    dates: tuple[date, date] | None = None,
) -> pd.DataFrame:
    """Trials of the chosen experiments, searches and fusion types, started within `dates`
    (inclusive, UTC days). None (or empty) means no filter on that field."""
    if board.empty:
        return board
    keep = pd.Series(True, index=board.index)
    if experiments:
        keep &= board["experiment"].isin(list(experiments))
    if searches:
        keep &= board["search"].isin(list(searches))
    if fusions and "fusion" in board:
        keep &= board["fusion"].isin(list(fusions))
    if dates:
        day = board["started"].dt.date
        keep &= (day >= dates[0]) & (day <= dates[1])
    return board[keep]


def by_mode(board: pd.DataFrame, modes: Sequence[str]) -> pd.DataFrame:
    """One row per (complete trial, mode) that has the mode's scores: the mode's ACC, UF1, UAR
    and intervals as plain `acc`, `acc_ci_lo`, ... columns, plus `mode` and `optimistic`."""
    trials = complete(board)
    parts = []
    for mode in modes:
        key = score_metric(mode, METRICS[0])
        if key not in trials:
            continue
        rows = trials[trials[key].notna()].copy()
        for col in SCORE_COLUMNS:
            rows[col] = rows.get(score_metric(mode, col), np.nan)
        rows["mode"] = mode
        rows["optimistic"] = mode in OPTIMISTIC_MODES
        parts.append(rows)
    if not parts:
        return pd.DataFrame(columns=[*board.columns, *SCORE_COLUMNS, "mode", "optimistic"])
    return pd.concat(parts, ignore_index=True)


def ranked(board: pd.DataFrame, modes: Sequence[str], metric: str) -> pd.DataFrame:
    """Complete trials ranked by `metric` (higher first) within each dataset, protocol and
    evaluation mode; rank 1 is the best."""
    rows = by_mode(board, modes)
    if rows.empty:
        return rows.assign(rank=pd.Series(dtype="Int64"))
    order = {m: i for i, m in enumerate(EVAL_MODES)}
    rows["_mode_order"] = rows["mode"].map(order)
    rows = rows.sort_values(
        ["dataset", "protocol", "_mode_order", metric, "started"],
        ascending=[True, True, True, False, True],
        ignore_index=True,
    )
    rows["rank"] = (rows.groupby(["dataset", "protocol", "mode"]).cumcount() + 1).astype("Int64")
    return rows.drop(columns="_mode_order")


def shown_params(board: pd.DataFrame) -> list[str]:
    """Hyperparameter columns worth a column: the usual ones and every searched one, where
    they vary or are searched."""
    if board.empty:
        return []
    searched = set()
    for text in board.get("searched", pd.Series(dtype=str)).dropna():
        searched.update(p for p in str(text).split(",") if p)
    names = list(dict.fromkeys([*HYPERPARAMETERS, *sorted(searched)]))
    return [
        n for n in names if n in board and (n in searched or board[n].nunique(dropna=True) > 1)
    ]


def display(rows: pd.DataFrame, params: Sequence[str]) -> pd.DataFrame:
    """The leaderboard's columns, in order, for ranked trials (and reference rows)."""
    out = pd.DataFrame(index=rows.index)
    out["rank"] = rows.get("rank", pd.Series(pd.NA, index=rows.index)).astype("Int64")
    out["source"] = rows.get("source", pd.Series(MEASURED, index=rows.index)).fillna(MEASURED)
    out["mode"] = rows["mode"].map(mode_label)
    if "mode_text" in rows:  # reference rows say how their figure was selected
        out["mode"] = rows["mode_text"].where(rows["mode_text"].notna(), out["mode"])
    out["trial"] = rows["trial"]
    out["search"] = rows["search"]
    out[TIE_COLUMN] = [tie_cell(r) for r in rows.to_dict("records")]
    for p in params:
        out[p] = rows[p] if p in rows else None
    for m in METRICS:
        label = METRIC_LABELS[m]
        out[label] = pd.to_numeric(rows[m], errors="coerce")
        out[f"{label} 95% CI"] = [
            ci_text(lo, hi) for lo, hi in zip(rows[m + CI_LO], rows[m + CI_HI], strict=True)
        ]
    out["started"] = rows["started"] if "started" in rows else pd.NaT
    out["run_id"] = rows["run_id"] if "run_id" in rows else None
    return naive_utc(out.reset_index(drop=True))


# ---- ties with the search's champion and the search's honest estimates ----------------------

TIE_COLUMN = "vs search best"  # the leaderboard's mark of trials tied with their champion
TIE_CAPTION = (
    "*vs search best*: the trial's objective minus its search champion's (in the mode and "
    "metric the search optimised; paired subject bootstrap, 95% interval). **tied**: the "
    "interval contains 0, so the data cannot tell the trial from the champion."
)
FIGURE_LABELS = {
    FIGURE_SEARCH_BEST: "search-best ⚠ optimistic",
    FIGURE_BBC: "bias-corrected (BBC-CV)",
    FIGURE_NESTED: "nested",
}
FIGURE_MEANINGS = {
    FIGURE_SEARCH_BEST: "The champion's own pooled score: chosen on the same folds it is "
    "scored on, so it is biased up, the more the more trials were tried.",
    FIGURE_BBC: "What the search's way of picking a configuration achieves on new subjects: "
    "the pick redone on resampled subjects and scored on the left-out ones (Tsamardinos et "
    "al. 2018); the figure to report.",
    FIGURE_NESTED: "An outer LOSO loop around the whole search, each held-out subject "
    "scoring a search run without it: the reference estimate, at many times the cost.",
}


NESTED_MEANING = (
    "its figure is the performance of the whole search procedure (sample configurations, "
    "choose the inner LOSO champion, refit it) on subjects that took no part in any choice, "
    "not the performance of one configuration; each outer fold may choose another."
)


def tie_cell(row: dict[str, Any]) -> str:
    """'best', 'tied: -0.031 [-0.12, +0.05]' or 'below: ...' for a trial row in the mode
    its search optimised; '' otherwise (other modes, reference rows, no estimates)."""
    if row.get("mode") != row.get("eval_mode"):
        return ""
    diff, lo, hi = (row.get(TieMetric.DIFF), row.get(TieMetric.DIFF + CI_LO),
                    row.get(TieMetric.DIFF + CI_HI))  # fmt: skip
    if any(_missing(v) for v in (diff, lo, hi)):
        return ""
    if diff == lo == hi == 0:
        return "best"
    word = "tied" if row.get(TIED) is True else "below" if diff < 0 else "above"
    return f"{word}: {diff:+.3f} [{lo:+.2f}, {hi:+.2f}]"


def search_row(search_runs: pd.DataFrame, experiment_id: str, search: str) -> dict | None:
    """The search run of one search (its honest estimates), or None."""
    if search_runs.empty:
        return None
    hit = search_runs[(search_runs["experiment_id"] == experiment_id)
                      & (search_runs["search"] == search)]  # fmt: skip
    return None if hit.empty else hit.sort_values("started").iloc[0].to_dict()


def nested_searches(search_runs: pd.DataFrame, experiment_id: str) -> list[str]:
    """The nested searches of an experiment (they have no trial runs of their own)."""
    if search_runs.empty or "nested" not in search_runs:
        return []
    hit = search_runs[(search_runs["experiment_id"] == experiment_id)
                      & search_runs["nested"].fillna(False).astype(bool)]  # fmt: skip
    return sorted(hit["search"].dropna().unique().tolist())


def side_by_side(
    search_runs: pd.DataFrame, experiment_id: str, search: str
) -> tuple[dict | None, str]:
    """A search's run with the figures of its counterpart filled in: for a flat search, the
    nested figure of the nested search that describes it (its flat_search tag names this
    search); for a nested search, the search-best and BBC figures of its flat search. Returns
    the row (None without a search run) and a sentence naming where each figure came from."""
    row = search_row(search_runs, experiment_id, search)
    if row is None:
        return None, ""
    here = search_runs[search_runs["experiment_id"] == experiment_id]
    nested = bool(row.get("nested"))
    is_nested = here["nested"].fillna(False).astype(bool)
    if nested:  # its flat search: the search named in its flat_search tag
        other = here[~is_nested & (here["search"] == row.get("flat_search"))]
        taken: tuple[str, ...] = (FIGURE_SEARCH_BEST, FIGURE_BBC)
    else:  # a nested search whose flat_search tag names this one
        other = here[is_nested & (here["flat_search"] == search)]
        taken = (FIGURE_NESTED,)
    if other.empty:
        if nested:
            return row, (f"Search-best and bias-corrected belong to the flat search this nested "
                         f"one describes, `{row.get('flat_search')}`, not run in this "
                         "experiment.")  # fmt: skip
        return row, ""
    source = other.sort_values("started").iloc[-1].to_dict()
    merged = dict(row)
    for figure in taken:
        for m in METRICS:
            for suffix in ("", CI_LO, CI_HI):
                name = figure_metric(figure, m) + suffix
                merged[name] = source.get(name)
    if nested:
        note = (f"Search-best and bias-corrected: the flat search `{source['search']}` (the "
                "same settings on every subject); nested: this search.")  # fmt: skip
    else:
        note = (f"Nested: the nested search `{source['search']}`, which runs this search's "
                "settings inside an outer LOSO loop.")  # fmt: skip
    return merged, note


def outer_folds(nested: dict[str, Any]) -> pd.DataFrame:
    """A nested search's outer folds (from its nested.json): the test subjects, the trial each
    inner search chose, its inner objective, its scores on the held-out subjects and its
    configuration."""
    records = []
    for c in nested.get("chosen", []):
        rec: dict[str, Any] = {
            "outer fold": c.get("outer_fold"),
            "test subjects": ", ".join(c.get("test_subjects", [])),
            "chosen trial": c.get("trial_id"),
            "inner objective": c.get("inner_objective"),
        }
        for m in METRICS:
            rec[f"test {METRIC_LABELS[m]}"] = (c.get("test") or {}).get(m)
        rec["configuration"] = ", ".join(f"{k}={v}" for k, v in (c.get("params") or {}).items())
        records.append(rec)
    return pd.DataFrame(records)


def choice_counts(nested: dict[str, Any]) -> pd.DataFrame:
    """How often each value of each searched parameter was chosen across outer folds."""
    rows = [
        {"parameter": name, "value": value, "outer folds": count}
        for name, counts in (nested.get("choice_counts") or {}).items()
        for value, count in counts.items()
    ]
    return pd.DataFrame(rows, columns=["parameter", "value", "outer folds"])


def has_figure(row: dict | None, figure: str) -> bool:
    return row is not None and not _missing(row.get(figure_metric(figure, METRICS[0])))


def figures_caption(row: dict) -> str:
    """What the figures are over: mode, objective, resamples, subjects, trials tied."""
    text = (f"All three in the mode the search optimised ({row.get('eval_mode')}), the champion "
            f"chosen by {str(row.get('objective_name')).upper()}")  # fmt: skip
    counts = [row.get(k) for k in (SearchMetric.N_BOOT, SearchMetric.N_SUBJECTS,
                                   SearchMetric.N_TIED, SearchMetric.N_TRIALS)]  # fmt: skip
    if not any(_missing(v) for v in counts):
        n_boot, n_subjects, n_tied, n_trials = (int(v) for v in counts)
        text += (f"; intervals over {n_boot} subject resamples of {n_subjects} subjects. "
                 f"{n_tied} of {n_trials} trials are tied with the champion (their "
                 "difference's 95% interval contains 0).")  # fmt: skip
    else:
        text += "."
    if row.get("shuffled_labels"):
        text += " Labels were shuffled in this search: every honest figure should sit at chance."
    return text


def figures(row: dict | None) -> pd.DataFrame:
    """The three figures of a search side by side: one row each, ACC, UF1, UAR with their
    intervals ('' where a figure was not computed), and what it means."""
    records = []
    for figure in FIGURES:
        rec: dict[str, Any] = {"figure": FIGURE_LABELS[figure]}
        present = has_figure(row, figure)
        for m in METRICS:
            label, name = METRIC_LABELS[m], figure_metric(figure, m)
            rec[label] = float(row[name]) if present and row is not None else np.nan
            rec[f"{label} 95% CI"] = (
                ci_text(row.get(name + CI_LO), row.get(name + CI_HI))
                if present and row is not None else "not run"
            )  # fmt: skip
        rec["optimistic"] = figure in OPTIMISTIC_FIGURES
        rec["what it means"] = FIGURE_MEANINGS[figure]
        records.append(rec)
    return pd.DataFrame(records)


# ---- published reference figures -----------------------------------------------------------


def load_references(path: str | Path) -> pd.DataFrame:
    """Published figures from a CSV that cites a source per row; unknown cells stay empty.
    Scores are fractions (0.875 for 87.5%)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False, comment="#")
    missing = [c for c in REFERENCE_COLUMNS if c not in table]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    if (table["source"].str.strip() == "").any():
        raise ValueError(f"{path}: every reference row must cite its source")
    for col in SCORE_COLUMNS:
        table[col] = pd.to_numeric(table[col].replace("", None), errors="raise")
        bad = table[col].dropna()
        if ((bad < 0) | (bad > 1)).any():
            raise ValueError(f"{path}: {col} must be a fraction in [0, 1]")
    return table


def reference_rows(refs: pd.DataFrame, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Reference rows for the given (dataset, protocol) pairs, shaped like ranked rows and
    marked as reported figures."""
    if refs.empty or not pairs:
        return refs.iloc[0:0]
    wanted = refs[[(d, p) in set(pairs) for d, p in zip(refs["dataset"], refs["protocol"],
                                                        strict=True)]].copy()
    wanted["citation"] = wanted["source"]
    wanted["source"] = REPORTED
    wanted["mode"] = "reported"
    wanted["mode_text"] = "reported: " + wanted["selection"]
    wanted["trial"] = wanted["method"]
    wanted["search"] = wanted["citation"]
    wanted["rank"] = pd.NA
    wanted["started"] = pd.NaT
    wanted["run_id"] = None
    return wanted


def references_display(refs: pd.DataFrame) -> pd.DataFrame:
    """Every reference row as published: reported figures, unknown cells empty."""
    out = refs[["dataset", "protocol", "method", "fusion", "selection"]].copy()
    for m in METRICS:
        out[METRIC_LABELS[m]] = refs[m]
        out[f"{METRIC_LABELS[m]} 95% CI"] = [
            ci_text(lo, hi) for lo, hi in zip(refs[m + CI_LO], refs[m + CI_HI], strict=True)
        ]
    out["source"] = refs["source"]
    out["note"] = refs["note"]
    return out.reset_index(drop=True)


# ---- overview ------------------------------------------------------------------------------


def overview(
    board: pd.DataFrame, experiments: pd.DataFrame, refs: pd.DataFrame, mode: str, metric: str
) -> pd.DataFrame:
    """The best complete trial of each dataset and protocol by `mode` `metric`, side by side,
    with trial counts and the best reported reference figure for the same protocol."""
    best = ranked(board, [mode], metric)
    if not best.empty:
        best = best[best["rank"] == 1]
    rows = []
    for exp in experiments.itertuples():
        trials = board[board["experiment"] == exp.experiment] if not board.empty else board
        n_complete = len(complete(trials))
        hit = best[(best["dataset"] == exp.dataset) & (best["protocol"] == exp.protocol)] \
            if not best.empty else best
        row: dict[str, Any] = {
            "dataset": exp.dataset,
            "protocol": exp.protocol,
            "mode": mode_label(mode),
            "complete trials": n_complete,
            "not ranked": len(trials) - n_complete,
        }
        if hit.empty:
            row["best trial"] = "no complete trial yet" if len(trials) else "no trials yet"
        else:
            top = hit.iloc[0]
            row.update({"best trial": top["trial"], "search": top["search"],
                        "fusion": top.get("fusion")})
            for m in METRICS:
                row[METRIC_LABELS[m]] = top[m]
                row[f"{METRIC_LABELS[m]} 95% CI"] = ci_text(top[m + CI_LO], top[m + CI_HI])
            row["run_id"] = top["run_id"]
        ref = reference_rows(refs, [(exp.dataset, exp.protocol)])
        known = ref.dropna(subset=["acc"]) if not ref.empty else ref
        if not known.empty:
            top_ref = known.sort_values("acc", ascending=False).iloc[0]
            row["reported ACC (paper)"] = top_ref["acc"]
            row["reported by"] = f"{top_ref['method']}; {top_ref['citation']}"
        rows.append(row)
    columns = ["dataset", "protocol", "mode", "best trial", "search", "fusion",
               *(c for m in METRICS for c in (METRIC_LABELS[m], f"{METRIC_LABELS[m]} 95% CI")),
               "complete trials", "not ranked", "reported ACC (paper)", "reported by", "run_id"]
    return pd.DataFrame(rows, columns=columns)


def overview_scores(table: pd.DataFrame) -> pd.DataFrame:
    """The overview's scores, long (experiment, metric, value, lo, hi), for a chart."""
    rows = []
    for _, r in table.iterrows():
        for m in METRICS:
            label = METRIC_LABELS[m]
            if _missing(r.get(label)):
                continue
            lo, hi = _parse_ci(r.get(f"{label} 95% CI"))
            rows.append({"experiment": f"{r['dataset']} / {r['protocol']}", "metric": label,
                         "value": float(r[label]), "lo": lo, "hi": hi})
    return pd.DataFrame(rows, columns=["experiment", "metric", "value", "lo", "hi"])


def _parse_ci(text: Any) -> tuple[float, float]:
    if not text or _missing(text):
        return math.nan, math.nan
    lo, hi = str(text).strip("[]").split(",")
    return float(lo), float(hi)


# ---- one search ----------------------------------------------------------------------------


def best_so_far(trials: pd.DataFrame, column: str) -> pd.DataFrame:
    """Trials of one search in start order: the trial's score (complete ones only), the best
    score so far, and the minutes from the search's first start to when each trial ended."""
    columns = ["n", "trial", "state", "value", "best so far", "minutes"]
    if trials.empty:
        return pd.DataFrame(columns=columns)
    t = trials.sort_values("started", ignore_index=True)
    value = t[column].where(t["state"] == STATE_COMPLETE) if column in t else pd.Series(np.nan,
                                                                                  index=t.index)
    start = t["started"].min()
    end = t["ended"].fillna(t["started"]) if "ended" in t else t["started"]
    return pd.DataFrame({
        "n": np.arange(1, len(t) + 1),
        "trial": t["trial"],
        "state": t["state"],
        "value": value.astype(float),
        "best so far": value.astype(float).cummax().ffill(),
        "minutes": (end - start).dt.total_seconds() / 60.0,
    })


def searched_params(trials: pd.DataFrame) -> list[str]:
    """The parameters a search sampled (its runs' `searched` tag), where the table has them."""
    names: list[str] = []
    for text in trials.get("searched", pd.Series(dtype=str)).dropna():
        names += [p for p in str(text).split(",") if p]
    names = list(dict.fromkeys(names)) or [p for p in HYPERPARAMETERS if p in trials]
    return [n for n in names if n in trials and trials[n].notna().any()]


def _numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _log_scaled(series: pd.Series) -> bool:
    values = series.dropna().astype(float)
    return bool(len(values) and (values > 0).all() and values.max() / values.min() >= 20)


def parallel(trials: pd.DataFrame, params: Sequence[str], column: str, label: str) -> pd.DataFrame:
    """Parallel-coordinates data, long: one row per (trial, axis) with the axis position in
    [0, 1] (numeric axes min-max scaled, log where the range spans 20x or more; categories
    evenly spaced), the value as text, and the trial's score for the colour."""
    rows = []
    t = complete(trials)
    t = t[t[column].notna()] if column in t else t.iloc[0:0]
    axes = [*params, label]
    for axis in axes:
        values = t[column] if axis == label else t[axis]
        if _numeric(values):
            v = values.astype(float)
            if axis != label and _log_scaled(v):
                v = np.log10(v)
            span = v.max() - v.min()
            pos = (v - v.min()) / span if span > 0 else pd.Series(0.5, index=v.index)
            text = values.map(lambda x: f"{x:.4g}")
        else:
            cats = sorted(values.dropna().astype(str).unique())
            step = 1 / (len(cats) - 1) if len(cats) > 1 else 0.0
            where = {c: (i * step if len(cats) > 1 else 0.5) for i, c in enumerate(cats)}
            pos = values.astype(str).map(where)
            text = values.astype(str)
        for idx in t.index:
            rows.append({"trial": t.at[idx, "trial"], "axis": axis, "position": pos[idx],
                         "value": text[idx], "score": t.at[idx, column]})
    return pd.DataFrame(rows, columns=["trial", "axis", "position", "value", "score"])


def eta_squared(trials: pd.DataFrame, params: Sequence[str], column: str) -> dict[str, float]:
    """η² per parameter: the share of the score's variance that lies between the groups of
    that parameter alone (numeric parameters with more than 4 values in 4 quantile bins).
    Interactions are ignored; the values need not sum to 1. NaN where every group holds a
    single trial (η² would be 1 whatever the parameter does)."""
    t = complete(trials)
    t = t[t[column].notna()] if column in t else t.iloc[0:0]
    y = t[column].astype(float)
    total = float(((y - y.mean()) ** 2).sum())
    out = {}
    for p in params:
        x = t[p]
        if x.nunique(dropna=True) < 2 or total <= 0:
            out[p] = 0.0
            continue
        if _numeric(x) and x.nunique() > 4:
            groups = pd.qcut(x.astype(float), 4, labels=False, duplicates="drop")
        else:
            groups = x.astype(str)
        if groups.nunique() >= len(y):
            out[p] = math.nan
            continue
        means = y.groupby(groups).transform("mean")
        out[p] = float(((means - y.mean()) ** 2).sum() / total)
    return out


def fanova(trials: pd.DataFrame, params: Sequence[str], column: str) -> dict[str, float]:
    """Optuna's fANOVA importances (FanovaImportanceEvaluator, seed 0) of a study rebuilt from
    the complete trials with optuna.trial.create_trial; each parameter's range is the observed
    one. Raises ImportError without optuna/scikit-learn, ValueError with too few trials."""
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    t = complete(trials)
    t = t[t[column].notna()] if column in t else t.iloc[0:0]
    distributions: dict[str, Any] = {}
    for p in params:
        x = t[p].dropna()
        if x.nunique() < 2:
            continue
        if pd.api.types.is_integer_dtype(x):
            distributions[p] = IntDistribution(int(x.min()), int(x.max()))
        elif _numeric(x):
            distributions[p] = FloatDistribution(float(x.min()), float(x.max()),
                                                 log=_log_scaled(x))
        else:
            distributions[p] = CategoricalDistribution(sorted(x.astype(str).unique()))
    if len(t) < 3 or not distributions or t[column].nunique() < 2:
        raise ValueError("fANOVA needs at least 3 complete trials with different scores and "
                         "a parameter that varies")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for _, row in t.iterrows():
        values = {}
        for p, dist in distributions.items():
            if _missing(row[p]):
                break
            raw = row[p]
            values[p] = (str(raw) if isinstance(dist, CategoricalDistribution)
                         else int(raw) if isinstance(dist, IntDistribution) else float(raw))
        else:
            study.add_trial(optuna.trial.create_trial(
                params=values, distributions=distributions, value=float(row[column])))
    result = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0),
                                   normalize=True)
    return {p: float(result.get(p, 0.0)) for p in params}


def importance(trials: pd.DataFrame, params: Sequence[str], column: str) -> tuple[pd.DataFrame,
                                                                                  str]:
    """Both estimates side by side (fANOVA where it can be computed), and a note on fANOVA's
    absence when it cannot."""
    table = pd.DataFrame({"parameter": list(params)})
    table["η² (variance share)"] = table["parameter"].map(eta_squared(trials, params, column))
    note = ""
    try:
        scores = fanova(trials, params, column)
        table["fANOVA (Optuna)"] = table["parameter"].map(scores)
        table = table.sort_values("fANOVA (Optuna)", ascending=False, ignore_index=True)
    except (ImportError, ValueError, RuntimeError) as exc:
        note = f"fANOVA not computed: {exc}"
        table = table.sort_values("η² (variance share)", ascending=False, ignore_index=True)
    return table, note


def fusion_comparison(trials: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per fusion type: complete trials, mean, standard deviation, median and best score."""
    columns = ["fusion", "trials", "mean", "std", "median", "best"]
    t = complete(trials)
    if t.empty or "fusion" not in t or column not in t:
        return pd.DataFrame(columns=columns)
    g = t.dropna(subset=[column]).groupby("fusion")[column]
    out = pd.DataFrame({"trials": g.size(), "mean": g.mean(), "std": g.std(ddof=1),
                        "median": g.median(), "best": g.max()}).reset_index()
    return out.sort_values("mean", ascending=False, ignore_index=True)[columns]


def config_text(row: pd.Series, params: Sequence[str]) -> str:
    parts = []
    for p in params:
        v = row.get(p)
        parts.append(f"{p}={v:.3g}" if isinstance(v, float) else f"{p}={v}")
    return ", ".join(parts)


def oracle_gap(trials: pd.DataFrame, params: Sequence[str], metric: str) -> pd.DataFrame:
    """Per configuration (identical searched values grouped): final and oracle `metric` and
    the gap oracle - final, the optimism of picking each subject's best epoch on its test
    data. Largest gap first."""
    columns = ["configuration", "trials", "final", "oracle", "gap (oracle - final)"]
    t = complete(trials)
    f, o = score_metric("final", metric), score_metric("oracle", metric)
    if t.empty or f not in t or o not in t:
        return pd.DataFrame(columns=columns)
    t = t.dropna(subset=[f, o]).copy()
    t["configuration"] = [config_text(r, params) for _, r in t.iterrows()]
    g = t.groupby("configuration")
    out = pd.DataFrame({"trials": g.size(), "final": g[f].mean(), "oracle": g[o].mean()})
    out["gap (oracle - final)"] = out["oracle"] - out["final"]
    out = out.reset_index()
    return out.sort_values("gap (oracle - final)", ascending=False, ignore_index=True)[columns]


# ---- one trial -----------------------------------------------------------------------------


def trial_scores(metrics: dict[str, float]) -> pd.DataFrame:
    """ACC, UF1 and UAR with intervals and per-fold means for every mode the run has."""
    rows = []
    for mode in EVAL_MODES:
        if score_metric(mode, METRICS[0]) not in metrics:
            continue
        row: dict[str, Any] = {"mode": mode_label(mode)}
        for m in METRICS:
            label, key = METRIC_LABELS[m], score_metric(mode, m)
            row[label] = metrics.get(key)
            row[f"{label} 95% CI"] = ci_text(metrics.get(key + CI_LO), metrics.get(key + CI_HI))
            row[f"{label} fold mean"] = metrics.get(fold_mean_metric(mode, m))
        rows.append(row)
    return pd.DataFrame(rows)


def per_class_from_metrics(metrics: dict[str, float], mode: str) -> pd.DataFrame:
    """Per-class recall and F1 from the run's `<mode>_recall_<class>` / `<mode>_f1_<class>`
    metrics (when the per_class CSV artifact is not there)."""
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        for name in CLASS_SCORES:
            prefix = class_metric_prefix(mode, name)
            if key.startswith(prefix):
                rows.setdefault(key[len(prefix):], {})[name] = value
    return pd.DataFrame(
        [{"class": c, "recall": v.get("recall"), "f1": v.get("f1")} for c, v in rows.items()],
        columns=["class", "recall", "f1"],
    )


def params_table(params: dict[str, str], searched: Sequence[str]) -> pd.DataFrame:
    """Every parameter of the run, the searched ones first and marked."""
    rows = [{"parameter": k, "value": v, "searched": k in searched} for k, v in params.items()]
    table = pd.DataFrame(rows, columns=["parameter", "value", "searched"])
    return table.sort_values(["searched", "parameter"], ascending=[False, True],
                             ignore_index=True)


def confusion_long(confusion: dict[str, Any], normalize: bool) -> pd.DataFrame:
    """The confusion matrix, long (true, predicted, count, share of the true class)."""
    names = confusion["class_names"]
    matrix = np.asarray(confusion["matrix"], dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(totals > 0, matrix / totals, np.nan)
    rows = []
    for i, t in enumerate(names):
        for j, p in enumerate(names):
            rows.append({"true": t, "predicted": p, "count": int(matrix[i, j]),
                         "share": share[i, j],
                         "shown": share[i, j] if normalize else matrix[i, j]})
    return pd.DataFrame(rows)
