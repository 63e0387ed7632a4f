"""Altair charts of the tables in `tables.py` (pure: data in, chart out)."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from dashboards.tables import METRIC_LABELS, STATUS_COLOURS, STATUS_TITLE
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


def parallel(
    long: pd.DataFrame, axes: Sequence[str], label: str, ticks: pd.DataFrame
) -> alt.Chart:
    """Parallel coordinates: one line per trial across the axes, coloured by its score; each
    axis labelled at a few round values (`tables.parallel_ticks`), not at every trial's, so
    that labels never overlap where trials cluster (a log axis reads 1e-4, 2e-4, 5e-4 ...)."""
    x = alt.X("axis:N", sort=list(axes), title=None,
              axis=alt.Axis(labelAngle=0, labelLimit=200, orient="top"))  # fmt: skip
    y = alt.Y("position:Q", axis=None, scale=alt.Scale(domain=[-0.04, 1.04]))
    base = alt.Chart(long).encode(
        x=x,
        y=y,
        detail="trial:N",
        color=alt.Color("score:Q", title=label, scale=alt.Scale(scheme="viridis")),
        tooltip=["trial", "axis", "value", alt.Tooltip("score:Q", format=".3f")],
    )
    marks = alt.Chart(ticks).encode(x=x, y=y)
    rules = alt.Chart(pd.DataFrame({"axis": list(axes)})).mark_rule(color="#d0d0d0").encode(x=x)
    tick_marks = marks.mark_tick(orient="horizontal", size=8, color="gray", thickness=1)
    tick_text = marks.mark_text(align="right", dx=-6, fontSize=11, color="#555").encode(
        text="text:N"
    )
    return (
        rules + base.mark_line(opacity=0.8) + base.mark_circle(size=40) + tick_marks + tick_text
    ).properties(height=340)


def intervals(table: pd.DataFrame, label: str) -> alt.Chart:
    """Each trial's score as a dot with its 95% interval as a bar, best first, coloured by
    how it compares with its search's best (`tables.intervals`: the paired tie test where it
    exists, otherwise interval overlap); the legend names the rule of each colour."""
    present = [s for s in STATUS_COLOURS if s in set(table["status"])]
    colour = alt.Color(
        "status:N",
        title=STATUS_TITLE,
        scale=alt.Scale(domain=present, range=[STATUS_COLOURS[s] for s in present]),
        legend=alt.Legend(orient="right", labelLimit=320, symbolType="stroke",
                          symbolStrokeWidth=4),  # fmt: skip
    )
    base = alt.Chart(table).encode(
        y=alt.Y("label:N", sort=table["label"].tolist(), title=None,
                axis=alt.Axis(labelLimit=220)),  # fmt: skip
        color=colour,
        tooltip=["trial", "search", "mode", "status", alt.Tooltip("value:Q", format=".3f"),
                 alt.Tooltip("lo:Q", format=".3f"), alt.Tooltip("hi:Q", format=".3f")],
    )
    bars = base.mark_rule(strokeWidth=5, opacity=0.9).encode(
        x=alt.X("lo:Q", title=f"{label} with its 95% interval", scale=SCORE,
                axis=alt.Axis(values=[i / 10 for i in range(11)], format=".1f")),
        x2="hi:Q",
    )
    dots = base.mark_point(filled=True, size=60, color="black", opacity=1).encode(
        x="value:Q", color=alt.value("black")
    )
    return (bars + dots).properties(height=alt.Step(22))


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
