"""Cached reads of the MLflow store for the pages.

Queries are `st.cache_data` with a time-to-live (new trials show up within TTL_S seconds, or at
once with the sidebar's reload button); the MLflow client is a `st.cache_resource`. Every
cached function takes all it reads as arguments, the tracking URI first. Failures are not
cached: `store.StoreError` propagates and the page shows its message.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from dashboards import store, tables

TTL_S = 300  # seconds; the sidebar's reload button clears the cache at once


def tracking_uri() -> str:
    """The store this dashboard reads (`-- --tracking-uri URI` or $TSFMICRO_TRACKING_URI)."""
    return store.tracking_uri(sys.argv[1:], os.environ)


def check(uri: str) -> None:
    """Fail fast on an unreachable server; raise StoreError when the store is not there.
    Not cached: a store that comes back is seen on the next rerun."""
    store.fail_fast(os.environ)
    store.probe(uri)


@st.cache_resource(show_spinner=False)
def client(uri: str) -> Any:
    return store.make_client(uri)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def experiments(uri: str) -> pd.DataFrame:
    return store.experiments(client(uri), uri)


@st.cache_data(ttl=TTL_S, show_spinner="Reading trials from MLflow ...")
def trials(uri: str) -> pd.DataFrame:
    return store.trials(client(uri), uri)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def search_runs(uri: str) -> pd.DataFrame:
    return store.search_runs(client(uri), uri)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def run_info(uri: str, run_id: str) -> dict[str, Any]:
    return store.run_info(client(uri), uri, run_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def artifact_csv(uri: str, run_id: str, path: str) -> pd.DataFrame | None:
    return store.artifact_csv(client(uri), run_id, path)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def artifact_json(uri: str, run_id: str, path: str) -> Any:
    return store.artifact_json(client(uri), run_id, path)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def fold_runs(uri: str, experiment_id: str, run_id: str) -> pd.DataFrame:
    return store.fold_runs(client(uri), uri, experiment_id, run_id)


@st.cache_data(ttl=TTL_S, show_spinner="Reading fold curves ...")
def fold_curves(uri: str, folds: tuple[tuple[str, str], ...]) -> pd.DataFrame:
    return store.fold_curves(client(uri), uri, folds)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def partial_history(uri: str, run_id: str, key: str) -> pd.DataFrame:
    return store.partial_history(client(uri), uri, run_id, key)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def registry(uri: str) -> pd.DataFrame:
    return store.registry(client(uri), uri)


@st.cache_data(ttl=600, max_entries=2, show_spinner=False)
def model_zip(uri: str, name: str, version: int) -> bytes:
    return store.model_zip(uri, name, version)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def references(path: str) -> pd.DataFrame:
    return tables.load_references(path)


@st.cache_data(ttl=TTL_S, show_spinner="Estimating parameter importance ...")
def importance(trials: pd.DataFrame, params: Sequence[str], column: str) -> tuple:
    return tables.importance(trials, list(params), column)
