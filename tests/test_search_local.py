"""A real search under a local Ray, checked afterwards through MLflow."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from services import service_env

TRIALS = 4


def run_cli(*args: str, cwd, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tsfmicro.cli", *args], cwd=cwd,
                          env=service_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def local_search(tmp_path_factory):
    """Four trials of the tiny preset on the toy task, tracked in a SQLite store."""
    folder = tmp_path_factory.mktemp("search")
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    proc = run_cli("search", "--name", "local4", "--dataset", "toy", "--preset", "tiny",
                   "--trials", str(TRIALS), "--set", "epochs=2", "--seed", "1",
                   "--tracking-uri", tracking, "--storage-path", str(folder / "runs"),
                   "--json", str(folder / "outcome.json"), "--quiet", cwd=folder)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    from mlflow import MlflowClient

    return {"folder": folder, "tracking": tracking, "client": MlflowClient(tracking),
            "stdout": proc.stdout, "outcome": json.loads((folder / "outcome.json").read_text())}


def _runs(client, kind=None):
    exp = client.get_experiment_by_name("tsfmicro/toy/3class")
    where = f"tags.`tsfmicro.kind` = '{kind}'" if kind else ""
    return client.search_runs([exp.experiment_id], filter_string=where, max_results=1000)


@pytest.mark.slow
def test_every_trial_and_fold_is_in_mlflow(local_search):
    client = local_search["client"]
    trials = _runs(client, "trial")
    folds = _runs(client, "fold")
    assert len(trials) == TRIALS
    assert all(r.info.status == "FINISHED" and r.data.tags["tsfmicro.state"] == "complete"
               for r in trials)
    assert len(folds) == TRIALS * 6  # toy default: 6 subjects
    parents = {r.info.run_id for r in trials}
    assert {r.data.tags["mlflow.parentRunId"] for r in folds} == parents
    for run in trials:
        m, tags = run.data.metrics, run.data.tags
        for mode in ("final", "oracle"):
            for metric in ("acc", "uf1", "uar"):
                assert m[f"{mode}_{metric}_ci_lo"] <= m[f"{mode}_{metric}"] <= \
                    m[f"{mode}_{metric}_ci_hi"]
        assert m["oracle_acc"] >= m["final_acc"]
        assert tags["tsfmicro.search"] == "local4" and tags["tsfmicro.eval_mode"] == "final"
        assert tags["tsfmicro.dataset"] == "toy" and tags["tsfmicro.protocol"] == "3class"
        assert tags["tsfmicro.git_commit"]
        assert {"temporal_depth", "spatial_depth", "fusion", "lr", "epochs"} <= set(
            run.data.params)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"predictions.parquet", "metrics.json", "config.json", "confusion_final.json",
                "per_class_final.csv", "curves.csv"} <= artifacts
    fold = folds[0]
    history = client.get_metric_history(fold.info.run_id, "train_loss")
    assert [h.step for h in history] == [1, 2]
    assert fold.data.params["subject"].startswith("s")


@pytest.mark.slow
def test_nothing_left_running_and_outcome_matches(local_search):
    client = local_search["client"]
    assert not [r for r in _runs(client) if r.info.status == "RUNNING"]
    outcome = local_search["outcome"]
    assert len(outcome["trials"]) == TRIALS
    assert all(t["state"] == "complete" for t in outcome["trials"])
    assert outcome["overhead_seconds"] == pytest.approx(
        outcome["seconds"] - outcome["fold_seconds"])
    assert "leaderboard by final UF1" in local_search["stdout"]


@pytest.mark.slow
def test_best_model_registered_with_champion_alias(local_search):
    client = local_search["client"]
    version = client.get_model_version_by_alias("tsfmicro-toy-3class", "champion")
    best = local_search["outcome"]["best"]
    assert version.tags["trial_id"] == best["trial_id"]
    assert float(version.tags["final_uf1"]) == pytest.approx(best["metrics"]["objective"])
    refit = client.get_run(version.run_id)
    assert refit.data.tags["tsfmicro.kind"] == "refit" and refit.info.status == "FINISHED"


@pytest.mark.slow
def test_pull_gives_a_model_folder_that_loads_without_mlflow(local_search, tmp_path):
    proc = run_cli("pull", "tsfmicro-toy-3class@champion", "--out", str(tmp_path),
                   "--tracking-uri", local_search["tracking"], cwd=local_search["folder"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = next(tmp_path.rglob("tsfmicro_model.json")).parent
    assert (folder / "weights.pt").is_file()
    # Loading needs only tsfmicro: run it in a process where mlflow cannot be imported.
    code = ("import sys; sys.modules['mlflow'] = None\n"
            "from tsfmicro.inference import Predictor\n"
            f"p = Predictor.load({str(folder)!r})\n"
            "print(p.class_names, p.image_size)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=service_env())
    assert out.returncode == 0, out.stderr[-2000:]
    assert "('motion0', 'motion1', 'motion2') 64" in out.stdout
