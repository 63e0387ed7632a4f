"""Altair charts of the tables in `tables.py` (pure: data in, chart out)."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from dashboards.tables import METRIC_LABELS
from search.schema import CURVE_METRICS
from tsfmicro.metrics import METRICS

SCORE = alt.Scale(domain=[0, 1])


def scores_with_ci(long: pd.DataFrame) -> alt.Chart:
    """Bars of ACC, UF1, UAR per experiment with their 95% intervals."""
    base = alt.Chart(long).encode(
        x=alt.X("metric:N", title=None, sort=[METRIC_LABELS[m] for m in METRICS]),
        color=alt.Color("metric:N", legend=None),
    )
    bars = base.mark_bar().encode(
        y=alt.Y("value:Q", scale=SCORE, title="score"),
        tooltip=["experiment", "metric", alt.Tooltip("value:Q", format=".3f"),
                 alt.Tooltip("lo:Q", format=".3f"), alt.Tooltip("hi:Q", format=".3f")],
    )
    ci = base.mark_rule(color="black").encode(y="lo:Q", y2="hi:Q")
    return (bars + ci).properties(width=140, height=220).facet(
        column=alt.Column("experiment:N", title=None)
    )


def confusion_heatmap(long: pd.DataFrame, normalized: bool) -> alt.Chart:
    order = list(dict.fromkeys(long["true"]))
    title = "share of the true class" if normalized else "samples"
    base = alt.Chart(long).encode(
        x=alt.X("predicted:N", sort=order, title="predicted"),
        y=alt.Y("true:N", sort=order, title="true"),
    )
    heat = base.mark_rect().encode(
        color=alt.Color("shown:Q", title=title, scale=alt.Scale(scheme="blues")),
        tooltip=["true", "predicted", "count", alt.Tooltip("share:Q", format=".2f")],
    )
    text = base.mark_text(baseline="middle").encode(
        text=alt.Text("shown:Q", format=".2f" if normalized else "d"),
        color=alt.condition(alt.datum.share >= 0.45, alt.value("white"), alt.value("black")),
    )
    return (heat + text).properties(height=320)


def per_class_bars(table: pd.DataFrame) -> alt.Chart:
    long = table.melt(id_vars="class", value_vars=["recall", "f1"], var_name="score")
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("class:N", title=None),
        xOffset="score:N",
        y=alt.Y("value:Q", scale=SCORE, title=None),
        color="score:N",
        tooltip=["class", "score", alt.Tooltip("value:Q", format=".3f")],
    ).properties(height=260)


def per_subject_bars(table: pd.DataFrame, metric: str) -> alt.Chart:
    return alt.Chart(table).mark_bar().encode(
        x=alt.X("subject:N", sort="-y", title="held-out subject"),
        y=alt.Y(f"{metric}:Q", scale=SCORE, title=metric.upper()),
        tooltip=["subject", "n", *(alt.Tooltip(f"{m}:Q", format=".3f")
                                   for m in METRICS if m in table)],
    ).properties(height=260)


def curves(table: pd.DataFrame) -> alt.Chart:
    """Training loss, training accuracy and test-subject accuracy per epoch, a line per fold."""
    long = table.melt(id_vars=["subject", "epoch"],
                      value_vars=[c for c in CURVE_METRICS if c in table], var_name="curve")
    return alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("value:Q", title=None),
        color=alt.Color("subject:N", title="fold (held-out subject)"),
        tooltip=["subject", "epoch", "curve", alt.Tooltip("value:Q", format=".3f")],
    ).properties(width=260, height=220).facet(
        column=alt.Column("curve:N", title=None)
    ).resolve_scale(y="independent")


def best_so_far(table: pd.DataFrame, x: str, title: str, label: str) -> alt.Chart:
    axis = alt.Axis(tickMinStep=1, format="d") if x == "n" else alt.Axis()
    base = alt.Chart(table).encode(x=alt.X(f"{x}:Q", title=title, axis=axis))
    points = base.mark_circle(size=70).encode(
        y=alt.Y("value:Q", title=label),
        color=alt.Color("state:N"),
        tooltip=["n", "trial", "state", alt.Tooltip("value:Q", format=".3f"),
                 alt.Tooltip("minutes:Q", format=".1f")],
    )
    line = base.mark_line(interpolate="step-after", color="black").encode(y="best so far:Q")
    return (line + points).properties(height=260)


def parallel(long: pd.DataFrame, axes: Sequence[str], label: str) -> alt.Chart:
    """Parallel coordinates: one line per trial across the axes, coloured by its score."""
    base = alt.Chart(long).encode(
        x=alt.X("axis:N", sort=list(axes), title=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("position:Q", axis=None),
        detail="trial:N",
        color=alt.Color("score:Q", title=label, scale=alt.Scale(scheme="viridis")),
        tooltip=["trial", "axis", "value", alt.Tooltip("score:Q", format=".3f")],
    )
    ticks = alt.Chart(long).mark_text(align="left", dx=4, fontSize=10, color="gray").encode(
        x=alt.X("axis:N", sort=list(axes)), y="position:Q", text="value:N"
    )
    return (base.mark_line(opacity=0.8) + base.mark_circle(size=40) + ticks).properties(
        height=320
    )


def importance(table: pd.DataFrame, column: str) -> alt.Chart:
    return alt.Chart(table).mark_bar().encode(
        x=alt.X(f"{column}:Q", title=column),
        y=alt.Y("parameter:N", sort="-x", title=None,
                axis=alt.Axis(labelOverlap=False, labelLimit=200)),
        tooltip=["parameter", alt.Tooltip(f"{column}:Q", format=".3f")],
    ).properties(height=alt.Step(28))


def by_fusion(trials: pd.DataFrame, column: str, label: str) -> alt.Chart:
    trials = trials[["trial", "search", "fusion", column]]  # only what the chart draws
    return alt.Chart(trials).mark_circle(size=80, opacity=0.8).encode(
        x=alt.X("fusion:N", title="fusion"),
        y=alt.Y(f"{column}:Q", title=label),
        color="fusion:N",
        tooltip=["trial", "search", "fusion", alt.Tooltip(f"{column}:Q", format=".3f")],
    ).properties(height=260)


def gap(table: pd.DataFrame) -> alt.Chart:
    return alt.Chart(table).mark_bar(color="#d62728").encode(
        x=alt.X("gap (oracle - final):Q"),
        y=alt.Y("configuration:N", sort="-x", title=None,
                axis=alt.Axis(labelOverlap=False, labelLimit=600)),
        tooltip=["configuration", "trials", alt.Tooltip("final:Q", format=".3f"),
                 alt.Tooltip("oracle:Q", format=".3f"),
                 alt.Tooltip("gap (oracle - final):Q", format=".3f")],
    ).properties(height=alt.Step(24))
