"""Overview: the best complete trial of every dataset and protocol, side by side."""

import streamlit as st

from dashboards import charts, data, tables, ui
from tsfmicro.metrics import METRICS
from tsfmicro.vocab import EVAL_MODES, OPTIMISTIC_MODES

uri = data.tracking_uri()
st.title("Overview")
board, experiments = ui.store(uri)
refs = ui.read(data.references, str(tables.REFERENCES))

left, right = st.columns(2)
mode = left.radio("Evaluation mode", EVAL_MODES, format_func=tables.mode_label,
                  horizontal=True, key="ov_mode")
metric = right.radio("Best by", METRICS, index=METRICS.index("uf1"),
                     format_func=tables.METRIC_LABELS.get, horizontal=True, key="ov_metric")
if mode in OPTIMISTIC_MODES:
    st.warning(ui.OPTIMISTIC_NOTE, icon=":material/warning:")

table = tables.overview(board, experiments, refs, mode, metric)
number = st.column_config.NumberColumn(format="%.3f")
shown = tables.with_details(table)
ui.table(
    shown, "ov_table", column_order=tables.overview_columns(shown, metric),
    column_config={"ACC": number, "UF1": number, "UAR": number,
                   "reported ACC (paper)": st.column_config.NumberColumn(format="%.4f"),
                   "reported by": st.column_config.TextColumn(width=220),
                   "details": st.column_config.LinkColumn(display_text="open trial")},
)
st.caption(
    f"One row per MLflow experiment: its best complete trial by {mode} "
    f"{tables.METRIC_LABELS[metric]}, with subject-bootstrap 95% intervals. 'reported ACC "
    "(paper)' is a published figure (per-subject best epochs, as the published-oracle mode "
    "selects), not a run of this service; empty where no figure is known."
)
scores = tables.overview_scores(table)
if scores.empty:
    st.info("No complete trial in this evaluation mode yet.")
else:
    st.altair_chart(charts.scores_with_ci(scores), key="ov_chart")
