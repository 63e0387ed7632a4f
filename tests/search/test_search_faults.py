"""Fault tolerance of a search: a killed driver resumes; killed workers are retried."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from services import kill_session, service_env


def start_search(folder, name: str, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "tsfmicro.cli", "search", "--name", name, "--dataset", "toy",
            "--preset", "tiny", "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--storage-path", str(folder / "runs"), "--quiet", *extra]
    log = open(folder / f"{name}.log", "a")  # noqa: SIM115 (lives as long as the process)
    return subprocess.Popen(args, cwd=folder, env=service_env(), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def runs(folder, kind: str | None = None):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tsfmicro/toy/3class")
    if exp is None:
        return []
    where = f"tags.`tsfmicro.kind` = '{kind}'" if kind else ""
    return client.search_runs([exp.experiment_id], filter_string=where, max_results=1000)


def wait_until(predicate, timeout: float, process: subprocess.Popen | None = None,
               what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"search exited with {process.returncode} before {what}")
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def processes_titled(title: str) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split(None, 1)[0]) for line in out.splitlines()
            if line.split(None, 1)[1:] and line.split(None, 1)[1].startswith(title)]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a whole search: about 5 min here, twice that on a loaded CI
def test_killed_driver_resumes_with_completed_work_kept(tmp_path):
    driver = start_search(tmp_path, "resume4", "--trials", "4", "--set", "epochs=2",
                          "--concurrency", "1", "--fold-parallelism", "1")

    def one_done_and_one_halfway() -> bool:
        trials = runs(tmp_path, "trial")
        complete = [r for r in trials if r.data.tags.get("tsfmicro.state") == "complete"]
        folds = runs(tmp_path, "fold")
        running = [r for r in trials if r.info.status == "RUNNING"]
        return bool(complete) and any(
            sum(f.data.tags["mlflow.parentRunId"] == r.info.run_id for f in folds) >= 2
            for r in running)

    try:
        wait_until(one_done_and_one_halfway, 600, driver, "a complete trial and a half-done one")
    finally:
        os.kill(driver.pid, signal.SIGKILL)  # the driver only, as a crash would
        driver.wait()
    before = {r.data.tags["tsfmicro.trial_id"]: r for r in runs(tmp_path, "trial")}
    assert any(r.info.status == "RUNNING" for r in before.values())  # left open by the crash
    kill_session(driver.pid)  # what the dead driver's local Ray leaves behind (not `ray stop`,
    # which would stop every Ray of this machine's user)

    resumed = subprocess.run(
        [sys.executable, "-m", "tsfmicro.cli", "search", "--resume", "resume4",
         "--storage-path", str(tmp_path / "runs"), "--quiet"],
        cwd=tmp_path, env=service_env(), capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-4000:]

    after = runs(tmp_path, "trial")
    assert len(after) == 4  # the resumed trials reopened their runs: no duplicates
    assert all(r.info.status == "FINISHED" and r.data.tags["tsfmicro.state"] == "complete"
               for r in after)
    assert not [r for r in runs(tmp_path) if r.info.status == "RUNNING"]
    for trial_id, run in before.items():
        if run.data.tags.get("tsfmicro.state") == "complete":  # finished before the crash
            again = next(r for r in after if r.data.tags["tsfmicro.trial_id"] == trial_id)
            assert again.info.end_time == run.info.end_time  # kept, not rerun
    # The trial interrupted half-way kept its finished folds.
    assert max(r.data.metrics.get("partial_folds_restored", 0) for r in after) >= 2
    assert len(runs(tmp_path, "fold")) == 4 * 6
    # The Optuna study (optuna.db beside the store) was continued, not restarted: each trial
    # once, COMPLETE with its MLflow objective, none left RUNNING by the crash; a trial asked
    # for after Tune's last save (lost with the driver) is FAIL, marked so.
    import optuna

    study = optuna.load_study(study_name="resume4", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 4 and "RUNNING" not in states
    assert all("tsfmicro_lost" in t.user_attrs for t in study.trials if t.state.name == "FAIL")
    values = {t.user_attrs["tune_trial_id"]: t.value for t in study.trials
              if t.state.name == "COMPLETE"}  # fmt: skip
    assert values == pytest.approx(
        {r.data.tags["tsfmicro.trial_id"]: r.data.metrics["objective"] for r in after})


@pytest.mark.slow
def test_killed_fold_worker_and_trial_process_are_retried(tmp_path):
    search = start_search(tmp_path, "faults", "--trials", "2", "--set", "epochs=4",
                          "--no-register", "--json", str(tmp_path / "outcome.json"))
    try:
        wait_until(lambda: bool(processes_titled("ray::loso_fold")), 300, search,
                   "a running fold task")
        os.kill(processes_titled("ray::loso_fold")[0], signal.SIGKILL)  # a fold's worker dies
        wait_until(lambda: len(runs(tmp_path, "fold")) >= 2, 300, search, "two folds logged")
        trial_processes = processes_titled("ray::ImplicitFunc")
        assert trial_processes, "no trial process found"
        os.kill(trial_processes[0], signal.SIGKILL)  # the trial's own process dies
        assert search.wait(timeout=900) == 0
    finally:
        if search.poll() is None:
            os.killpg(search.pid, signal.SIGKILL)
    outcome = json.loads((tmp_path / "outcome.json").read_text())
    assert [t["state"] for t in outcome["trials"]] == ["complete", "complete"]
    trials = runs(tmp_path, "trial")
    assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials)
    assert any("tsfmicro.last_retry_reason" in r.data.tags for r in trials)
    assert len(runs(tmp_path, "fold")) == 2 * 6
