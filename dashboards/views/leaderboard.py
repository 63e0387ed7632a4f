"""Leaderboard: complete trials ranked per dataset and protocol, with published references."""

import pandas as pd
import streamlit as st

from dashboards import charts, data, tables, ui
from tsfmicro.metrics import METRICS
from tsfmicro.vocab import EVAL_MODES, OPTIMISTIC_MODES

uri = data.tracking_uri()
st.title("Leaderboard")
board, experiments = ui.store(uri)
refs = ui.read(data.references, str(tables.REFERENCES))

with st.container(border=True):
    left, middle, right = st.columns([1, 1, 2])
    metric = left.radio("Rank by", METRICS, index=METRICS.index("uf1"),
                        format_func=tables.METRIC_LABELS.get, horizontal=True, key="lb_metric")
    modes = middle.multiselect("Evaluation mode", EVAL_MODES, default=["final"],
                               format_func=tables.mode_label, key="lb_modes")
    chosen = right.multiselect("Dataset / protocol", experiments["experiment"].tolist(),
                               placeholder="all", key="lb_experiments")
    left, middle, right = st.columns([1, 1, 2])
    searches = left.multiselect("Search", tables.options(board, "search"), placeholder="all",
                                key="lb_searches")
    fusions = middle.multiselect("Fusion", tables.options(board, "fusion"), placeholder="all",
                                 key="lb_fusions")
    bounds = tables.date_bounds(board)
    dates = None
    # Off by default, so that trials started after the page opened are never hidden.
    if bounds and right.toggle("Only trials started between ...", key="lb_date_on"):
        picked = right.date_input("Started between (UTC)", value=bounds, key="lb_dates",
                                  label_visibility="collapsed")
        dates = tuple(picked) if isinstance(picked, tuple) and len(picked) == 2 else None
    show_refs = st.toggle("Show published reference figures", value=True, key="lb_refs")

if not modes:
    st.info("Choose at least one evaluation mode.")
    st.stop()
if OPTIMISTIC_MODES.intersection(modes):
    st.warning(ui.OPTIMISTIC_NOTE, icon=":material/warning:")

shown = experiments[experiments["experiment"].isin(chosen)] if chosen else experiments
with_runs = shown["experiment"].isin(board["experiment"] if not board.empty else [])
shown = pd.concat([shown[with_runs], shown[~with_runs]])  # experiments with no runs last
filtered = tables.filter_trials(board, searches=searches, fusions=fusions, dates=dates)
rows = tables.ranked(filtered, modes, metric)
params = tables.shown_params(filtered)
label = tables.METRIC_LABELS[metric]
columns = {  # the widths keep the table within a 1600 px wide page (tables.leaderboard_columns)
    "rank": st.column_config.NumberColumn("#", format="%d"),
    tables.TIE_COLUMN: st.column_config.TextColumn(help=tables.TIE_CAPTION),
    **{tables.METRIC_LABELS[m]: st.column_config.NumberColumn(format="%.3f") for m in METRICS},
    **{f"{tables.METRIC_LABELS[m]} 95% CI": st.column_config.TextColumn(help="subject bootstrap")
       for m in METRICS},
    "started": st.column_config.DatetimeColumn("started (UTC)", format="YYYY-MM-DD HH:mm"),
    "details": st.column_config.LinkColumn("details", display_text="open trial"),
}


def sized(table: pd.DataFrame) -> dict:
    """`columns` with every visible column's width (hyperparameters' included)."""
    out = {}
    for name in tables.leaderboard_columns(table, metric):
        config = dict(columns.get(name) or st.column_config.Column())
        config["width"] = tables.column_width(name)
        out[name] = config
    return out


for exp in shown.itertuples():
    st.subheader(f"{exp.dataset} / {exp.protocol}")
    trials_here = board[board["experiment"] == exp.experiment] if not board.empty else board
    if trials_here.empty:
        ui.no_trials(exp.experiment)
        continue
    part = rows[rows["experiment"] == exp.experiment] if not rows.empty else rows
    ref = (tables.reference_rows(refs, [(exp.dataset, exp.protocol)]) if show_refs
           else refs.iloc[0:0])
    if part.empty and ref.empty:
        st.info("No complete trial matches these filters.")
        continue
    table = tables.display(pd.concat([part, ref], ignore_index=True), params)
    table = tables.with_details(table)
    ui.table(table, f"lb_table_{exp.experiment_id}", column_config=sized(table),
             column_order=tables.leaderboard_columns(table, metric))
    st.caption(
        f"{len(part)} row(s) ranked by {label}{tables.shared_note(table)}. Scores are pooled "
        "over the LOSO folds; 95% CI: subject bootstrap. " + tables.TIE_CAPTION + " "
        + ("Rows whose mode reads *reported: ...* are published numbers, not runs of this "
           "service (in full in the table of published figures below). " if not ref.empty
           else "")
    )
    bars = tables.intervals(part, metric)
    if not bars.empty:
        st.altair_chart(charts.intervals(bars, label), key=f"lb_intervals_{exp.experiment_id}")
        st.caption(tables.INTERVALS_CAPTION)

skipped = tables.not_ranked(tables.filter_trials(
    board, experiments=shown["experiment"].tolist(), searches=searches, fusions=fusions,
    dates=dates))
if not skipped.empty:
    st.subheader("Not ranked: pruned, failed, killed or running trials")
    st.caption("Their partial metrics are not results; the reason is the run's own.")
    skipped = tables.with_details(skipped)
    ui.table(skipped, "lb_not_ranked", column_order=tables.visible_columns(skipped),
             column_config={"reason": st.column_config.TextColumn(width=420),
                            "started": columns["started"], "details": columns["details"]})

if show_refs:
    st.subheader("Published reference figures")
    st.caption(
        "Reported figures, copied from the cited source and not reproduced by this service. "
        "Empty cells are figures we do not know. The TSFmicro paper picks each subject's best "
        "epochs on its test data (ACC and UF1 separately), which compares with the "
        "published-oracle mode here."
    )
    published = tables.references_display(refs)
    ui.table(published, "lb_references", column_order=tables.references_columns(published),
             column_config={"method": st.column_config.TextColumn(width=210),
                            "selection": st.column_config.TextColumn(width=200),
                            "source": st.column_config.TextColumn(width=220),
                            "note": st.column_config.TextColumn(width=240)})
