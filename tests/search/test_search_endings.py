"""Clean endings of a search (search.endings): SIGINT/SIGTERM stop it with 130/143, nothing
refitted or registered, no MLflow run left RUNNING, its local Ray stopped and the resume
command as the last line, after which --resume finishes and registers; a search's name is held
while it runs (a second search or a --resume of it refuses at once, exit 2, naming it) and a
crash releases it (a stale lock is taken over)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from search import endings
from search.endings import NameHeld, SearchInterrupted

from services import service_env, session_processes

EXPERIMENT = "tsfmicro/toy/3class"


# ---- the name lock ----------------------------------------------------------------------------


def plant_lock(storage: Path, name: str, **fields) -> Path:
    """A lock file as another driver would have left it (this machine unless told)."""
    info = {**endings.holder_info(name), **fields}
    if "pid" in fields and "process_start" not in fields:
        info["process_start"] = endings._process_start(fields["pid"])
    path = endings.lock_path(str(storage), name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    return path


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def sleeper():
    """A live process of this machine that is not the test itself."""
    child = subprocess.Popen(["sleep", "120"])
    yield child
    child.kill()
    child.wait()


def test_lock_records_its_holder_and_is_released(tmp_path):
    path = endings.acquire(str(tmp_path), "s1")
    info = json.loads(path.read_text())
    assert path == tmp_path.resolve() / "s1.lock"
    assert info["host"] == socket.gethostname() and info["pid"] == os.getpid()
    assert info["search"] == "s1" and info["since"] and info["token"]
    assert endings.acquire(str(tmp_path), "s1") == path  # re-entrant within a process
    endings.release(path)
    assert path.exists()  # still held once
    endings.release(path)
    assert not path.exists()


def test_a_live_holder_is_refused_by_name(tmp_path, sleeper):
    path = plant_lock(tmp_path, "busy", pid=sleeper.pid)
    with pytest.raises(NameHeld) as caught:
        endings.acquire(str(tmp_path), "busy")
    message = str(caught.value)
    assert f"search 'busy' is running (pid {sleeper.pid} on host {socket.gethostname()}" in message
    assert json.loads(path.read_text())["since"] in message
    assert "tsfmicro search --resume busy" in message
    assert json.loads(path.read_text())["pid"] == sleeper.pid  # untouched


def test_a_stale_lock_of_a_dead_pid_is_taken_over(tmp_path, capfd):
    pid = dead_pid()
    plant_lock(tmp_path, "crashed", pid=pid)
    with endings.hold_name(str(tmp_path), "crashed") as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()
    said = capfd.readouterr().err
    assert f"taking over a stale lock (pid {pid} on {socket.gethostname()} is not running)" in said


def test_a_reused_pid_does_not_hold_the_lock(tmp_path, sleeper):
    plant_lock(tmp_path, "reused", pid=sleeper.pid, process_start="1")  # another process's start
    with endings.hold_name(str(tmp_path), "reused") as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_another_hosts_lock_holds_while_its_heartbeat_is_fresh(tmp_path):
    path = plant_lock(tmp_path, "remote", host="some-other-node", pid=1)
    with pytest.raises(NameHeld, match="pid 1 on host some-other-node"):
        endings.acquire(str(tmp_path), "remote")
    old = time.time() - endings.STALE_S - 60  # the heartbeat stopped: that driver is gone
    os.utime(path, (old, old))
    with endings.hold_name(str(tmp_path), "remote") as held:
        assert json.loads(held.read_text())["host"] == socket.gethostname()


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path):
    path = endings.acquire(str(tmp_path), "mine")
    plant_lock(tmp_path, "mine", token="someone-else")  # taken over while we were frozen
    endings.release(path)
    assert json.loads(path.read_text())["token"] == "someone-else"


def test_cli_refuses_a_running_search_before_any_work(tmp_path, capsys, sleeper):
    """Both a --resume and a new search by a running search's name: exit 2 at once, the
    holder named; no Ray, no data, no MLflow store."""
    import ray

    from search.config import DataSpec, SearchConfig
    from search.run import save_settings
    from tsfmicro.cli import main

    storage, db = tmp_path / "runs", tmp_path / "mlflow.db"
    cfg = SearchConfig(
        name="held",
        storage_path=str(storage),
        tracking_uri=f"sqlite:///{db}",
        data=DataSpec(dataset="toy"),
    )
    save_settings(cfg)
    plant_lock(storage, "held", pid=sleeper.pid)
    started = time.monotonic()
    for args in (["--resume", "held"], ["--name", "held", "--dataset", "toy"]):
        rc = main(
            [
                "search",
                *args,
                "--storage-path",
                str(storage),
                "--tracking-uri",
                f"sqlite:///{db}",
                "--data-dir",
                str(tmp_path / "data"),
            ]
        )
        err = capsys.readouterr().err
        assert rc == 2, err
        assert f"search 'held' is running (pid {sleeper.pid} on host " in err
    assert time.monotonic() - started < 10
    assert not ray.is_initialized() and not db.exists() and not (tmp_path / "data").exists()


# ---- the signal guard -------------------------------------------------------------------------


def test_a_signal_outside_tunes_loop_stops_at_once_with_its_exit_code(tmp_path):
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(SearchInterrupted) as caught:
        with endings.interruptible("s2", str(tmp_path)):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
    stop = caught.value
    assert (stop.signum, stop.exit_code, stop.name) == (signal.SIGTERM, 143, "s2")
    assert (
        stop.lines()[-1]
        == f"resume it with: tsfmicro search --resume s2 --storage-path {tmp_path.resolve()}"
    )
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_plain_keyboard_interrupt_becomes_the_signal_received(tmp_path):
    """Ray's blocking calls turn what a handler raises into a plain KeyboardInterrupt; the
    guard gives it back its signal, and runs its actions (stopping a local Ray) once."""
    done = []
    with pytest.raises(SearchInterrupted) as caught:
        with endings.interruptible("s3", str(tmp_path)) as guard:
            endings.at_interrupt(lambda: done.append("ray stopped"))
            with endings.interruptible("inner", str(tmp_path)) as inner:
                assert inner is guard  # an inner search shares the outer guard
                guard.signum = signal.SIGINT
                raise KeyboardInterrupt
    assert caught.value.exit_code == 130 and caught.value.name == "s3"
    assert done == ["ray stopped"]


def test_once_the_champion_is_registered_the_search_finishes(tmp_path):
    with endings.interruptible("s4", str(tmp_path)) as guard:
        endings.finishing()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        assert guard.signum == signal.SIGINT  # noted, not raised


def test_tune_loop_leaves_the_handlers_as_it_found_them(tmp_path):
    usr1 = signal.getsignal(signal.SIGUSR1)
    with endings.interruptible("s5", str(tmp_path)) as guard:
        with endings.tune_loop():
            assert os.environ["TUNE_DISABLE_SIGINT_HANDLER"] == "1" and guard.in_tune
            signal.signal(signal.SIGUSR1, lambda *a: None)  # as Tune does
            signal.signal(signal.SIGINT, signal.default_int_handler)
        assert "TUNE_DISABLE_SIGINT_HANDLER" not in os.environ and not guard.in_tune
        assert signal.getsignal(signal.SIGUSR1) == usr1
        assert signal.getsignal(signal.SIGINT) == guard.handle


# ---- real searches ------------------------------------------------------------------------------

TINY = [
    "--dataset",
    "toy",
    "--preset",
    "micro",
    "--toy-subjects",
    "4",
    "--toy-per-subject",
    "6",
    "--trials",
    "3",
    "--set",
    "epochs=2",
    "--concurrency",
    "1",
]  # not --quiet: its progress lines come before the last line, which stays how to resume


def cli(folder: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tsfmicro.cli",
        "search",
        *args,
        "--tracking-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--storage-path",
        str(folder / "runs"),
    ]


def client(folder: Path):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")


def all_runs(folder: Path) -> list:
    exp = client(folder).get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return []
    return client(folder).search_runs([exp.experiment_id], max_results=1000)


def of_kind(runs: list, kind: str) -> list:
    return [r for r in runs if r.data.tags.get("tsfmicro.kind") == kind]


def study_trials(folder: Path, name: str) -> dict[int, str]:
    """The search's Optuna study (optuna.db beside its MLflow store): trial number -> state."""
    import optuna

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'optuna.db'}")
    return {t.number: t.state.name for t in study.trials}


def last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]


def mid_search(folder: Path) -> bool:
    """A trial has completed (a refit would follow) and another one is running."""
    trials = of_kind(all_runs(folder), "trial")
    states = [r.data.tags.get("tsfmicro.state") for r in trials]
    # a run tagged complete is RUNNING for a moment until it is ended: not the one looked for
    running = [r for r in trials if r.info.status == "RUNNING"
               and r.data.tags.get("tsfmicro.state") == "running"]  # fmt: skip
    return "complete" in states and bool(running)


def wait_mid_search(driver: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while "ray:" not in log.read_text():  # its MLflow store exists from here (no creation race)
        assert driver.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the search did not start in time"
        time.sleep(0.5)
    while not mid_search(log.parent):
        assert driver.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "no trial completed with another running in time"
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_search_ends_clean_and_resumes(tmp_path, signum):
    """Stopped while a trial runs, once another has completed (so a refit would follow):
    Ctrl-C reaches the whole process group as a terminal sends it, SIGTERM the driver only,
    as `kill` does."""
    name = f"stop-{signum.name.lower()}"
    log = tmp_path / "driver.log"
    with open(log, "w") as out:
        driver = subprocess.Popen(
            cli(tmp_path, "--name", name, *TINY),
            cwd=tmp_path,
            env=service_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_mid_search(driver, log)
            if signum == signal.SIGINT:
                # While it runs, its name is held: a second search by that name and a resume
                # of it are refused at once, naming it.
                for args in (["--name", name, *TINY], ["--resume", name]):
                    began = time.monotonic()
                    refused = subprocess.run(
                        cli(tmp_path, *args),
                        cwd=tmp_path,
                        env=service_env(),
                        capture_output=True,
                        text=True,
                        timeout=300,
                    )
                    assert refused.returncode == 2, refused.stderr[-3000:]
                    assert (
                        f"search '{name}' is running (pid {driver.pid} on host "
                        f"{socket.gethostname()}, since "
                    ) in refused.stderr
                    took = time.monotonic() - began
                    print(f"refused {args[0]} in {took:.1f} s")
                    assert took < 20, "not refused at once"  # about 1 s: no torch, Ray, data
                os.killpg(driver.pid, signum)
            else:
                os.kill(driver.pid, signum)
            stopped_at = time.monotonic()
            rc = driver.wait(300)
            print(f"{signum.name}: exit {rc} after {time.monotonic() - stopped_at:.1f} s")
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
                driver.wait()
    text = log.read_text()
    assert rc == 128 + signum, text[-3000:]
    assert last_line(text) == (
        f"resume it with: tsfmicro search --resume {name} --storage-path {tmp_path / 'runs'}"
    )
    # not a terminal: plain progress lines (search.progress), no redraws, no Tune tables
    assert "\r" not in text and "Trial status" not in text
    runs = all_runs(tmp_path)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    (search_run,) = of_kind(runs, "search")
    assert search_run.info.status == "KILLED"
    assert any(r.info.status == "KILLED" for r in of_kind(runs, "trial"))
    assert not of_kind(runs, "refit")
    assert not client(tmp_path).search_model_versions()
    assert not (tmp_path / "runs" / f"{name}.lock").exists()
    # its Optuna study outlives it, beside the MLflow store, with the trial that completed
    before = study_trials(tmp_path, name)
    assert "COMPLETE" in before.values()
    deadline = time.monotonic() + 30  # its local Ray went with it
    while session_processes(driver.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not session_processes(driver.pid)

    if signum == signal.SIGTERM:  # a crashed driver's lock does not block the resume
        plant_lock(tmp_path / "runs", name, pid=dead_pid())
    resumed = subprocess.run(
        cli(tmp_path, "--resume", name, "--quiet"),
        cwd=tmp_path,
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    if signum == signal.SIGTERM:
        assert "taking over a stale lock" in resumed.stderr
    runs = all_runs(tmp_path)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    trials = of_kind(runs, "trial")
    assert len(trials) == 3 and all(r.info.status == "FINISHED" for r in trials)
    (again,) = of_kind(runs, "search")
    assert again.info.run_id == search_run.info.run_id and again.info.status == "FINISHED"
    (version,) = client(tmp_path).search_model_versions()
    assert version.name == "tsfmicro-toy-3class"
    assert not (tmp_path / "runs" / f"{name}.lock").exists()
    # The resume continued the same study (one study by that name, its trials kept with their
    # numbers and values), told it every trial once, and left none RUNNING: 3 complete, each
    # the value of its MLflow run; a trial asked for after Tune last saved (lost) is FAIL.
    after = study_trials(tmp_path, name)
    assert {n: s for n, s in before.items() if s == "COMPLETE"}.items() <= after.items()
    assert "RUNNING" not in after.values() and list(after.values()).count("COMPLETE") == 3
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == [name]
    values = {t.user_attrs["tune_trial_id"]: t.value
              for t in optuna.load_study(study_name=name, storage=storage).trials
              if t.state.name == "COMPLETE"}  # fmt: skip
    assert values == pytest.approx({r.data.tags["tsfmicro.trial_id"]: r.data.metrics["objective"]
                                    for r in trials})  # fmt: skip
