"""Dashboard test support: one small real search, run once per test session, shared by the
dashboard tests (the `dash_store` fixture, registered in conftest.py), and AppTest helpers.

The search is the project's own CLI on the synthetic benchmark: 4 subjects, 5 trials of the
tiny preset for 2 epochs, ASHA (so a trial may be pruned) and an inner validation subject (so
every complete trial has final, val and oracle scores); the best is refitted and registered.
An empty experiment sits beside it (an experiment with no runs). About 2 minutes on 2 cores.

A second store (`dash_nested_store`, for the nested search's page) holds a nested search on the
toy task (4 subjects in 2 outer folds, 2 trials of the micro preset) and the flat search it
describes, run with the command the nested search prints. About a minute on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services import service_env

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboards" / "app.py"
EXPERIMENT = "tsfmicro/synthetic-casme2/5class"
EMPTY_EXPERIMENT = "tsfmicro/empty-set/none"
MODEL = "tsfmicro-synthetic-casme2-5class"
SEARCH = "dash1"
SUBJECTS = 4
CLASSES = ("happiness", "repression", "disgust", "surprise", "others")
APP_TIMEOUT = 120  # the first run of a page imports MLflow and Altair


@dataclass(frozen=True)
class Store:
    folder: Path
    uri: str

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(self.uri)

    def trial_runs(self, state: str | None = None) -> list:
        """The search's trial runs straight from MLflow (what the dashboard must show)."""
        client = self.client()
        exp = client.get_experiment_by_name(EXPERIMENT)
        where = "tags.`tsfmicro.kind` = 'trial'"
        if state:
            where += f" and tags.`tsfmicro.state` = '{state}'"
        return client.search_runs([exp.experiment_id], filter_string=where, max_results=1000)

    def copy(self, folder: Path) -> Store:
        """A copy of the database (artifacts stay where the runs point), to change freely."""
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.folder / "mlflow.db", folder / "mlflow.db")
        return Store(folder, f"sqlite:///{folder / 'mlflow.db'}")


def run_search(folder: Path) -> Store:
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    command = [
        sys.executable, "-m", "tsfmicro.cli", "search", "--name", SEARCH,
        "--synth-subjects", str(SUBJECTS), "--synth-clips", "5",
        "--data-dir", str(folder / "data"), "--cache-dir", str(folder / "cache"),
        "--preset", "tiny", "--trials", "5", "--set", "epochs=2", "--set", "val_subjects=1",
        "--scheduler", "asha", "--seed", "1", "--tracking-uri", tracking,
        "--storage-path", str(folder / "runs"), "--quiet",
    ]  # fmt: skip
    env = service_env(PYTHONPATH=str(ROOT))
    proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    store = Store(folder, tracking)
    store.client().create_experiment(EMPTY_EXPERIMENT)
    return store


NESTED_SEARCH = "dnest"
NESTED_EXPERIMENT = "tsfmicro/toy/3class"


def _cli(folder: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "tsfmicro.cli", *args],
        cwd=folder,
        env=service_env(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def run_nested_search(folder: Path) -> Store:
    """A nested search, then the flat search it describes (the command it prints)."""
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    _cli(folder, "search", "--name", NESTED_SEARCH, "--nested", "--outer-folds", "2",
         "--dataset", "toy", "--toy-subjects", "4", "--toy-per-subject", "4",
         "--preset", "micro", "--trials", "2", "--set", "epochs=2", "--seed", "3",
         "--tracking-uri", tracking, "--storage-path", str(folder / "runs"),
         "--quiet")  # fmt: skip
    flat = folder / "runs" / NESTED_SEARCH / "flat_search.yaml"
    _cli(folder, "search", "--config", str(flat), "--name", f"{NESTED_SEARCH}-flat", "--quiet")
    return Store(folder, tracking)


@pytest.fixture(scope="session")
def dash_nested_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A real MLflow store with a nested search and its flat search (see the docstring)."""
    return run_nested_search(tmp_path_factory.mktemp("dash-nested"))


@pytest.fixture(scope="session")
def dash_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A real MLflow store filled by one small real search (see the module docstring).

    While working on the dashboard, TSFMICRO_DASH_STORE=DIR keeps the search in DIR and reuses
    it on later runs (delete DIR to search again)."""
    kept = os.environ.get("TSFMICRO_DASH_STORE")
    if kept and (Path(kept) / "mlflow.db").is_file():
        return Store(Path(kept), f"sqlite:///{Path(kept) / 'mlflow.db'}")
    folder = Path(kept) if kept else tmp_path_factory.mktemp("dash-store")
    folder.mkdir(parents=True, exist_ok=True)
    return run_search(folder)


def app_test(uri: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An AppTest of the dashboard reading `uri` (through the environment, as the CLI does)."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TSFMICRO_TRACKING_URI", uri)
    return AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT)


def artifacts_dir() -> Path:
    """Where tests leave files worth keeping: $TSFMICRO_TEST_ARTIFACTS or test-artifacts/."""
    folder = Path(os.environ.get("TSFMICRO_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def searched_trials(
    uri: str,
    dataset: str,
    protocol: str,
    keys: list[str],
    *,
    folds: list[str] | None = None,
    search: str = "s1",
    trials: int = 1,
    seed: int = 0,
) -> list[str]:
    """Complete trial runs written by the search's own MLflow callback (search.tracking.
    MlflowTracker: the run and its tags as Tune starts a trial, then the metrics, tags and
    artifacts as it completes) in experiment `tsfmicro/<dataset>/<protocol>`, without Ray or
    training: each fold's predictions are drawn at random (2 epochs, 3 classes) for the samples
    `keys` (dataset/subject/clip). One fold per subject, or per fold key where `folds` gives
    each sample's (a cross-dataset protocol: its held-out dataset, "" for train only). A second
    or so per trial on a SQLite store. Returns the trial runs' ids."""
    from unittest import mock

    import numpy as np
    from mlflow import MlflowClient

    from search.schema import experiment_name
    from search.tracking import MlflowTracker, SearchContext
    from tsfmicro.config import TrainConfig, preset
    from tsfmicro.training.fold import FoldResult

    client = MlflowClient(uri)
    name = experiment_name(dataset, protocol)
    found = client.get_experiment_by_name(name)
    exp_id = found.experiment_id if found else client.create_experiment(name)
    rng = np.random.default_rng(seed)
    keys_a = np.array(keys)
    subjects = np.array(["/".join(k.split("/")[:2]) for k in keys])
    labels = np.arange(len(keys)) % 3
    fold_keys = None if folds is None else np.array(folds)
    groups = subjects if fold_keys is None else fold_keys
    ctx = SearchContext(
        search_name=search, tracking_uri=uri, experiment_id=exp_id, dataset=dataset,
        protocol=protocol, preset="micro", eval_mode="final", objective="uf1",
        class_names=("negative", "positive", "surprise"), keys=keys_a, subjects=subjects,
        labels=labels, base_model=preset("micro").replace(num_classes=3),
        base_train=TrainConfig(epochs=2), searched=(), git_commit=None, bootstrap=20,
        folds=fold_keys,
    )  # fmt: skip
    tracker = MlflowTracker(ctx)
    run_ids = []
    for t in range(trials):
        fold_results = {}
        for fold in sorted(set(groups.tolist()) - {""}):
            test = np.flatnonzero(groups == fold)
            fold_results[fold] = FoldResult(
                subject=fold, seed=t, train_index=np.flatnonzero(groups != fold),
                test_index=test, val_index=np.array([], dtype=np.int64), val_subjects=[],
                test_probs=rng.dirichlet(np.ones(3), size=(2, len(test))).astype(np.float32),
                val_probs=np.zeros((2, 0, 3), np.float32), train_loss=np.ones(2),
                train_acc=np.zeros(2), seconds=1.0, train_samples=len(keys) - len(test),
                device="cpu",
            )  # fmt: skip
        trial = mock.Mock(trial_id=f"trial_{t:05d}", config={})
        tracker.on_trial_start(0, [], trial)
        tracker._trial_folds = lambda _trial, folds=fold_results: folds
        tracker.on_trial_complete(0, [], trial)
        run_ids.append(tracker.parent_run(trial))
    return run_ids


# Samples of the per-dataset stores (dash_datasets_store): dataset/subject/clip, 3 datasets.
DATASETS_KEYS = tuple(
    f"{d}/{s}/c{i}"
    for d, subjects in (("casme2", ("sub01", "sub02")), ("samm", ("006",)), ("smic", ("s1", "s2")))
    for s in subjects
    for i in range(3)
)
# The experiments it holds: (dataset, protocol) -> the search that wrote its trials
DATASETS_SEARCHES = {("composite", "megc2019"): "pool", ("composite", "lodo"): "lodo",
                     ("smic", "hs"): "smic"}  # fmt: skip


@pytest.fixture(scope="session")
def dash_datasets_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict]:
    """A SQLite MLflow store whose trial runs the search's own callback wrote (searched_trials)
    for a pooled multi-dataset protocol (composite megc2019: 2 trials, per-part scores), a
    cross-dataset one (composite lodo: held-out scores) and one dataset (smic hs); and
    {protocol: [trial run ids]}. About 40 s under a heavy load, mostly the store's creation."""
    folder = tmp_path_factory.mktemp("dash-datasets")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    keys = list(DATASETS_KEYS)
    runs = {}
    for (dataset, protocol), search in DATASETS_SEARCHES.items():
        chosen = [k for k in keys if dataset == "composite" or k.startswith(dataset + "/")]
        runs[protocol] = searched_trials(
            uri, dataset, protocol, chosen, search=search,
            trials=2 if protocol == "megc2019" else 1,
            folds=[k.split("/")[0] for k in chosen] if protocol == "lodo" else None,
        )  # fmt: skip
    return Store(folder, uri), runs
