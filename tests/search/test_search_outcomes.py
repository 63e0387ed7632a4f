"""Trials that fail or are stopped early: what MLflow and Optuna are told; samplers; champion."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from search.searcher import make_searcher
from search.space import DEFAULT_SPACE, Param, SearchSpace

from services import service_env


def search(folder, name, *extra):
    return subprocess.run(
        [sys.executable, "-m", "tsfmicro.cli", "search", "--name", name, "--dataset", "toy",
         "--preset", "micro", "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--storage-path", str(folder / "runs"), "--json", str(folder / f"{name}.json"),
         "--quiet", *extra],
        cwd=folder, env=service_env(), capture_output=True, text=True, timeout=900)


def trial_runs(folder, search_name):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tsfmicro/toy/3class")
    return client.search_runs(
        [exp.experiment_id], max_results=100,
        filter_string=(f"tags.`tsfmicro.kind` = 'trial' and "
                       f"tags.`tsfmicro.search` = '{search_name}'"))


@pytest.mark.parametrize("kind", ["tpe", "gp", "random", "grid"])
def test_every_sampler_suggests_valid_configurations(kind):
    space = DEFAULT_SPACE if kind != "grid" else SearchSpace((
        Param("temporal_depth", "int", low=2, high=3),
        Param("fusion", "categorical", choices=("late", "early"))))
    searcher = make_searcher(space, kind, seed=0)
    searcher.set_search_properties(metric="objective", mode="max", config={})
    seen = []
    for i in range(4):
        config = searcher.suggest(f"t{i}")
        assert set(config) == set(space.names)
        searcher.on_trial_complete(f"t{i}", {"objective": 0.1 * i, "folds_done": 1,
                                             "n_folds": 1})
        seen.append((config["temporal_depth"], config["fusion"]))
    if kind == "grid":
        assert sorted(seen) == [(2, "early"), (2, "late"), (3, "early"), (3, "late")]


def test_champion_moves_only_for_a_better_model_on_the_same_mode(tmp_path):
    from mlflow import MlflowClient

    from search.registry import update_champion

    client = MlflowClient(f"sqlite:///{tmp_path / 'registry.db'}")
    client.create_registered_model("m")

    def version(**tags):
        return client.create_model_version("m", source=str(tmp_path),
                                           tags={k: str(v) for k, v in tags.items()})

    v1 = version(final_uf1=0.50)
    assert update_champion(client, "m", v1, "final", "uf1")[0]
    v2 = version(final_uf1=0.45, oracle_uf1=0.90)  # worse where it counts
    moved, why = update_champion(client, "m", v2, "final", "uf1")
    assert not moved and "kept at version 1" in why
    v3 = version(final_uf1=0.55)
    assert update_champion(client, "m", v3, "final", "uf1")[0]
    v4 = version(oracle_uf1=0.99)  # chosen on another mode: no comparison possible
    moved, why = update_champion(client, "m", v4, "oracle", "uf1")
    assert not moved and "no oracle_uf1" in why
    assert client.get_model_version_by_alias("m", "champion").version == v3.version


@pytest.mark.slow
def test_a_failing_trial_ends_failed_with_its_reason(tmp_path):
    # Six toy subjects cannot spare ten for validation: every fold raises a ConfigError.
    proc = search(tmp_path, "fails", "--trials", "1", "--set", "val_subjects=10",
                  "--set", "epochs=1")
    assert proc.returncode == 1
    assert "no trial completed" in proc.stderr
    runs = trial_runs(tmp_path, "fails")
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    assert "val_subjects=10 leaves no training subject" in runs[0].data.tags["tsfmicro.reason"]


@pytest.mark.slow
def test_asha_stops_weak_trials_as_pruned(tmp_path):
    proc = search(tmp_path, "asha", "--trials", "6", "--scheduler", "asha", "--set", "epochs=1",
                  "--concurrency", "1", "--fold-parallelism", "1", "--no-register",
                  "--sampler", "random")
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome = json.loads((tmp_path / "asha.json").read_text())
    states = [t["state"] for t in outcome["trials"]]
    assert "pruned" in states and "complete" in states
    by_state = {r.data.tags["tsfmicro.state"] for r in trial_runs(tmp_path, "asha")}
    assert by_state == {"complete", "pruned"}
    for run in trial_runs(tmp_path, "asha"):
        assert run.info.status == "FINISHED"
        if run.data.tags["tsfmicro.state"] == "pruned":
            assert "stopped after" in run.data.tags["tsfmicro.reason"]
            assert "final_uf1" not in run.data.metrics  # partial scores are not results


@pytest.mark.slow
def test_fold_batched_search_gives_the_folds_of_a_spread_search(tmp_path):
    """--fold-batch 0 trains a trial's folds together in one task, stacked; --fold-group streams
    trains a task's folds at once in threads. The same sampled trial with folds spread one per
    task gives the same predictions: within the tolerance of
    tests/tsfmicro/training/test_stacked for stacked folds, bit for bit for threads
    (tests/tsfmicro/training/test_streams)."""
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient

    common = ("--trials", "1", "--sampler", "random", "--seed", "3", "--set", "epochs=2",
              "--no-register")
    ways = {"spread": (), "batched": ("--fold-batch", "0"),
            "streams": ("--fold-batch", "3", "--fold-group", "streams", "--fold-cpus", "2")}
    for name, extra in ways.items():
        proc = search(tmp_path, name, *common, *extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    tables = {}
    for name in ways:
        (run,) = trial_runs(tmp_path, name)
        assert run.info.status == "FINISHED"
        assert run.data.params == trial_runs(tmp_path, "spread")[0].data.params
        path = client.download_artifacts(run.info.run_id, "predictions.parquet",
                                         str(tmp_path / name))
        table = pd.read_parquet(path)
        tables[name] = table[table["mode"] == "final"].sort_values("key").reset_index(drop=True)
        folds = client.search_runs(
            [run.info.experiment_id], max_results=100,
            filter_string=f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
        assert len(folds) == 6  # the toy set's six subjects, each fold logged
    spread = tables["spread"]
    probs = [c for c in spread.columns if c.startswith("p_")]
    for name in ("batched", "streams"):
        assert tables[name]["key"].tolist() == spread["key"].tolist()
    np.testing.assert_allclose(tables["batched"][probs].to_numpy(), spread[probs].to_numpy(),
                               atol=2e-4)
    np.testing.assert_array_equal(tables["streams"][probs].to_numpy(), spread[probs].to_numpy())
