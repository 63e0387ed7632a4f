"""One trial: its scores, hyperparameters, per-class and per-subject results, confusion
matrix, training curves and MLflow run id. `?run=<run id>` opens a given trial."""

import streamlit as st

from dashboards import charts, data, store, tables, ui
from search.schema import (
    CURVES_ARTIFACT,
    FOLDS_DONE,
    OBJECTIVE,
    STATE_COMPLETE,
    Tag,
    confusion_artifact,
    partial_metric,
    per_class_artifact,
    per_subject_artifact,
    score_metric,
)
from tsfmicro.vocab import EVAL_MODES

uri = data.tracking_uri()
st.title("Trial")
board, experiments = ui.store(uri)
if board.empty:
    st.info(f"The MLflow store at `{uri}` has no trial runs yet.")
    st.stop()

wanted = st.query_params.get("run")
hit = board[board["run_id"] == wanted]
first = hit.iloc[0] if not hit.empty else None
latest = board.sort_values("started").iloc[-1]
left, middle, right = st.columns(3)
with left:
    experiment = ui.pick_experiment(experiments, "tr_experiment",
                                    (first if first is not None else latest)["experiment"])
here = board[board["experiment"] == experiment]
if here.empty:
    ui.no_trials(experiment)
    st.stop()
searches = tables.options(here, "search")
default = first["search"] if first is not None else here.sort_values("started")["search"].iloc[-1]
search = middle.selectbox("Search", searches, key="tr_search",
                          index=searches.index(default) if default in searches else 0)
runs = here[here["search"] == search].sort_values("started")
labels = {r.run_id: f"{r.trial} · {r.state}" for r in runs.itertuples()}
ids = list(labels)
run_id = right.selectbox("Trial", ids, format_func=labels.get, key="tr_run",
                         index=ids.index(wanted) if wanted in ids else 0)
st.query_params["run"] = run_id

info = ui.read(data.run_info, uri, run_id)
row = runs[runs["run_id"] == run_id].iloc[0]
tags, metrics, params = info["tags"], info["metrics"], info["params"]
state = row["state"]
st.subheader(f"Trial {row['trial']} of search {row['search']}")
st.markdown(f"MLflow run id (experiment `{experiment}`, state **{state}**):")
st.code(run_id, language=None)
link = store.ui_link(uri, info["experiment_id"], run_id)
if link:
    st.link_button("Open in the MLflow UI", link)
if state != STATE_COMPLETE:
    st.warning(f"This trial is **{state}**, not a result: "
               f"{tables.last_line(row.get('reason')) or 'no reason recorded'}")

scores = tables.trial_scores(metrics)
if not scores.empty:
    number = st.column_config.NumberColumn(format="%.3f")
    ui.table(scores, "tr_scores",
             column_config={c: number for c in scores.columns if c != "mode"
                            and "CI" not in c})
    st.caption("Pooled over the LOSO folds, 95% CI over subjects (bootstrap); 'fold mean' is "
               "the mean of per-fold scores. " + ui.OPTIMISTIC_NOTE)
modes = [m for m in EVAL_MODES if score_metric(m, "acc") in metrics] or ["final"]
default = tags.get(Tag.EVAL_MODE, "final")
mode = st.radio("Evaluation mode for the details below", modes, horizontal=True,
                index=modes.index(default) if default in modes else 0,
                format_func=tables.mode_label, key="tr_mode")

(t_params, t_class, t_confusion, t_subject, t_curves, t_folds) = st.tabs(
    ["Hyperparameters", "Per class", "Confusion matrix", "Per subject", "Training curves",
     "Folds"])
with t_params:
    searched = [p for p in tags.get(Tag.SEARCHED, "").split(",") if p]
    ui.table(tables.params_table(params, searched), "tr_params")
    st.caption("Every resolved model and training field; searched ones first.")
with t_class:
    per_class = ui.read(data.artifact_csv, uri, run_id, per_class_artifact(mode))
    if per_class is None:
        per_class = tables.per_class_from_metrics(metrics, mode)
    if per_class.empty:
        st.info("No per-class results for this trial (only complete trials have them).")
    else:
        ui.table(per_class, "tr_per_class")
        st.altair_chart(charts.per_class_bars(per_class), key="tr_per_class_chart")
with t_confusion:
    confusion = ui.read(data.artifact_json, uri, run_id, confusion_artifact(mode))
    if confusion is None:
        st.info("No confusion matrix for this trial (only complete trials have one).")
    else:
        normalized = st.toggle("Share of each true class", value=True, key="tr_normalize")
        st.altair_chart(charts.confusion_heatmap(tables.confusion_long(confusion, normalized),
                                                 normalized), key="tr_confusion")
with t_subject:
    per_subject = ui.read(data.artifact_csv, uri, run_id, per_subject_artifact(mode))
    if per_subject is None:
        st.info("No per-subject results for this trial (only complete trials have them).")
    else:
        ui.table(per_subject, "tr_per_subject")
        st.altair_chart(charts.per_subject_bars(per_subject, "uf1"), key="tr_subject_chart")
        st.caption("Each row is one LOSO fold: the held-out subject's own scores.")
folds = ui.read(data.fold_runs, uri, info["experiment_id"], run_id)
with t_curves:
    curves = ui.read(data.artifact_csv, uri, run_id, CURVES_ARTIFACT)
    if curves is None and not folds.empty:  # not complete: read the fold runs' histories
        pairs = tuple(zip(folds["subject"], folds["run_id"], strict=True))
        curves = ui.read(data.fold_curves, uri, pairs)
    if curves is None or curves.empty:
        st.info("No training curves logged for this trial yet.")
    else:
        st.altair_chart(charts.curves(curves), key="tr_curves")
        st.caption("Per epoch and fold: training loss and accuracy, and accuracy on the "
                   "held-out subject (shown for insight; the final mode never selects on it).")
with t_folds:
    if folds.empty:
        st.info("No fold runs logged for this trial yet.")
    else:
        ui.table(tables.fold_table(folds), "tr_folds")
        st.caption("One MLflow run per fold: the worker's host name (runs logged before host "
                   "names were recorded leave it empty) and the first characters of its Ray "
                   "node id.")
    partial = ui.read(data.partial_history, uri, run_id, partial_metric(OBJECTIVE))
    if len(partial) > 1:
        st.caption("The objective pooled over the folds done so far (what ASHA compares):")
        st.line_chart(partial, x=FOLDS_DONE, y=partial_metric(OBJECTIVE), height=220)
