"""What the pages show, as plain pandas: pure functions of the trial table and their options.

The trial table is `search.leaderboard.leaderboard()`'s: one row per trial run with its state,
hyperparameters and `<mode>_<metric>[_ci_lo|_ci_hi]` for the modes final, val, oracle and
published-oracle.
Only complete trials are results; pruned, failed, killed and running ones are listed apart
with their reason and never ranked.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from search.leaderboard import HYPERPARAMETERS, TIED, dataset_column, dataset_text
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
    FoldParam,
    SearchMetric,
    TieMetric,
    VersionTag,
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


def ci_short(lo: Any, hi: Any) -> str:
    """'0.36–0.59' (two decimals, for narrow table columns), or '' when either end is
    unknown."""
    if _missing(lo) or _missing(hi):
        return ""
    return f"{float(lo):.2f}–{float(hi):.2f}"


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
    """The leaderboard's columns, in order, for ranked trials (and reference rows); the
    intervals written short ('0.36–0.59') to keep the table within the page."""
    out = pd.DataFrame(index=rows.index)
    out["rank"] = rows.get("rank", pd.Series(pd.NA, index=rows.index)).astype("Int64")
    out["source"] = rows.get("source", pd.Series(MEASURED, index=rows.index)).fillna(MEASURED)
    out["mode"] = rows["mode"].map(mode_label)
    if "mode_text" in rows:  # reference rows say how their figure was selected
        out["mode"] = rows["mode_text"].where(rows["mode_text"].notna(), out["mode"])
    out["trial"] = rows["trial"]
    out["search"] = rows["search"]
    out[TIE_COLUMN] = [tie_cell(r) for r in rows.to_dict("records")]
    for kind, column in DATASET_COLUMNS.items():
        # a run over several datasets: a cross-dataset protocol's held-out (tested) datasets
        # (tsfmicro.datasets.cross), or a pooled run's parts (the composite, as MEGC reports
        # it), with each one's own UF1 in the row's mode
        if kind in rows and rows[kind].notna().any():
            out[column] = [
                dataset_text(r, kind, r["mode"], "uf1") if isinstance(r.get("mode"), str) else ""
                for r in rows.to_dict("records")
            ]
    for p in params:
        out[p] = rows[p] if p in rows else None
    for m in METRICS:
        label = METRIC_LABELS[m]
        out[label] = pd.to_numeric(rows[m], errors="coerce")
        out[f"{label} 95% CI"] = [
            ci_short(lo, hi) for lo, hi in zip(rows[m + CI_LO], rows[m + CI_HI], strict=True)
        ]
    out["started"] = rows["started"] if "started" in rows else pd.NaT
    out["run_id"] = rows["run_id"] if "run_id" in rows else None
    return naive_utc(out.reset_index(drop=True))


# The per-dataset columns (search.leaderboard.DATASET_COLUMNS): "held out (UF1)", "per part
# (UF1)"
DATASET_COLUMNS = {kind: dataset_column(kind, "uf1") for kind in ("held_out", "parts")}
HELD_OUT_COLUMN, PARTS_COLUMN = DATASET_COLUMNS["held_out"], DATASET_COLUMNS["parts"]


def with_details(table: pd.DataFrame) -> pd.DataFrame:
    """The table with a `details` column: the trial page's link of each row's run
    (`trial?run=<run id>`), empty for rows without a run (reported figures)."""
    out = table.copy()
    runs = out["run_id"] if "run_id" in out else pd.Series(None, index=out.index)
    out["details"] = [f"trial?run={r}" if isinstance(r, str) and r else None for r in runs]
    return out


# Columns of the trial tables (leaderboard, not ranked, overview) that stay in their data but
# not on the page: `source` (a reported figure's mode cell already says "reported: ...") and
# `run_id` (behind the details link, and on the trial page to copy).
HIDDEN_COLUMNS = ("source", "run_id")


def visible_columns(table: pd.DataFrame) -> list[str]:
    """A trial table's visible columns, in order: every column but HIDDEN_COLUMNS."""
    return [c for c in table.columns if c not in HIDDEN_COLUMNS]


CONSTANT_COLUMNS = ("mode", "search")  # named in the caption where every row shares one
# The leaderboard's column widths in pixels (a hyperparameter's comes from its name), and the
# width its table has on a 1600 px wide window (the 224 px sidebar and the page's margins
# taken off, with room for the table's borders).
LEADERBOARD_WIDTHS = {
    "rank": 36, "mode": 126, "trial": 78, "search": 80, HELD_OUT_COLUMN: 170, PARTS_COLUMN: 240,
    **{METRIC_LABELS[m]: 56 for m in METRICS},
    **{f"{METRIC_LABELS[m]} 95% CI": 84 for m in METRICS},
    "started": 124, "details": 76,
}  # fmt: skip
TIE_WIDTH = 152  # the TIE_COLUMN's: 'tied: -0.070 [-0.08, +0.00]'
LEADERBOARD_BUDGET = 1190
OPTIONAL_COLUMNS = ("started",)  # left out, in this order, where the rest needs the room


def column_width(name: str) -> int:
    """A leaderboard column's width: LEADERBOARD_WIDTHS, or for a hyperparameter enough for
    its name (its values, numbers or short words, are narrower)."""
    if name == TIE_COLUMN:
        return TIE_WIDTH
    return LEADERBOARD_WIDTHS.get(name, max(56, min(150, 7 * len(name) + 18)))


def leaderboard_columns(table: pd.DataFrame, metric: str) -> list[str]:
    """The leaderboard's visible columns (of `display`'s table), within LEADERBOARD_BUDGET
    pixels: not HIDDEN_COLUMNS; `mode` and `search` only where the rows differ in them
    (several modes or searches, or reported figures beside trials; `shared_note` names a
    single one); the 95% interval of the ranked `metric` only (the interval chart draws it;
    the trial page lists every one); and OPTIONAL_COLUMNS only where there is room."""
    shown_ci = f"{METRIC_LABELS[metric]} 95% CI"
    hide = set(HIDDEN_COLUMNS) | {f"{METRIC_LABELS[m]} 95% CI" for m in METRICS} - {shown_ci}
    hide |= {c for c in CONSTANT_COLUMNS if c in table and table[c].nunique(dropna=False) <= 1}
    shown = [c for c in table.columns if c not in hide]
    for optional in OPTIONAL_COLUMNS:
        if sum(map(column_width, shown)) > LEADERBOARD_BUDGET and optional in shown:
            shown.remove(optional)
    return shown


def shared_note(table: pd.DataFrame) -> str:
    """How the leaderboard's rows are ranked, naming what `leaderboard_columns` leaves out
    because every row shares it: ' in the final (leak-free) mode, all from search s1', or
    ' within each evaluation mode'."""
    one = {c: c in table and len(table) > 0 and table[c].nunique(dropna=False) == 1
           for c in CONSTANT_COLUMNS}  # fmt: skip
    note = (f" in the {table['mode'].iloc[0]} mode" if one["mode"]
            else " within each evaluation mode")  # fmt: skip
    return note + (f", all from search {table['search'].iloc[0]}" if one["search"] else "")


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


# ---- each trial's interval against its search's best ---------------------------------------

BEST_STATUS = "best of its search"
TIED_STATUS = "tied with it (paired bootstrap)"
NOT_TIED_STATUS = "not tied (paired bootstrap)"
OVERLAP_STATUS = "interval overlaps its interval"
APART_STATUS = "interval apart from its interval"
NO_INTERVAL = "no interval"
# The statuses in legend order, with their colours: blues where the paired test against the
# champion decides, oranges where only the intervals' overlap does.
STATUS_COLOURS = {
    BEST_STATUS: "#08306b",
    TIED_STATUS: "#4292c6",
    NOT_TIED_STATUS: "#c6dbef",
    OVERLAP_STATUS: "#f16913",
    APART_STATUS: "#fdd0a2",
    NO_INTERVAL: "#bdbdbd",
}
STATUS_TITLE = "vs its search's best"
INTERVALS_CAPTION = (
    "Each trial's score with its 95% interval, coloured by how it compares with the best "
    "trial of its search in that mode. Blue: the paired subject-bootstrap test against the "
    "search's champion (*vs search best*; the mode and metric the search optimised). Orange, "
    "where there is no such test (other modes and metrics, searches without estimates): "
    "whether the two intervals overlap, a rougher rule that says *tied* more often."
)


def _tie_rule(group: pd.DataFrame, mode: str, metric: str) -> bool:
    """Whether the paired tie test covers every row of one search's rows in one mode: the
    mode and metric are the ones the search optimised and every row has its test."""
    needed = {"eval_mode", "objective_name", TIED, TieMetric.DIFF}
    if not needed <= set(group.columns):
        return False
    return bool(
        (group["eval_mode"] == mode).all()
        and (group["objective_name"] == metric).all()
        and group[TIED].notna().all()
        and group[TieMetric.DIFF].notna().all()
    )


def intervals(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Ranked rows (`ranked`/`by_mode`, one experiment) as interval bars: per row its label
    (the trial, with the mode when there are several), `metric`'s value and interval, and its
    status against the best trial of its search in its mode: by the paired tie test where it
    covers the rows (`BEST_STATUS`, `TIED_STATUS`, `NOT_TIED_STATUS`), otherwise by interval
    overlap with that best trial's (`BEST_STATUS`, `OVERLAP_STATUS`, `APART_STATUS`), and
    the rule used ('paired test' or 'overlap')."""
    columns = ["label", "trial", "search", "mode", "value", "lo", "hi", "status", "rule"]
    if rows.empty or metric not in rows:
        return pd.DataFrame(columns=columns)
    several = rows["mode"].nunique() > 1
    out = {}
    for (_, mode), group in rows.groupby(["search", "mode"], sort=False, dropna=False):
        paired = _tie_rule(group, mode, metric)
        values = pd.to_numeric(group[metric], errors="coerce")
        top = values.idxmax() if values.notna().any() else None
        best_lo = group.at[top, metric + CI_LO] if top is not None else np.nan
        best_hi = group.at[top, metric + CI_HI] if top is not None else np.nan
        for idx, r in group.iterrows():
            lo, hi = r.get(metric + CI_LO), r.get(metric + CI_HI)
            if paired:
                zero = r[TieMetric.DIFF] == r.get(TieMetric.DIFF + CI_LO) == r.get(
                    TieMetric.DIFF + CI_HI) == 0  # fmt: skip
                status = BEST_STATUS if zero else (
                    TIED_STATUS if bool(r[TIED]) else NOT_TIED_STATUS)  # fmt: skip
            elif idx == top:
                status = BEST_STATUS
            elif any(_missing(v) for v in (lo, hi, best_lo, best_hi)):
                status = NO_INTERVAL
            else:
                overlap = float(lo) <= float(best_hi) and float(hi) >= float(best_lo)
                status = OVERLAP_STATUS if overlap else APART_STATUS
            out[idx] = {
                "label": f"{r['trial']} · {mode}" if several else str(r["trial"]),
                "trial": r["trial"], "search": r["search"], "mode": mode,
                "value": values[idx], "lo": lo, "hi": hi, "status": status,
                "rule": "paired test" if paired else "overlap",
            }  # fmt: skip
    table = pd.DataFrame([out[i] for i in rows.index], columns=columns)  # in the rows' order
    for col in ("value", "lo", "hi"):
        table[col] = pd.to_numeric(table[col], errors="coerce")
    return table


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


def references_columns(table: pd.DataFrame) -> list[str]:
    """The columns of `references_display`'s table worth showing: every one but the interval
    columns no published figure fills (the paper reports none today)."""
    return [c for c in table.columns
            if not (c.endswith("95% CI") and table[c].fillna("").eq("").all())]  # fmt: skip


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
                row[f"{METRIC_LABELS[m]} 95% CI"] = ci_short(top[m + CI_LO], top[m + CI_HI])
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


def overview_columns(table: pd.DataFrame, metric: str) -> list[str]:
    """The overview's visible columns (of `with_details(overview(...))`): not HIDDEN_COLUMNS
    nor `mode` (the one chosen on the page), the 95% interval of the chosen `metric` only,
    and the published figure's columns only where some experiment has one."""
    hide = {*HIDDEN_COLUMNS, "mode"}
    hide |= {f"{METRIC_LABELS[m]} 95% CI" for m in METRICS} - {f"{METRIC_LABELS[metric]} 95% CI"}
    for col in ("reported ACC (paper)", "reported by"):
        if col in table and table[col].isna().all():
            hide.add(col)
    return [c for c in table.columns if c not in hide]


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
    lo, hi = str(text).strip("[]").replace("–", ",").split(",")  # ci_text's or ci_short's
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


def nice_ticks(lo: float, hi: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round values within [lo, hi] one 1-2-5 step apart, at most `count` of them (whole
    numbers only when `integer`); [lo] when the range is a single value."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / max(1, count - 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    if integer:
        step = max(1.0, float(round(step)))
    first = math.ceil(lo / step - 1e-9)
    ticks = [(first + i) * step for i in range(int((hi - first * step) / step + 1e-9) + 1)]
    decimals = max(0, -math.floor(math.log10(step)))
    return [round(t, decimals + 1) for t in ticks if lo - 1e-12 <= t <= hi + 1e-12]


def log_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Values within [lo, hi] (lo > 0) on a log axis: 1, 2 and 5 times the powers of ten,
    then 1 and 3 times, then powers of ten alone (every other one, ...), whichever first gives
    at most `count` marks."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    inside = [lo * (1 - 1e-9), hi * (1 + 1e-9)]

    def marks(mantissas: tuple[int, ...], every: int = 1) -> list[float]:
        return [float(f"{m}e{e}") for e in range(first, last + 1) for m in mantissas
                if (e - first) % every == 0 and inside[0] <= m * 10.0**e <= inside[1]]  # fmt: skip

    for mantissas in ((1, 2, 5), (1, 3), (1,)):
        ticks = marks(mantissas)
        if len(ticks) <= count:
            return ticks
    every = 2
    while len(ticks := marks((1,), every)) > count:
        every += 1
    return ticks


def tick_text(ticks: Sequence[float], log: bool) -> list[str]:
    """Tick labels: on a log axis of small values `1e-4`, `2e-4` ... (no zero padding), else
    the shortest plain form of each value."""
    if log and ticks and min(ticks) < 0.01:
        parts = [f"{t:.0e}".split("e") for t in ticks]  # 1e-04: one digit, 1, 2, 3 or 5
        return [f"{mantissa}e{int(exponent)}" for mantissa, exponent in parts]
    return [f"{t:.6g}" for t in ticks]


def _axis(values: pd.Series, score: bool) -> tuple[pd.Series, pd.Series, list[tuple[float, str]]]:
    """One parallel-coordinates axis: each value's position in [0, 1], its text, and the
    axis's labelled ticks [(position, text)]. Numeric values are min-max scaled (log10 where
    they span 20x or more, except the score), categories evenly spaced, each labelled once."""
    if _numeric(values):
        v = values.astype(float)
        log = not score and _log_scaled(v)
        lo, hi = (float(v.min()), float(v.max())) if v.notna().any() else (0.0, 0.0)
        if log:
            ticks = log_ticks(lo, hi)
            scale = np.log10
        else:
            integer = bool(v.dropna().map(float.is_integer).all())
            ticks = nice_ticks(lo, hi, integer=integer)
            scale = np.asarray
        a, b = float(scale(lo)), float(scale(hi))
        span = b - a

        def where(x: Any) -> Any:
            return (scale(x) - a) / span if span > 0 else 0.5 + 0 * np.asarray(x)

        pos = pd.Series(where(v.to_numpy()), index=v.index, dtype=float)
        text = values.map(lambda x: "" if _missing(x) else f"{x:.4g}")
        marks = list(zip((float(where(t)) for t in ticks), tick_text(ticks, log), strict=True))
        if span > 0 and len(marks) < 2:  # too narrow a range for round values: its ends
            marks = [(0.0, f"{lo:.4g}"), (1.0, f"{hi:.4g}")]
        return pos, text, marks
    cats = sorted(values.dropna().astype(str).unique())
    step = 1 / (len(cats) - 1) if len(cats) > 1 else 0.0
    places = {c: (i * step if len(cats) > 1 else 0.5) for i, c in enumerate(cats)}
    return values.astype(str).map(places), values.astype(str), [(places[c], c) for c in cats]


def _parallel_axes(trials: pd.DataFrame, params: Sequence[str], column: str, label: str):
    t = complete(trials)
    t = t[t[column].notna()] if column in t else t.iloc[0:0]
    for axis in [*params, label]:
        pos, text, marks = _axis(t[column] if axis == label else t[axis], axis == label)
        yield t, axis, pos, text, marks


def parallel(trials: pd.DataFrame, params: Sequence[str], column: str, label: str) -> pd.DataFrame:
    """Parallel-coordinates data, long: one row per (trial, axis) with the axis position in
    [0, 1] (numeric axes min-max scaled, log where the range spans 20x or more; categories
    evenly spaced), the value as text, and the trial's score for the colour."""
    rows = []
    for t, axis, pos, text, _ in _parallel_axes(trials, params, column, label):
        for idx in t.index:
            rows.append({"trial": t.at[idx, "trial"], "axis": axis, "position": pos[idx],
                         "value": text[idx], "score": t.at[idx, column]})
    return pd.DataFrame(rows, columns=["trial", "axis", "position", "value", "score"])


def parallel_ticks(
    trials: pd.DataFrame, params: Sequence[str], column: str, label: str
) -> pd.DataFrame:
    """The labelled ticks of every parallel-coordinates axis (axis, position, text): a few
    round values per numeric axis (1-2-5 steps; on a log axis 1, 2 and 5 times powers of ten,
    written 1e-4), each category once, so that labels never pile up where trials cluster."""
    rows = [{"axis": axis, "position": p, "text": s}
            for _, axis, _, _, marks in _parallel_axes(trials, params, column, label)
            for p, s in marks]  # fmt: skip
    return pd.DataFrame(rows, columns=["axis", "position", "text"])


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


def fold_table(folds: pd.DataFrame) -> pd.DataFrame:
    """The fold runs as the trial page shows them: where each ran as `host` (the worker's
    host name; empty for runs logged before host names were recorded) and `Ray node` (the
    node id's first 8 characters, enough to tell nodes apart; "local" outside Ray), in
    place of the raw 56-character node id."""
    out = folds.copy()
    host = out.pop(FoldParam.HOST) if FoldParam.HOST in out else pd.Series("", index=out.index)
    node = out.pop(FoldParam.WORKER) if FoldParam.WORKER in out else pd.Series(
        "", index=out.index)  # fmt: skip
    at = out.columns.get_loc(FoldParam.SUBJECT) + 1 if FoldParam.SUBJECT in out else 0
    out.insert(at, "Ray node", ["" if _missing(n) else str(n)[:8] for n in node])
    out.insert(at, "host", ["" if _missing(h) else str(h) for h in host])
    return out


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


# ---- registered models -------------------------------------------------------------------


def registry_columns(versions: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """The versions table's visible columns among `columns` (those it has): the LOSO scores of
    the final mode and of every mode a version was chosen in, not of the others (the
    champion's scores in every mode are shown above the table)."""
    chosen = set(versions.get(VersionTag.EVAL_MODE, pd.Series(dtype=str)).dropna()) | {"final"}
    scores = {score_metric(mode, m) for mode in EVAL_MODES for m in METRICS}
    wanted = {score_metric(mode, m) for mode in chosen for m in METRICS}
    return [c for c in columns if c in versions and (c not in scores or c in wanted)]


MODEL_INPUT = ("onset_path", "apex_path")  # the pyfunc's input columns (search.mlflow_model)
SERVE_PORT = 5001  # not MLflow's default 5000, which a tracking server often holds


def load_code(name: str, version: int | str, uri: str) -> dict[str, str]:
    """The code that loads version `version` of registered model `name` from the store at
    `uri`, three ways: `python` (mlflow.pyfunc.load_model and a prediction), `pull`
    (`tsfmicro pull NAME/VERSION`, then `tsfmicro predict` on the folder it writes) and
    `serve` (`mlflow models serve` in the environment the version rebuilds from its own
    requirements with uv, and a request to it)."""
    model = f"models:/{name}/{version}"
    spec = f"{name}/{version}"
    folder = f"models/{name}_v{version}"  # where `tsfmicro pull` puts it (search.cli.run_pull)
    first, second = MODEL_INPUT
    python = (
        "import mlflow\n"
        "import pandas as pd\n\n"
        f"mlflow.set_tracking_uri({json.dumps(uri)})\n"
        f"model = mlflow.pyfunc.load_model({json.dumps(model)})\n"
        f'pairs = pd.DataFrame({{"{first}": ["onset.jpg"], "{second}": ["apex.jpg"]}})\n'
        "print(model.predict(pairs))  # a probability per class, and the label"
    )
    pull = (
        f"tsfmicro pull {shlex.quote(spec)} --tracking-uri {shlex.quote(uri)}\n"
        f"tsfmicro predict --model {shlex.quote(folder)} --onset onset.jpg --apex apex.jpg"
    )
    body = json.dumps({"dataframe_split": {"columns": list(MODEL_INPUT),
                                           "data": [["onset.jpg", "apex.jpg"]]}})
    serve = (
        f"MLFLOW_TRACKING_URI={shlex.quote(uri)} \\\n"
        f"  mlflow models serve -m {shlex.quote(model)} --env-manager uv --port {SERVE_PORT}\n"
        f"curl -s http://127.0.0.1:{SERVE_PORT}/invocations "
        "-H 'Content-Type: application/json' \\\n"
        f"  -d {shlex.quote(body)}"
    )
    return {"python": python, "pull": pull, "serve": serve}
