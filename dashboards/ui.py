"""Layout helpers shared by the pages: plain messages instead of tracebacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from dashboards import data
from dashboards.store import StoreError

OPTIMISTIC_NOTE = (
    "**oracle** picks, for every held-out subject, the epoch that scored best on that "
    "subject's own test data; **published-oracle** is the published TSFmicro scripts' own "
    "selection (per subject an ACC epoch and a UF1 epoch chosen separately on its test data, "
    "training stopped at 100%). Both select on test data, so their scores are optimistic. "
    "**final** (the model after the fixed epoch budget) and **val** (epoch chosen on "
    "training subjects) are leak-free."
)


def table(data: Any, key: str, **options: Any) -> Any:
    """A table as every page shows one: full width, no index, and missing values as empty
    cells (Streamlit writes "None" otherwise)."""
    return st.dataframe(data, hide_index=True, width="stretch", placeholder="", key=key,
                        **options)


def read(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a data function; on a StoreError show its message and stop the page."""
    try:
        return fn(*args)
    except StoreError as exc:
        st.error(str(exc), icon=":material/cloud_off:")
        st.stop()


def store(uri: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, experiments) of the store, or a plain message and a stopped page when the
    store is missing, unreachable or holds no tsfmicro experiment."""
    read(data.check, uri)
    experiments = read(data.experiments, uri)
    if experiments.empty:
        st.info(
            f"The MLflow store at `{uri}` holds no tsfmicro experiments yet. Run a search "
            f"to fill it: `tsfmicro search --tracking-uri {uri}`.",
            icon=":material/inbox:",
        )
        st.stop()
    return read(data.trials, uri), experiments


def no_trials(experiment: str) -> None:
    st.info(f"Experiment `{experiment}` has no trial runs yet.", icon=":material/inbox:")


def pick_experiment(experiments: pd.DataFrame, key: str, default: str | None = None) -> str:
    names = experiments["experiment"].tolist()
    index = names.index(default) if default in names else 0
    return st.selectbox("Dataset / protocol (MLflow experiment)", names, index=index, key=key)
