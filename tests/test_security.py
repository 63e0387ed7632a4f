"""Closed by default (docs/security.md): the servers the project starts (a search's local Ray,
the tests' MLflow server, the dashboard) refuse a connection from another process to this
machine's outward address; a local Ray's token keeps out a client without it; a search does
not resume from state that another user could have written; the image grants no sudo (that
one in tests/clusters/test_clusters_image.py)."""

from __future__ import annotations

import ipaddress
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from search.config import SearchConfig
from search.run import SETTINGS_FILE, save_settings
from search.security import check_resume_tree, local_ray_exposure, resume_tree_problems
from tsfmicro.errors import ConfigError

from services import (
    BIN,
    free_port,
    kill_session,
    listening_sockets,
    mlflow_server,
    outward_address,
    reachable,
    served,
    service_env,
    session_processes,
)

REPO = Path(__file__).resolve().parents[1]

# A search's driver as far as its local Ray: init_ray exactly as run_search calls it, one task
# on two workers (so that worker processes listen too), then wait until stdin closes.
HOLD_RAY = """
import json, os, sys
import ray
from search.config import SearchConfig
from search.run import init_ray

notes = []
init_ray(SearchConfig(name="exposure"), notes.append)

@ray.remote
def pid():
    return os.getpid()

ray.get([pid.remote() for _ in range(2)])
print(json.dumps({"gcs": ray.get_runtime_context().gcs_address, "note": notes[0]}), flush=True)
sys.stdin.read()
ray.shutdown()
"""


@pytest.fixture
def outward() -> str:
    address = outward_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address: nobody could reach it")
    return address


def assert_closed(sockets: set[tuple[str, int]], outward: str, what: str) -> None:
    """Every socket on loopback, and every port refused on the outward address."""
    assert sockets, f"{what}: no listening socket found"
    exposed = sorted(s for s in sockets if not ipaddress.ip_address(s[0]).is_loopback)
    assert not exposed, f"{what} listens beyond loopback: {exposed}"
    answered = sorted(port for port in {p for _, p in sockets} if reachable(outward, port))
    assert not answered, f"{what}: {outward} accepted connections on ports {answered}"


def session_of(marker: str) -> int:
    """The session id of the process whose command line holds `marker`."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "cmdline").read_bytes():
                return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3])
        except OSError:
            continue
    raise AssertionError(f"no process with {marker!r} in its command line")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("auth", ["token", "disabled"])
def test_a_searchs_local_ray_listens_on_loopback_only(auth, outward, tmp_path):
    """`token`: as a user runs it (RAY_AUTH_MODE unset: Ray turns token auth on and writes the
    token under HOME); `disabled`: as the tests run it. Either way nothing listens beyond
    loopback; with the token, a client without it is refused even on loopback."""
    env = service_env()
    if auth == "token":
        del env["RAY_AUTH_MODE"]
        env["HOME"] = str(tmp_path)  # Ray writes its token to HOME/.ray/auth_token
    log = open(tmp_path / "driver.log", "w")  # noqa: SIM115 (closed below)
    driver = subprocess.Popen([sys.executable, "-c", HOLD_RAY], cwd=REPO, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                              text=True, start_new_session=True)
    try:
        line = driver.stdout.readline()
        assert line, f"the driver exited: {(tmp_path / 'driver.log').read_text()[-3000:]}"
        info = json.loads(line)
        gcs_host, gcs_port = info["gcs"].rsplit(":", 1)
        assert gcs_host == "127.0.0.1"
        sockets = listening_sockets(session_processes(driver.pid))
        assert ("127.0.0.1", int(gcs_port)) in sockets
        assert len({p for _, p in sockets}) >= 6  # GCS, raylet, object manager, workers, ...
        assert_closed(sockets, outward, "the local Ray")
        assert reachable("127.0.0.1", int(gcs_port))  # it does listen, on loopback
        if auth == "disabled":
            assert "loopback only; token authentication off" in info["note"]
            return
        token = tmp_path / ".ray" / "auth_token"
        assert f"token authentication on (token in {token}" in info["note"]
        assert token.stat().st_mode & 0o077 == 0  # readable by its owner only
        # A client on this machine: loopback kept (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, else
        # Ray swaps 127.0.0.1 for the outward address), with no token, then with the token.
        client = service_env(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", HOME=str(tmp_path / "other"))
        status = [str(BIN / "ray"), "status", "--address", info["gcs"]]
        refused = subprocess.run(status, env=client, capture_output=True, text=True,
                                 timeout=120)
        assert refused.returncode != 0
        assert "InvalidAuthToken" in refused.stdout + refused.stderr
        client.update(RAY_AUTH_MODE="token", HOME=str(tmp_path))
        admitted = subprocess.run(status, env=client, capture_output=True, text=True,
                                  timeout=120)
        assert admitted.returncode == 0, admitted.stderr[-2000:]
    finally:
        driver.stdin.close()
        try:
            driver.wait(60)
        finally:
            kill_session(driver.pid)  # whatever of its Ray is left
            log.close()


def test_an_exposed_local_ray_without_a_token_is_refused(monkeypatch, tmp_path):
    """Where Ray kept no loopback address (a future Ray), the token is the only lock: without
    it the search stops; with it the line says so and where the token is."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(ConfigError, match="listens beyond loopback with token authentication "
                       "off.*anyone who can reach this machine"):
        local_ray_exposure("192.0.2.2:6379")
    assert "loopback only" in local_ray_exposure("127.0.0.1:6379")
    token = tmp_path / "token"
    token.write_text("x" * 32)
    token.chmod(0o644)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    note = local_ray_exposure("192.0.2.2:6379")
    assert "every interface" in note and f"token in {token}, now readable by you only" in note
    assert token.stat().st_mode & 0o777 == 0o600


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_mlflow_server_listens_on_loopback_only(outward, tmp_path):
    """The tests' and benchmarks' `mlflow server` (scripts/demo.sh starts none: a SQLite file)."""
    folder = tmp_path / "mlflow"
    with mlflow_server(folder) as uri:
        port = int(uri.rsplit(":", 1)[1])
        sockets = listening_sockets(session_processes(session_of(str(folder / "server.db"))))
        assert ("127.0.0.1", port) in sockets
        assert_closed(sockets, outward, "mlflow server")
    assert "mlflow server" not in (REPO / "scripts" / "demo.sh").read_text()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_dashboard_listens_on_loopback_by_default(outward, tmp_path):
    port = free_port()
    store = tmp_path / "mlflow.db"
    from mlflow import MlflowClient

    MlflowClient(f"sqlite:///{store}").search_experiments()  # an empty store that exists
    command = [sys.executable, "-m", "tsfmicro.cli", "dashboard", "--tracking-uri",
               f"sqlite:///{store}", "--port", str(port)]  # no --host: the default
    with served(command, tmp_path / "dashboard.log", f"http://127.0.0.1:{port}/_stcore/health",
                cwd=REPO) as process:
        sockets = listening_sockets(session_processes(process.pid))
        assert ("127.0.0.1", port) in sockets
        assert_closed(sockets, outward, "the dashboard")
    assert "warning" not in (tmp_path / "dashboard.log").read_text()


def test_the_dashboard_warns_when_it_listens_beyond_loopback(monkeypatch, capsys):
    from dashboards import cli
    from tsfmicro.cli import build_parser

    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda command, env: calls.append(command) or 0)
    for host, warned in [("0.0.0.0", True), ("192.0.2.2", True), ("dash.example", True),
                         ("127.0.0.1", False), ("localhost", False), ("::1", False)]:
        args = build_parser().parse_args(["dashboard", "--tracking-uri", "http://m:5000",
                                          "--host", host])
        assert args.handler(args) == 0
        assert calls[-1][calls[-1].index("--server.address") + 1] == host
        err = capsys.readouterr().err
        assert ("has no login" in err and "reverse proxy" in err and host in err) == warned
    args = build_parser().parse_args(["dashboard", "--tracking-uri", "http://m:5000"])
    assert args.host == "127.0.0.1"


# Resuming: Tune's state is unpickled, so it must be the user's own.


def write_state(folder: Path) -> Path:
    """A search folder as Tune leaves it (the names that matter), all of it the user's."""
    trial = folder / "loso_trial_0001_1_2026-01-01_00-00-00"
    (trial / "checkpoint_000001").mkdir(parents=True)
    for path in (folder / "tuner.pkl", folder / "searcher-state-2026-01-01_00-00-00.pkl",
                 trial / "params.pkl"):
        path.write_bytes(pickle.dumps({"state": 1}))
    for path in (folder / "experiment_state-2026-01-01_00-00-00.json", trial / "result.json",
                 trial / "checkpoint_000001" / "folds.json"):
        path.write_text("{}")
    return folder


def test_the_users_own_state_passes(tmp_path):
    folder = write_state(tmp_path / "runs" / "s")
    assert resume_tree_problems(folder) == []
    check_resume_tree("s", folder)


@pytest.mark.parametrize("where", ["tuner.pkl", "searcher-state-2026-01-01_00-00-00.pkl",
                                   "loso_trial_0001_1_2026-01-01_00-00-00/params.pkl",
                                   "loso_trial_0001_1_2026-01-01_00-00-00", "."])
@pytest.mark.parametrize("bits", [0o002, 0o020])
def test_state_others_can_write_is_refused(tmp_path, where, bits):
    """World-writable, or writable by a group that is not the user's own, file or folder."""
    import grp

    folder = write_state(tmp_path / "runs" / "s")
    path = (folder / where).resolve()
    if bits == 0o020:
        if os.geteuid() != 0:
            pytest.skip("only root can give a file to a group it is not in")
        other = next((g.gr_gid for g in grp.getgrall() if g.gr_gid not in (0, os.getgid())
                      and not g.gr_mem), None)
        if other is None:
            pytest.skip("no other group to give the file to")
        os.chown(path, -1, other)
    path.chmod(path.stat().st_mode | bits)
    with pytest.raises(ConfigError, match="refusing to resume 's'") as error:
        check_resume_tree("s", folder)
    assert f"{path} is writable by" in str(error.value)


def test_state_of_another_user_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root can give a file to another user")
    folder = write_state(tmp_path / "runs" / "s")
    os.chown(folder / "tuner.pkl", 65534, 65534)  # nobody
    with pytest.raises(ConfigError, match=r"tuner.pkl belongs to uid 65534"):
        check_resume_tree("s", folder)


def test_folders_leading_to_the_state_count_but_sticky_ones_pass(tmp_path):
    """A folder above the search's that others can write lets them swap the whole search
    folder; the sticky bit (as on /tmp) forbids renaming entries of others."""
    shared = tmp_path / "shared"
    folder = write_state(shared / "runs" / "s")
    shared.chmod(0o777)
    problems = resume_tree_problems(folder)
    assert problems and problems[0].startswith(f"{shared} is writable by every user")
    shared.chmod(0o1777)
    assert resume_tree_problems(folder) == []


def test_resume_refuses_before_reading_anything(tmp_path):
    """`tsfmicro search --resume` exits 2 naming the file, unpickles nothing (the planted
    tuner.pkl would create a file if it were), and touches neither MLflow nor Ray."""
    storage = tmp_path / "runs"
    save_settings(SearchConfig(name="planted", storage_path=str(storage),
                               tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
    folder = storage / "planted"
    assert (folder / SETTINGS_FILE).is_file()
    marker = tmp_path / "unpickled"
    planted = folder / "tuner.pkl"
    planted.write_bytes(f"cbuiltins\nopen\n(S'{marker}'\nS'w'\ntR.".encode())
    planted.chmod(0o666)
    done = subprocess.run([sys.executable, "-m", "tsfmicro.cli", "search", "--resume", "planted",
                           "--storage-path", str(storage)], cwd=tmp_path, env=service_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"refusing to resume 'planted': {planted} is writable by every user" in done.stderr
    assert "Traceback" not in done.stderr
    assert not marker.exists() and not (tmp_path / "mlflow.db").exists()
    planted.chmod(0o600)  # taken back: the check passes (Tune would then read the file)
    check_resume_tree("planted", folder)
