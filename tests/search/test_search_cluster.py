"""A search sent with `ray job submit` to a two-worker cluster with (fake) GPUs, logging to
`mlflow server`, with no resource flags: its folds are placed on the GPUs by default. On the
way, what a cluster's users meet (issue: safe by default): the cluster admits no one without
its token; while the job runs its name is held on the shared storage; `ray job stop` ends it
clean (nothing registered, no run left RUNNING, the resume command last in its log); a
`--resume` job finishes and registers."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from services import (
    assert_admits_no_stranger,
    job_logs,
    job_status,
    killable_ray_cluster,
    mlflow_server,
    outward_address,
    ray,
    service_env,
    submit_job,
)


def every_run(client) -> list:
    exp = client.get_experiment_by_name("tsfmicro/toy/3class")
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=1000)


def finished_folds(client) -> list:
    return [r for r in every_run(client)
            if r.data.tags.get("tsfmicro.kind") == "fold" and r.info.status == "FINISHED"]




@pytest.mark.slow
@pytest.mark.timeout(1800)  # a whole search: about 5 min here, twice that on a loaded CI
def test_search_job_on_a_two_node_cluster_with_a_tracking_server(tmp_path):
    shared = tmp_path / "shared"  # every node sees this folder (one machine)
    with mlflow_server(tmp_path / "mlflow") as tracking, \
            killable_ray_cluster([{"cpus": 1, "gpus": 1}] * 2, tmp_path / "ray") as (gcs, url, _):
        # closed by default: the nodes listen beyond loopback, so the token is the lock
        assert_admits_no_stranger(gcs, url, 3, outward_address(), tmp_path / "stranger")
        entrypoint = [
            sys.executable, "-m", "tsfmicro.cli", "search", "--ray-address", "auto",
            "--name", "cluster2", "--dataset", "toy", "--preset", "tiny", "--trials", "2",
            "--set", "epochs=1", "--tracking-uri", tracking,
            "--storage-path", str(shared / "runs"), "--json", str(shared / "outcome.json"),
        ]  # not --quiet: its plan line is checked below
        # the token: the nodes' own; `ray job stop` waits up to 120 s for a clean ending
        env_vars = {"OMP_WAIT_POLICY": "PASSIVE", "RAY_JOB_STOP_WAIT_TIME_S": "120"}
        submit = ["--runtime-env-json", json.dumps({"env_vars": env_vars})]
        first = submit_job(url, [*submit, "--submission-id", "cluster2-first", "--no-wait", "--",
                                 *entrypoint], timeout=120)
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
        from mlflow import MlflowClient

        client = MlflowClient(tracking)
        deadline = time.monotonic() + 900
        while not finished_folds(client):  # under way: a fold of a trial has finished
            assert job_status(url, "cluster2-first") in ("PENDING", "RUNNING"), \
                job_logs(url, "cluster2-first")[-4000:]  # fmt: skip
            assert time.monotonic() < deadline, "no fold finished within 15 minutes"
            time.sleep(1)
        # Its name is held on the storage every node shares: a second search by that name, as
        # another job or from this machine, is refused at once naming the running one.
        began = time.monotonic()
        again = subprocess.run(entrypoint[:4] + entrypoint[6:], env=service_env(),
                               capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert again.returncode == 2, again.stderr[-3000:]
        assert "search 'cluster2' is running (pid " in again.stderr
        assert time.monotonic() - began < 60  # about 1 s unloaded: no Ray, no data
        stopped = ray("job", "stop", "--address", url, "cluster2-first", timeout=300)
        assert job_status(url, "cluster2-first") == "STOPPED", stopped.stdout + stopped.stderr
        log = job_logs(url, "cluster2-first")
        # No --fold-gpus: on a cluster with GPUs the folds get a quarter of one each.
        assert "1 CPU(s) and 0.25 GPU(s) per task" in log
        assert [line for line in log.splitlines() if line.strip()][-1] == (
            f"resume it with: tsfmicro search --resume cluster2 --storage-path {shared / 'runs'}")
        runs = every_run(client)
        assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"], log[-3000:]
        assert [r.info.status for r in runs if r.data.tags["tsfmicro.kind"] == "search"] \
            == ["KILLED"]  # fmt: skip
        assert not client.search_model_versions()
        assert not (shared / "runs" / "cluster2.lock").exists()
        resumed = submit_job(url, [*submit, "--", *entrypoint[:4], "--resume", "cluster2",
                                   "--storage-path", str(shared / "runs"), "--json",
                                   str(shared / "outcome.json"), "--quiet"], timeout=900)
        assert resumed.returncode == 0, resumed.stdout[-4000:] + resumed.stderr[-4000:]
        assert "succeeded" in (resumed.stdout + resumed.stderr)

        runs = every_run(client)
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
