"""Reading the MLflow store the searches write to (no Streamlit here; `data.py` caches these).

Every function takes what it reads as arguments. Errors a researcher can act on (no store,
server down, nothing logged yet) become `StoreError` with a plain message; pages show it
instead of a traceback.
"""

from __future__ import annotations

import io
import json
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from search.leaderboard import leaderboard
from search.schema import (
    CI_SUFFIXES,
    CURVE_METRICS,
    DEFAULT_TRACKING_URI,
    EXPERIMENT_PREFIX,
    FIGURES,
    FOLDS_DONE,
    KIND_FOLD,
    KIND_SEARCH,
    MODEL_PREFIX,
    PARENT_RUN_TAG,
    SCORE_PREFIXES,
    FoldMetric,
    FoldParam,
    SearchMetric,
    Tag,
    figure_metric,
    model_uri,
    run_filter,
)
from tsfmicro.metrics import METRICS

URI_ENV = "TSFMICRO_TRACKING_URI"
PROBE_TIMEOUT_S = 3.0
# The fold runs' columns of the trial page, in order, after the subject.
FOLD_PARAMS = (FoldParam.HOST, FoldParam.WORKER, FoldParam.DEVICE)
FOLD_METRICS = (
    FoldMetric.FINAL_ACC,
    FoldMetric.ORACLE_ACC,
    FoldMetric.ORACLE_EPOCH,
    FoldMetric.SECONDS,
    FoldMetric.N_TEST,
)
# MlflowClient retries an unreachable server for minutes by default: the dashboard does not
# retry (the /health probe has already answered within PROBE_TIMEOUT_S), allows a slow query
# a minute, and keeps artifact downloads from drawing progress bars in its log.
FAIL_FAST_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


class StoreError(RuntimeError):
    """The store cannot answer, with a message meant for the person looking at the page."""


def tracking_uri(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """`--tracking-uri URI` after `streamlit run app.py --`, else $TSFMICRO_TRACKING_URI, else
    $MLFLOW_TRACKING_URI, else the search's default SQLite store in the working directory."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--tracking-uri" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--tracking-uri="):
            return arg.split("=", 1)[1]
    return environ.get(URI_ENV) or environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def fail_fast(environ: dict[str, str]) -> None:
    """Short HTTP timeouts, no retries and no progress bars, unless the user set them."""
    for key, value in FAIL_FAST_ENV.items():
        environ.setdefault(key, value)


def sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0])


def probe(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise StoreError, within about `timeout` seconds, when the store is not there.

    A SQLite store must exist already (opening a missing one would create an empty
    database) and be an MLflow database (a damaged file is a message, not a traceback); a
    tracking server must answer its /health endpoint."""
    path = sqlite_path(uri)
    if path is not None:
        if str(path) == ":memory:":
            return
        if not path.exists():
            raise StoreError(
                f"There is no MLflow store at `{path}` yet. A search creates it: "
                f"`tsfmicro search --tracking-uri {uri}`."
            )
        from search.stores import sqlite_problem

        problem = sqlite_problem(path)
        if problem is not None:
            raise StoreError(
                f"The MLflow store `{uri}` cannot be read: {problem}. Point the dashboard at "
                "another store (`tsfmicro dashboard --tracking-uri URI`), or restore the file "
                "from a backup."
            )
        return
    if uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                if response.status == 200:
                    return
                problem = f"it answered HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            problem = f"it answered HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            problem = f"it could not be reached ({reason})"
        raise StoreError(
            f"The MLflow tracking server at {uri} is not available: {problem}. Start it, or "
            "point the dashboard at another store with `tsfmicro dashboard --tracking-uri URI`."
        )


def make_client(uri: str) -> Any:
    """An MlflowClient of `uri`; opening a SQLite store checks its tables, so a database
    damaged past what `probe` sees fails here: a StoreError with its first line."""
    from mlflow import MlflowClient

    try:
        return MlflowClient(uri)
    except Exception as exc:
        raise _plain(exc, uri) from exc


def _plain(exc: Exception, uri: str) -> StoreError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return StoreError(f"The MLflow store at {uri} could not answer: {first}")


def experiments(client: Any, uri: str) -> pd.DataFrame:
    """The tsfmicro experiments (`tsfmicro/<dataset>/<protocol>`): id, name, dataset, protocol."""
    try:
        found = client.search_experiments(filter_string=f"name LIKE '{EXPERIMENT_PREFIX}%'")
    except Exception as exc:
        raise _plain(exc, uri) from exc
    rows = []
    for exp in found:
        parts = exp.name.split("/")
        rows.append(
            {
                "experiment_id": exp.experiment_id,
                "experiment": exp.name,
                "dataset": parts[1] if len(parts) > 1 else exp.name,
                "protocol": parts[2] if len(parts) > 2 else "",
            }
        )
    columns = ["experiment_id", "experiment", "dataset", "protocol"]
    return pd.DataFrame(rows, columns=columns).sort_values("experiment", ignore_index=True)


def trials(client: Any, uri: str) -> pd.DataFrame:
    """Every trial run of every tsfmicro experiment (search.leaderboard's table)."""
    try:
        return leaderboard(uri, client=client)
    except Exception as exc:
        raise _plain(exc, uri) from exc


# The search runs' columns: identity, then every figure's scores and intervals, then counts.
SEARCH_RUN_FIGURES = tuple(
    figure_metric(f, m) + suffix for f in FIGURES for m in METRICS for suffix in CI_SUFFIXES
)
SEARCH_RUN_COUNTS = (
    SearchMetric.N_TRIALS,
    SearchMetric.N_COMPLETE,
    SearchMetric.N_SUBJECTS,
    SearchMetric.N_TIED,
    SearchMetric.N_BOOT,
)
SEARCH_RUN_COLUMNS = (
    "experiment_id", "search", "run_id", "status", "state", "eval_mode", "objective_name",
    "shuffled_labels", "honest_note", "started", "nested", "flat_search",
    *SEARCH_RUN_FIGURES, *SEARCH_RUN_COUNTS,
)  # fmt: skip


def search_runs(client: Any, uri: str) -> pd.DataFrame:
    """One row per search run (kind search) of every tsfmicro experiment: the search's honest
    estimates (search-best, bias-corrected, nested where run) with their intervals and counts.
    Searches run before search runs existed have none."""
    ids = experiments(client, uri)["experiment_id"].tolist()
    try:
        runs = (
            client.search_runs(ids, filter_string=run_filter({Tag.KIND: KIND_SEARCH}),
                               max_results=50000)
            if ids else []
        )  # fmt: skip
    except Exception as exc:
        raise _plain(exc, uri) from exc
    rows = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        rows.append(
            {
                "experiment_id": run.info.experiment_id,
                "search": tags.get(Tag.SEARCH),
                "run_id": run.info.run_id,
                "status": run.info.status,
                "state": tags.get(Tag.STATE, run.info.status.lower()),
                "eval_mode": tags.get(Tag.EVAL_MODE),
                "objective_name": tags.get(Tag.OBJECTIVE),
                "shuffled_labels": tags.get(Tag.SHUFFLED_LABELS) == "true",
                "honest_note": tags.get(Tag.HONEST_NOTE),
                "started": pd.to_datetime(run.info.start_time, unit="ms", utc=True),
                "nested": tags.get(Tag.NESTED) == "true",
                "flat_search": tags.get(Tag.FLAT_SEARCH),
                **{k: metrics.get(k) for k in (*SEARCH_RUN_FIGURES, *SEARCH_RUN_COUNTS)},
            }
        )
    return pd.DataFrame(rows, columns=list(SEARCH_RUN_COLUMNS))


def run_info(client: Any, uri: str, run_id: str) -> dict[str, Any]:
    """A run's params, metrics, tags and identity."""
    try:
        run = client.get_run(run_id)
    except Exception as exc:
        raise StoreError(f"No run {run_id} in the MLflow store at {uri}.") from exc
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "status": run.info.status,
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": dict(run.data.tags),
    }


def artifact_bytes(client: Any, run_id: str, path: str) -> bytes | None:
    """One artifact of a run, or None when the run does not have it."""
    folder = path.rpartition("/")[0] or None
    try:
        names = {a.path for a in client.list_artifacts(run_id, folder)}
    except Exception:
        return None
    if path not in names:
        return None
    with tempfile.TemporaryDirectory(prefix="tsfmicro-dash-") as tmp:
        local = client.download_artifacts(run_id, path, tmp)
        return Path(local).read_bytes()


def artifact_csv(client: Any, run_id: str, path: str) -> pd.DataFrame | None:
    raw = artifact_bytes(client, run_id, path)
    return None if raw is None else pd.read_csv(io.BytesIO(raw))


def artifact_json(client: Any, run_id: str, path: str) -> Any:
    raw = artifact_bytes(client, run_id, path)
    return None if raw is None else json.loads(raw)


def fold_runs(client: Any, uri: str, experiment_id: str, parent_run_id: str) -> pd.DataFrame:
    """The fold child runs of a trial: subject, worker, seconds, final and oracle accuracy."""
    try:
        runs = client.search_runs(
            [experiment_id],
            filter_string=run_filter({PARENT_RUN_TAG: parent_run_id, Tag.KIND: KIND_FOLD}),
            max_results=5000,
        )
    except Exception as exc:
        raise _plain(exc, uri) from exc
    rows = []
    for run in runs:
        m, p = run.data.metrics, run.data.params
        rows.append(
            {
                FoldParam.SUBJECT: p.get(FoldParam.SUBJECT, run.data.tags.get(Tag.FOLD)),
                **{name: p.get(name) for name in FOLD_PARAMS},
                **{name: m.get(name) for name in FOLD_METRICS},
                "run_id": run.info.run_id,
            }
        )
    columns = [FoldParam.SUBJECT, *FOLD_PARAMS, *FOLD_METRICS, "run_id"]
    return pd.DataFrame(rows, columns=columns).sort_values("subject", ignore_index=True)


def fold_curves(client: Any, uri: str, fold_run_ids: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Per-epoch train_loss, train_acc and test_acc of fold runs [(subject, run_id)], long."""
    rows = []
    try:
        for subject, run_id in fold_run_ids:
            for key in CURVE_METRICS:
                for h in client.get_metric_history(run_id, key):
                    rows.append({"subject": subject, "epoch": h.step, key: h.value})
    except Exception as exc:
        raise _plain(exc, uri) from exc
    if not rows:
        return pd.DataFrame(columns=["subject", "epoch", *CURVE_METRICS])
    return pd.DataFrame(rows).groupby(["subject", "epoch"], as_index=False).first()


def partial_history(client: Any, uri: str, run_id: str, key: str) -> pd.DataFrame:
    """A trial's partial metric by folds done (step = folds)."""
    try:
        history = client.get_metric_history(run_id, key)
    except Exception as exc:
        raise _plain(exc, uri) from exc
    return pd.DataFrame(
        [{FOLDS_DONE: h.step, key: h.value} for h in history], columns=[FOLDS_DONE, key]
    )


def registry(client: Any, uri: str) -> pd.DataFrame:
    """One row per version of every `tsfmicro-*` registered model, with its aliases and the
    tags the registry writes (scores, evaluation mode, objective, search, trial)."""
    try:
        models = client.search_registered_models(filter_string=f"name LIKE '{MODEL_PREFIX}%'")
        rows = []
        for model in models:
            aliases: dict[str, list[str]] = {}
            for alias, version in (model.aliases or {}).items():
                aliases.setdefault(str(version), []).append(alias)
            for v in client.search_model_versions(f"name = '{model.name}'"):
                rows.append(
                    {
                        "model": model.name,
                        "description": model.description,
                        "version": int(v.version),
                        "aliases": ", ".join(sorted(aliases.get(str(v.version), []))),
                        "created": pd.to_datetime(v.creation_timestamp, unit="ms"),  # UTC
                        "run_id": v.run_id,
                        "source": v.source,
                        "status": v.status,
                        **{k: v.tags[k] for k in sorted(v.tags)},
                    }
                )
    except Exception as exc:
        raise _plain(exc, uri) from exc
    if not rows:
        return pd.DataFrame(columns=["model", "version", "aliases", "created", "run_id"])
    table = pd.DataFrame(rows)
    for col in table.columns:
        if col.startswith(SCORE_PREFIXES):
            table[col] = pd.to_numeric(table[col], errors="coerce")
    return table.sort_values(["model", "version"], ascending=[True, False], ignore_index=True)


def model_zip(uri: str, name: str, version: int) -> bytes:
    """A registered model version's files (MLmodel, weights.pt, tsfmicro_model.json ...) as
    a zip archive."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="tsfmicro-dash-model-") as tmp:
        mlflow.set_tracking_uri(uri)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=model_uri(name, version), dst_path=tmp
            )
        )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(local.rglob("*")):
                if file.is_file():
                    archive.write(file, f"{name}-v{version}/{file.relative_to(local)}")
        return buffer.getvalue()


def ui_link(uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page in the MLflow UI, for a tracking server."""
    if not uri.startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
