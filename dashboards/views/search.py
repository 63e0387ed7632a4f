"""One search: progress, hyperparameters against the score, parameter importance, fusion
types, and how much the optimistic oracle selection adds per configuration."""

import streamlit as st

from dashboards import charts, data, tables, ui
from search.schema import (
    CI_HI,
    CI_LO,
    FIGURES,
    NESTED_ARTIFACT,
    STATE_COMPLETE,
    STATE_FAILED,
    STATE_KILLED,
    STATE_PRUNED,
    figure_metric,
    score_metric,
)
from tsfmicro.metrics import METRICS
from tsfmicro.vocab import EVAL_MODES, OPTIMISTIC_MODES

uri = data.tracking_uri()
st.title("Search")
board, experiments = ui.store(uri)
if board.empty:
    st.info(f"The MLflow store at `{uri}` has no trial runs yet.")
    st.stop()

left, right = st.columns(2)
with left:  # the experiment of the latest trial first
    experiment = ui.pick_experiment(experiments, "se_experiment",
                                    board.sort_values("started")["experiment"].iloc[-1])
here = board[board["experiment"] == experiment]
if here.empty:
    ui.no_trials(experiment)
    st.stop()
latest = here.sort_values("started")["search"].iloc[-1]
search_table = ui.read(data.search_runs, uri)
experiment_id = here["experiment_id"].iloc[0]
nested_names = tables.nested_searches(search_table, experiment_id)
searches = sorted({*tables.options(here, "search"), *nested_names})
search = right.selectbox("Search", searches, index=searches.index(latest), key="se_search",
                         format_func=lambda s: f"{s} (nested)" if s in nested_names else s)
estimates, source_note = tables.side_by_side(search_table, experiment_id, search)
metric_label = tables.METRIC_LABELS


def figures_panel(metric: str) -> None:
    """Search-best, bias-corrected and nested side by side, each with its interval and what
    it means; or why there are none."""
    if estimates is None or not any(tables.has_figure(estimates, f) for f in FIGURES):
        note = (estimates or {}).get("honest_note")
        st.info(
            (f"This search has no honest estimates: {note}" if note else
             "No honest estimates are stored for this search yet (searches record them when "
             "they end).") + f" `tsfmicro leaderboard --search {search} --honest "
            f"--tracking-uri {uri}` computes them from the recorded predictions, without "
            "training.",
            icon=":material/info:",
        )  # fmt: skip
        return
    cols = st.columns(len(FIGURES))
    for col, figure in zip(cols, FIGURES, strict=True):
        name = figure_metric(figure, metric)
        with col:
            if tables.has_figure(estimates, figure):
                st.metric(tables.FIGURE_LABELS[figure], f"{estimates[name]:.3f}",
                          help=tables.FIGURE_MEANINGS[figure])  # fmt: skip
                st.caption(f"{metric_label[metric]} 95% CI "
                           f"{tables.ci_text(estimates[name + CI_LO], estimates[name + CI_HI])}. "
                           + tables.FIGURE_MEANINGS[figure])  # fmt: skip
            else:
                st.metric(tables.FIGURE_LABELS[figure], "not run",
                          help=tables.FIGURE_MEANINGS[figure])  # fmt: skip
                st.caption("Not run for this search. " + tables.FIGURE_MEANINGS[figure])
    ui.table(tables.figures(estimates), "se_figures",
             column_config={c: st.column_config.NumberColumn(format="%.3f")
                            for c in ("ACC", "UF1", "UAR")})  # fmt: skip
    st.caption(tables.figures_caption(estimates) + (" " + source_note if source_note else ""))


if search in nested_names:  # a nested search: no trials of its own, its outer folds instead
    own_metric = estimates.get("objective_name") or "uf1"
    metric = st.radio("Metric", METRICS, horizontal=True, format_func=metric_label.get,
                      index=METRICS.index(own_metric) if own_metric in METRICS else 1,
                      key="se_metric")  # fmt: skip
    st.caption(f"A nested search: {tables.NESTED_MEANING} It registers nothing; the flat "
               f"search it describes, `{estimates.get('flat_search')}`, registers the "
               "model.")  # fmt: skip
    st.subheader("How good is the configuration this search picks?")
    figures_panel(metric)
    nested = ui.read(data.artifact_json, uri, estimates["run_id"], NESTED_ARTIFACT)
    if not nested:
        st.info(f"This nested search has not finished (state {estimates.get('state')}): "
                f"`tsfmicro search --resume {search}` continues it.", icon=":material/info:")
        st.stop()
    st.subheader("Outer folds")
    ui.table(tables.outer_folds(nested), "se_outer",
             column_config={c: st.column_config.NumberColumn(format="%.3f")
                            for c in ("inner objective", "test ACC", "test UF1",
                                      "test UAR")})  # fmt: skip
    st.caption(f"Each outer fold ran the whole search on the other subjects ({nested['grouping']}),"
               " refitted its champion and scored it on the held-out subjects; the nested "
               "figure pools those predictions.")  # fmt: skip
    st.subheader("What the outer folds chose")
    ui.table(tables.choice_counts(nested), "se_choices")
    cost = nested.get("cost", {})
    if cost:
        st.caption(f"Cost: {cost['nested']['folds']} inner fold trainings and "
                   f"{cost['nested']['refits']} refits against the flat search's "
                   f"{cost['flat']['folds']} folds and 1 refit "
                   f"({cost['fold_ratio']:.1f}x the fold trainings).")  # fmt: skip
    st.stop()

trials = here[here["search"] == search]

own_mode = trials["eval_mode"].dropna().iloc[0] if trials["eval_mode"].notna().any() else "final"
own_metric = (trials["objective_name"].dropna().iloc[0]
              if trials["objective_name"].notna().any() else "uf1")
left, right = st.columns(2)
modes = [m for m in EVAL_MODES
         if score_metric(m, "acc") in trials and trials[score_metric(m, "acc")].notna().any()]
modes = modes or ["final"]
mode = left.radio("Evaluation mode", modes, horizontal=True, format_func=tables.mode_label,
                  index=modes.index(own_mode) if own_mode in modes else 0, key="se_mode")
metric = right.radio("Metric", METRICS, horizontal=True, format_func=tables.METRIC_LABELS.get,
                     index=METRICS.index(own_metric) if own_metric in METRICS else 1,
                     key="se_metric")
column, label = score_metric(mode, metric), f"{mode} {tables.METRIC_LABELS[metric]}"
if mode in OPTIMISTIC_MODES:
    st.warning(ui.OPTIMISTIC_NOTE, icon=":material/warning:")

done = tables.complete(trials)
counts = trials["state"].value_counts()
cols = st.columns(5)
cols[0].metric("trials", len(trials))
cols[1].metric(STATE_COMPLETE, int(counts.get(STATE_COMPLETE, 0)))
cols[2].metric(STATE_PRUNED, int(counts.get(STATE_PRUNED, 0)))
cols[3].metric(f"{STATE_FAILED} or {STATE_KILLED}",
               int(counts.get(STATE_FAILED, 0) + counts.get(STATE_KILLED, 0)))
best = done[column].max() if column in done and done[column].notna().any() else None
cols[4].metric(f"best {label}", "–" if best is None else f"{best:.3f}")
st.caption(f"The search optimised {own_mode} {own_metric.upper()}; preset "
           f"{trials['preset'].dropna().iloc[0] if trials['preset'].notna().any() else '?'}; "
           f"git commit {trials['git_commit'].dropna().iloc[0][:10] if trials['git_commit'].notna().any() else '?'}.")  # noqa: E501

st.subheader("How good is the configuration this search picks?")
figures_panel(metric)

st.subheader("Every complete trial with its interval")
bars = tables.intervals(tables.ranked(trials, [mode], metric), metric)
if bars.empty:
    st.info("No complete trial in this mode yet.")
else:
    st.altair_chart(charts.intervals(bars, label), key="se_intervals")
    st.caption(tables.INTERVALS_CAPTION)

st.subheader("Best so far")
progress = tables.best_so_far(trials, column)
left, right = st.columns(2)
left.altair_chart(charts.best_so_far(progress, "n", "trial (in start order)", label),
                  key="se_best_trials")
right.altair_chart(charts.best_so_far(progress, "minutes", "minutes since the search started",
                                      label), key="se_best_time")
st.caption("Dots: each trial's score (pruned and failed trials have none); line: the best "
           "complete trial so far, against trials and against the time each one ended.")

params = tables.searched_params(trials)
st.subheader("Hyperparameters against the score")
if done.empty or not params:
    st.info("No complete trial with searched parameters yet.")
else:
    long = tables.parallel(trials, params, column, label)
    ticks = tables.parallel_ticks(trials, params, column, label)
    st.altair_chart(charts.parallel(long, [*params, label], label, ticks), key="se_parallel")
    st.caption("Parallel coordinates: a line per complete trial, coloured by its score; "
               "numeric axes span the observed range (log scale where it covers 20x or more), "
               "categories are evenly spaced.")

    st.subheader("Parameter importance")
    importance, note = ui.read(data.importance, trials, tuple(params), column)
    shown = "fANOVA (Optuna)" if "fANOVA (Optuna)" in importance else "η² (variance share)"
    left, right = st.columns([1, 1])
    with left:
        ui.table(importance, "se_importance",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in importance.columns if c != "parameter"})
    right.altair_chart(charts.importance(importance, shown), key="se_importance_chart")
    st.caption(
        "How these were computed, from this page's complete trials only: **fANOVA (Optuna)**: "
        "Optuna's FanovaImportanceEvaluator (random-forest functional ANOVA, seed 0) on a "
        "study rebuilt from the trials with optuna.trial.create_trial, each parameter over its "
        "observed range; shares sum to 1. **η²**: the share of the score's variance between "
        "the groups of one parameter alone (numeric ones in 4 quantile bins), interactions "
        "ignored; empty where every group holds one trial. With a handful of trials both are "
        "rough." + (f" {note}." if note else "")
    )

st.subheader("Fusion types")
fusion = tables.fusion_comparison(trials, column)
if fusion.empty:
    st.info("No complete trial with a fusion type yet.")
else:
    left, right = st.columns([1, 1])
    with left:
        ui.table(fusion, "se_fusion",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in ("mean", "std", "median", "best")})
    right.altair_chart(charts.by_fusion(done.dropna(subset=[column]), column, label),
                       key="se_fusion_chart")

st.subheader("Oracle against final, per configuration")
gap = tables.oracle_gap(trials, params, metric)
if gap.empty:
    st.info("No complete trial has both final and oracle scores yet.")
else:
    st.metric(f"mean oracle - final {tables.METRIC_LABELS[metric]}",
              f"{gap['gap (oracle - final)'].mean():+.3f}")
    ui.table(gap, "se_gap",
             column_config={c: st.column_config.NumberColumn(format="%.3f")
                            for c in ("final", "oracle", "gap (oracle - final)")})
    st.altair_chart(charts.gap(gap), key="se_gap_chart")
    st.caption("The gap is what picking each subject's best epoch on its own test data adds: "
               "the optimism of the oracle selection, for this configuration.")

skipped = tables.not_ranked(trials)
if not skipped.empty:
    st.subheader("Not ranked")
    skipped = tables.with_details(skipped)
    ui.table(skipped, "se_not_ranked", column_order=tables.visible_columns(skipped),
             column_config={"reason": st.column_config.TextColumn(width=420),
                            "details": st.column_config.LinkColumn(display_text="open trial")})
