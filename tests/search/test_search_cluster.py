"""A search sent with `ray job submit` to a two-worker cluster with (fake) GPUs, logging to
`mlflow server`, with no resource flags: its folds are placed on the GPUs by default."""

from __future__ import annotations

import json
import sys

import pytest

from services import killable_ray_cluster, mlflow_server, submit_job


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a whole search: about 5 min here, twice that on a loaded CI
def test_search_job_on_a_two_node_cluster_with_a_tracking_server(tmp_path):
    shared = tmp_path / "shared"  # every node sees this folder (one machine)
    with mlflow_server(tmp_path / "mlflow") as tracking, \
            killable_ray_cluster([{"cpus": 1, "gpus": 1}] * 2, tmp_path / "ray") as (_, url, _):
        entrypoint = [
            sys.executable, "-m", "tsfmicro.cli", "search", "--ray-address", "auto",
            "--name", "cluster2", "--dataset", "toy", "--preset", "tiny", "--trials", "2",
            "--set", "epochs=1", "--tracking-uri", tracking,
            "--storage-path", str(shared / "runs"), "--json", str(shared / "outcome.json"),
            "--quiet",
        ]
        runtime_env = {"env_vars": {"RAY_AUTH_MODE": "disabled", "OMP_WAIT_POLICY": "PASSIVE"}}
        job = submit_job(url, ["--runtime-env-json", json.dumps(runtime_env), "--", *entrypoint],
                         timeout=900)
        assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-4000:]
        assert "succeeded" in (job.stdout + job.stderr)
        # No --fold-gpus: on a cluster with GPUs the folds get a quarter of one each.
        assert "1 CPU(s) and 0.25 GPU(s) per task" in job.stdout + job.stderr

        from mlflow import MlflowClient

        client = MlflowClient(tracking)
        exp = client.get_experiment_by_name("tsfmicro/toy/3class")
        runs = client.search_runs([exp.experiment_id], max_results=1000)
        trials = [r for r in runs if r.data.tags["tsfmicro.kind"] == "trial"]
        folds = [r for r in runs if r.data.tags["tsfmicro.kind"] == "fold"]
        assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials)
        assert len(folds) == 12
        # The folds of one configuration ran on both worker nodes (one fake GPU each).
        for trial in trials:
            nodes = {r.data.params["worker"] for r in folds
                     if r.data.tags["mlflow.parentRunId"] == trial.info.run_id}
            assert len(nodes) == 2, nodes
        # Artifacts went through the server's artifact store.
        assert "predictions.parquet" in {a.path for a in client.list_artifacts(
            trials[0].info.run_id)}
        assert client.get_model_version_by_alias("tsfmicro-toy-3class", "champion")
        assert not [r for r in runs if r.info.status == "RUNNING"]
    outcome = json.loads((shared / "outcome.json").read_text())
    assert all(t["state"] == "complete" for t in outcome["trials"])
    # the honest figures were computed at the end of the cluster's search and logged on its
    # search run: search-best (the champion's own, optimistic), BBC, and each trial's tie
    estimates = outcome["estimates"]
    best, bbc = estimates["search_best"], estimates["bbc"]
    assert best["optimistic"] is True and bbc["optimistic"] is False
    for figure in (best, bbc):
        for m in ("uf1", "acc", "uar"):
            lo, hi = figure[m + "_ci"]
            assert 0 <= lo <= figure[m] <= hi <= 1
    assert best["uf1"] == pytest.approx(max(t["metrics"]["objective"] for t in outcome["trials"]))
    assert estimates["nested"] is None
    search = [r for r in runs if r.data.tags["tsfmicro.kind"] == "search"]
    assert len(search) == 1 and search[0].info.status == "FINISHED"
    assert search[0].data.metrics["bbc_uf1"] == pytest.approx(bbc["uf1"])
    champion = [t for t in outcome["trials"] if t["trial_id"] == outcome["best"]["trial_id"]]
    assert champion[0]["tie"]["tied_with_best"] is True  # the champion is tied with itself
    by_id = {t.data.tags["tsfmicro.trial_id"]: t.data.metrics for t in trials}
    for trial in outcome["trials"]:
        assert by_id[trial["trial_id"]]["tied_with_best"] == float(trial["tie"]["tied_with_best"])
