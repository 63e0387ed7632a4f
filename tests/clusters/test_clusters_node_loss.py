"""A worker node lost in the middle of a cluster search: the search still finishes, and MLflow
accounts for every trial and fold.

The cluster is what clusters/README.md describes, on loopback: a head that does no work (0 CPUs,
0 GPUs) and two worker nodes with one fake GPU each; the search goes in with
`ray job submit --no-wait`, its Tune results go to one folder every node sees, and it logs to an
`mlflow server`. Sizing follows the README's rule for losing a node: each trial reserves a single
fold slot (`--fold-parallelism 1`) and two trials run at once, so the surviving node still holds
any one trial's placement group after the other node is gone (the trials then take turns).

Once a few folds are in MLflow, the node running a fold is killed outright (every process of
its session, raylet and workers included). The fold that was running there must be retried
(by Ray, as a task retry, or by Tune, as a trial retry from the trial's last checkpoint).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from services import (
    cluster_query,
    job_logs,
    job_status,
    killable_ray_cluster,
    mlflow_server,
    submit_job,
)

TRIALS, FOLDS = 3, 6  # the toy task has 6 subjects: 6 LOSO folds per trial
EXPERIMENT = "tsfmicro/toy/3class"


def fold_processes() -> dict[int, int]:
    """{pid: session id} of the running fold tasks on this machine."""
    out = subprocess.run(["ps", "-eo", "pid=,sid=,args="], capture_output=True,
                         text=True).stdout
    found = {}
    for line in out.splitlines():
        pid, sid, *args = line.split(None, 2)
        if args and args[0].startswith("ray::loso_fold"):
            found[int(pid)] = int(sid)
    return found


def mlflow_runs(client, kind: str | None = None) -> list:
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return []
    where = f"tags.`tsfmicro.kind` = '{kind}'" if kind else ""
    return client.search_runs([exp.experiment_id], filter_string=where, max_results=1000)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a whole search: about 5 min here, twice that on a loaded CI
def test_search_survives_losing_a_worker_node(tmp_path):
    from mlflow import MlflowClient

    shared = tmp_path / "shared"  # the one folder every node sees (one machine)
    job_id = f"tsfmicro-node-loss-{uuid.uuid4().hex[:8]}"
    repo = Path(__file__).resolve().parents[2]
    with mlflow_server(tmp_path / "mlflow") as tracking, killable_ray_cluster(
        [{"cpus": 1, "gpus": 1}] * 2, tmp_path / "ray"
    ) as (_, url, workers):
        entrypoint = [
            sys.executable, "-m", "tsfmicro.cli", "search", "--ray-address", "auto",
            "--name", "nodeloss", "--dataset", "toy", "--preset", "tiny",
            "--trials", str(TRIALS), "--set", "epochs=3", "--fold-gpus", "1",
            "--fold-parallelism", "1", "--concurrency", "2", "--no-register",
            "--tracking-uri", tracking, "--storage-path", str(shared / "runs"),
            "--json", str(shared / "outcome.json"), "--quiet",
        ]
        runtime_env = {"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}}  # the token: the nodes' own
        submitted = submit_job(
            url, ["--submission-id", job_id, "--no-wait", "--runtime-env-json",
                  json.dumps(runtime_env), "--", *entrypoint], timeout=120, cwd=repo,
        )
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr

        client = MlflowClient(tracking)
        started = time.monotonic()
        victim = None
        while victim is None and time.monotonic() - started < 600:
            status = job_status(url, job_id)
            assert status in ("PENDING", "RUNNING"), f"job ended early: {status}"
            if len(mlflow_runs(client, "fold")) >= 2:  # the search is well under way
                running = set(fold_processes().values())
                victim = next((w for w in workers if w.sid in running), None)
            time.sleep(0.5)
        assert victim is not None, "no fold ran on a worker node within 10 minutes"
        killed_node = victim.node_id()
        folds_before = len(mlflow_runs(client, "fold"))
        killed_processes = victim.kill()
        killed_at = time.monotonic()

        while job_status(url, job_id) in ("PENDING", "RUNNING"):
            assert time.monotonic() - killed_at < 900, "the search did not finish after the loss"
            time.sleep(2)
        finished_after = time.monotonic() - killed_at
        logs = job_logs(url, job_id)
        status = job_status(url, job_id)
        node_states = cluster_query(
            url, "{n.node_id: str(n.state) for n in list_nodes(address=url, detail=True)}")
        trials = mlflow_runs(client, "trial")
        folds = mlflow_runs(client, "fold")
        every_run = mlflow_runs(client)
        # Every attempt of every fold task, as Ray's state API recorded it (workers report task
        # events about once a second: wait for the last ones).
        deadline = time.monotonic() + 30
        while True:
            fold_tasks = [SimpleNamespace(**t) for t in cluster_query(
                url, "[{'task_id': t.task_id, 'state': str(t.state)} for t in list_tasks("
                "address=url, filters=[('name', '=', 'loso_fold')], detail=True, limit=10000, "
                "raise_on_missing_output=False)]")]  # fmt: skip
            finished = sum(t.state == "FINISHED" for t in fold_tasks)
            if finished >= len(folds) or time.monotonic() > deadline:
                break
            time.sleep(1)

    assert status == "SUCCEEDED", logs[-6000:]
    assert node_states[killed_node] == "DEAD"  # Ray saw the node go
    assert list(node_states.values()).count("ALIVE") == 2  # the head and the other worker
    print(f"killed node {killed_node} ({killed_processes} processes) after {folds_before} "
          f"folds; the search finished {finished_after:.0f} s later")

    # Nothing open, nothing missing: every trial ended, with a reason if it did not complete.
    assert not [r for r in every_run if r.info.status == "RUNNING"]
    assert len(trials) == TRIALS
    for run in trials:
        state = run.data.tags["tsfmicro.state"]
        assert (run.info.status, state) in {("FINISHED", "complete"), ("FAILED", "failed")}
        if run.info.status == "FAILED":
            assert run.data.tags.get("tsfmicro.reason"), run.data.tags
    complete = [r for r in trials if r.data.tags["tsfmicro.state"] == "complete"]
    assert complete, "no trial completed"
    for run in complete:  # a complete trial has each of its folds exactly once
        mine = [f for f in folds if f.data.tags["mlflow.parentRunId"] == run.info.run_id]
        assert len(mine) == FOLDS
        assert len({f.data.tags["tsfmicro.fold"] for f in mine}) == FOLDS
    outcome = json.loads((shared / "outcome.json").read_text())
    assert len(outcome["trials"]) == TRIALS

    # The work lost with the node was done again: a fold task attempt died with the node and a
    # later attempt of it finished, or Tune retried the trial whose process died there.
    by_task: dict[str, list] = {}
    for task in fold_tasks:
        by_task.setdefault(task.task_id, []).append(task)
    task_retries = [attempts for attempts in by_task.values()
                    if any(a.state == "FAILED" for a in attempts)
                    and any(a.state == "FINISHED" for a in attempts)]
    trial_retries = [r for r in trials if "tsfmicro.last_retry_reason" in r.data.tags]
    on_victim = [f for f in folds if f.data.params.get("worker") == killed_node]
    print(f"fold task attempts: {len(fold_tasks)} for {len(by_task)} tasks; "
          f"retried after a failure: {len(task_retries)}; trials retried: {len(trial_retries)}; "
          f"fold runs logged from the lost node (finished before it died): {len(on_victim)}; "
          f"trial states: {[r.data.tags['tsfmicro.state'] for r in trials]}")
    for run in trial_retries:
        print("retry reason:", run.data.tags["tsfmicro.last_retry_reason"])
    assert task_retries or trial_retries
    for run in trial_retries:  # the reason Tune recorded, not a placeholder
        assert "unknown error" not in run.data.tags["tsfmicro.last_retry_reason"]
    # Each fold ran to the end once (a fold finished before the loss is not trained again: the
    # retried trial restores it from its checkpoint or the search's fold store; one cut short by
    # the loss runs again in a new task). Every fold task FINISHED once, except that one that
    # finished on the lost node may have had its FINISHED event die with the node (workers
    # report task events about once a second).
    assert len(complete) * FOLDS - len(on_victim) <= finished <= len(complete) * FOLDS


def test_a_retried_trial_records_the_error_tune_just_wrote(tmp_path):
    """Tune writes a trial's error to the driver's staging folder right before it calls
    on_trial_recover / on_trial_error, and copies it to the storage path (where
    `Trial.get_error()` reads) only at its next sync: the tracker must read the former, or a
    node loss is recorded as "unknown error"."""
    from unittest import mock

    from search.schema import Tag
    from search.tracking import MlflowTracker

    error_file = tmp_path / "error.txt"
    error_file.write_text("Failure # 1 (occurred at now)\nThe actor is unavailable: node died\n")
    trial = mock.Mock(trial_id="t1", error_file=str(error_file))
    trial.get_error.return_value = None  # not synced to storage yet
    tracker = MlflowTracker(ctx=mock.Mock())
    tracker._client = mock.Mock()
    tracker._runs["t1"] = "run-1"

    tracker.on_trial_recover(0, [], trial)
    tracker.on_trial_error(0, [], trial)
    tags = {call.args[1]: call.args[2] for call in tracker._client.set_tag.call_args_list}
    assert tags[Tag.LAST_RETRY_REASON].endswith("node died")
    assert tags[Tag.REASON].endswith("node died")
    tracker._client.set_terminated.assert_called_once_with("run-1", status="FAILED")
