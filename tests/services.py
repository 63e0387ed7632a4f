"""Real services for tests: an MLflow tracking server and a multi-node Ray cluster on loopback.

Both are started as a user would start them (`mlflow server`, `ray start`), from the
project's own environment, and stopped afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_env(**extra: str) -> dict[str, str]:
    """The environment of a process the tests start. A search's own local Ray runs with token
    authentication off: it listens on loopback only (tests/test_security.py checks both)."""
    env = dict(os.environ)
    for key in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):  # a user's own, if set: not wanted
        env.pop(key, None)
    env.update(RAY_AUTH_MODE="disabled", OMP_WAIT_POLICY="PASSIVE", RAY_USAGE_STATS_ENABLED="0",
               PYTHONUNBUFFERED="1", **extra)
    return env


_RAY_TOKEN: list[str] = []


def ray_token() -> str:
    """This test session's Ray token: the multi-node test clusters require it."""
    if not _RAY_TOKEN:
        import secrets

        _RAY_TOKEN.append(secrets.token_hex(16))
    return _RAY_TOKEN[0]


def cluster_env(**extra: str) -> dict[str, str]:
    """The environment of a multi-node test cluster's nodes and of its clients. Ray binds a
    node that is part of a cluster to every interface, so these clusters keep Ray's token
    authentication on, with a token of this test session's (what clusters/ asks of users)."""
    env = service_env(**extra)
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=ray_token())
    return env


def cluster_processes(gcs_address: str) -> dict[int, str]:
    """{pid: command line} of every live process of the test cluster whose GCS listens on the
    port of `gcs_address`: the sessions of its nodes' `ray start --block` commands (a node's
    agents rename themselves, ray::DashboardAgent, so their own command lines name nothing)."""
    port = gcs_address.rsplit(":", 1)[1]

    def args_of(pid: int) -> list[str]:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return []
        return [a.decode(errors="replace") for a in raw.split(b"\0")]

    starts = []
    for proc in Path("/proc").iterdir():
        args = args_of(int(proc.name)) if proc.name.isdigit() else []
        if "start" in args and "--block" in args and any(
                a == port or a.endswith(f":{port}") for a in args):
            starts.append(int(proc.name))
    return {pid: " ".join(args_of(pid)) for sid in starts for pid in session_processes(sid)}


# Ray reads RAY_AUTH_MODE once per process, when it is first loaded: a test process that has
# loaded Ray with authentication off cannot be a client of a token cluster. So the tests ask
# the clusters' jobs and state APIs from a process of its own, with the cluster's token.
CLIENT = """
import json, sys
from ray.job_submission import JobSubmissionClient
from ray.util.state import list_nodes, list_tasks
url = sys.argv[1]
print(json.dumps(eval(sys.argv[2])))
"""


def cluster_query(url: str, expression: str, timeout: float = 120):
    """The value of a Python `expression` (JSON-able) evaluated by a Ray client of the test
    cluster whose dashboard is at `url` (`url`, JobSubmissionClient, list_nodes and list_tasks
    are at hand)."""
    import json

    done = subprocess.run([sys.executable, "-c", CLIENT, url, expression], env=cluster_env(),
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{expression} at {url} failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def _jobs_api(url: str, path: str) -> dict:
    import json

    request = urllib.request.Request(f"{url}/api/jobs/{path}", headers=ray_headers())
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def job_status(url: str, job_id: str) -> str:
    """PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED: from the jobs REST API, with the token."""
    return _jobs_api(url, job_id)["status"]


def job_logs(url: str, job_id: str) -> str:
    """What the job's driver printed, stdout and stderr together."""
    return _jobs_api(url, f"{job_id}/logs")["logs"]


def ray_headers() -> dict[str, str]:
    """What a client sends a test cluster's dashboard (jobs API) to be let in."""
    return {"Authorization": f"Bearer {ray_token()}"}


def wait_for_http(url: str, timeout: float, process: subprocess.Popen | None = None,
                  headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process serving {url} exited with {process.returncode}")
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@contextmanager
def served(command: list[str], log_path: Path, health_url: str, cwd: Path | None = None):
    """Run a server process in its own session until its health URL answers; stop the whole
    session afterwards (SIGTERM, then SIGKILL after 20 s)."""
    log = open(log_path, "w")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(command, cwd=cwd, env=service_env(), stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_http(health_url, 90, process)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@contextmanager
def mlflow_server(folder: Path):
    """`mlflow server` with a SQLite database backend and a served artifact store."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"http://127.0.0.1:{port}"
    command = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
               "--artifacts-destination", str(folder / "artifacts"), "--workers", "1"]
    with served(command, folder / "mlflow-server.log", f"{uri}/health"):
        yield uri


def ray(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """The `ray` CLI as a client of a multi-node test cluster."""
    return subprocess.run([str(BIN / "ray"), *args], env=cluster_env(), capture_output=True,
                          text=True, check=check, timeout=timeout)


def submit_job(url: str, args: list[str], timeout: float, cwd: Path | None = None,
               agent_wait: float = 300) -> subprocess.CompletedProcess:
    """`ray job submit --address url ARGS`, submitted again while the cluster answers that no
    job agent is up yet (a freshly started node's agent can come up after the node is listed,
    later still on a loaded machine); a job that was submitted is never submitted twice."""
    deadline = time.monotonic() + agent_wait
    while True:
        done = subprocess.run([str(BIN / "ray"), "job", "submit", "--address", url, *args],
                              env=cluster_env(), capture_output=True, text=True,
                              timeout=timeout, cwd=cwd)
        not_up = "No available agent to submit job" in done.stdout + done.stderr
        if done.returncode == 0 or not not_up or time.monotonic() > deadline:
            return done
        time.sleep(5)


def wait_for_nodes(address: str, count: int, timeout: float, node: RayNode) -> None:
    """Wait until `ray status` lists `count` active nodes, `node` being the newest; fail early
    (with the tail of its log) if that node's `ray start --block` exits."""
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            raise RuntimeError(f"`ray start` for a node of {address} exited with "
                               f"{node.process.returncode}:\n{node.log_tail()}")
        status = ray("status", "--address", address, check=False).stdout
        active = status.split("Active:")[-1].split("Pending:")[0]
        if active.count("node_") >= count:
            return
        time.sleep(1)
    raise TimeoutError(f"the Ray cluster at {address} did not reach {count} nodes within "
                       f"{timeout:.0f} s; last `ray status`:\n{status}\n"
                       f"last log lines of the newest node:\n{node.log_tail()}")


# A cluster whose nodes can be killed one at a time.
#
# `ray stop` stops every Ray on the machine (other tests', other users'), so these nodes are
# each `ray start --block` in a session of their own: a node is exactly the processes of its
# session (raylet, agents and the workers it forks, which keep the session while taking their
# own process groups), and killing that session is a node lost without warning.


def session_processes(sid: int) -> list[int]:
    """Pids of the live (not zombie) processes in session `sid`."""
    out = subprocess.run(["ps", "-eo", "pid=,sid=,stat="], capture_output=True,
                         text=True).stdout
    return [int(pid) for pid, s, stat in (line.split() for line in out.splitlines())
            if int(s) == sid and not stat.startswith("Z")]


def kill_session(sid: int, timeout: float = 30) -> int:
    """SIGKILL every process of session `sid` until none is left; returns how many were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while (pids := session_processes(sid)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    if session_processes(sid):
        raise RuntimeError(f"processes of session {sid} survived SIGKILL")
    return len(killed)


class RayNode:
    """One `ray start --block` node in its own session."""

    def __init__(self, args: list[str], log: Path, cwd: Path | None = None) -> None:
        self.log = log
        self._log = open(log, "w")  # noqa: SIM115 (closed in kill)
        self.process = subprocess.Popen(
            [str(BIN / "ray"), "start", "--block", *args], env=cluster_env(), cwd=cwd,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def sid(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        return session_processes(self.sid)

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as error:
            return f"(log {self.log} unreadable: {error})"

    def node_id(self) -> str | None:
        """The Ray node id, read from this node's raylet command line."""
        for pid in self.pids():
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if args and args[0].endswith(b"/raylet"):
                for arg in args:
                    if arg.startswith(b"--node_id="):
                        return arg.split(b"=", 1)[1].decode()
        return None

    def kill(self) -> int:
        """Lose the node: SIGKILL every process of its session. Returns how many."""
        try:
            return kill_session(self.sid)
        finally:
            self.process.wait(10)
            self._log.close()


@contextmanager
def killable_ray_cluster(workers: list[dict[str, int]], folder: Path, head_cpus: int = 0):
    """A head (no GPU work) and worker nodes on loopback, each in its own session.

    Yields (gcs address, dashboard URL, [worker RayNode, ...]). Ray's session files go to a
    short folder of their own (unix socket paths are limited to ~107 characters); logs of the
    `ray start` commands go to `folder`. Stops by killing its own sessions only.

    Token authentication is on (`cluster_env`): its clients are the `ray` CLI (`ray`,
    `submit_job`) and `cluster_query`, each a process of its own with the token.
    """
    import shutil
    import tempfile

    port, dashboard = free_port(), free_port()
    folder.mkdir(parents=True, exist_ok=True)
    temp_dir = tempfile.mkdtemp(prefix="tsfray-", dir="/tmp")
    nodes: list[RayNode] = []
    try:
        nodes.append(RayNode(
            ["--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
             "--num-cpus", str(head_cpus), "--num-gpus", "0", "--dashboard-host", "127.0.0.1",
             "--dashboard-port", str(dashboard), "--disable-usage-stats", "--temp-dir", temp_dir,
             *agent_port()],
            # the head's folder is the job driver's: `python -m tsfmicro.cli` runs this checkout
            folder / "ray-head.log", cwd=Path(__file__).resolve().parents[1]))
        url = f"http://127.0.0.1:{dashboard}"
        wait_for_http(f"{url}/api/version", 120, nodes[0].process, headers=ray_headers())
        wait_for_nodes(f"127.0.0.1:{port}", 1, timeout=300, node=nodes[0])
        for i, worker in enumerate(workers):
            # One at a time: several nodes starting at once on a small machine time out. Even
            # alone, a worker's `ray start` gives up when its raylet is not registered within
            # Ray's fixed 30 s, which a loaded 2-core machine sometimes misses: start it again.
            for attempt in range(1, 4):
                node = RayNode(
                    ["--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1",
                     "--num-cpus", str(worker.get("cpus", 1)),
                     "--num-gpus", str(worker.get("gpus", 0)), *agent_port()],
                    folder / f"ray-worker{i}-attempt{attempt}.log")
                nodes.append(node)  # killed in `finally` whatever happens next
                try:
                    wait_for_nodes(f"127.0.0.1:{port}", 2 + i, timeout=300, node=node)
                    break
                except RuntimeError:  # its `ray start` gave up
                    nodes.pop().kill()
                    if attempt == 3:
                        raise
        yield f"127.0.0.1:{port}", url, nodes[1:]
    finally:
        for node in reversed(nodes):
            if node.process.poll() is None or node.pids():
                node.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


def agent_port() -> list[str]:
    """A free port for a node's dashboard agent: Ray's default (52365) is one per machine, and
    a node whose agent finds it taken (another cluster on this machine) takes no jobs."""
    return ["--dashboard-agent-listen-port", str(free_port())]


@contextmanager
def late_workers(address: str, workers: list[dict[str, int]], folder: Path):
    """Worker nodes joining the running cluster at `address` (of killable_ray_cluster) one at a
    time, as an autoscaler's would: yields their RayNodes once all are up, kills them after.
    A node whose `ray start` gives up is started again, as killable_ray_cluster does."""
    status = ray("status", "--address", address, check=False).stdout
    up = status.split("Active:")[-1].split("Pending:")[0].count("node_")
    nodes: list[RayNode] = []
    try:
        for i, worker in enumerate(workers):
            for attempt in range(1, 4):
                node = RayNode(
                    ["--address", address, "--node-ip-address", "127.0.0.1",
                     "--num-cpus", str(worker.get("cpus", 1)),
                     "--num-gpus", str(worker.get("gpus", 0)), *agent_port()],
                    folder / f"ray-late{i}-attempt{attempt}.log")
                nodes.append(node)
                try:
                    wait_for_nodes(address, up + 1 + i, timeout=300, node=node)
                    break
                except RuntimeError:
                    nodes.pop().kill()
                    if attempt == 3:
                        raise
        yield nodes
    finally:
        for node in reversed(nodes):
            if node.process.poll() is None or node.pids():
                node.kill()


# Who can reach a service: the sockets a set of processes listens on, and a connection from
# this process to the machine's outward address.


def outward_address() -> str | None:
    """A non-loopback IPv4 address of this machine (the one its default route leaves from, else
    one its host name resolves to), or None where it has none."""
    import ipaddress

    candidates = []
    for target in ("192.0.2.1", "10.255.255.255", "8.8.8.8"):  # UDP connect sends nothing
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((target, 9))
                candidates.append(s.getsockname()[0])
        except OSError:
            pass
    try:
        candidates += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None,
                                                                  socket.AF_INET)]
    except OSError:
        pass
    return next((a for a in candidates if not ipaddress.ip_address(a).is_loopback
                 and not ipaddress.ip_address(a).is_unspecified), None)


def _proc_address(hex_address: str) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))  # four host-order words
    address = ipaddress.IPv6Address(words)
    return str(address.ipv4_mapped or address)


def listening_sockets(pids: list[int]) -> set[tuple[str, int]]:
    """(bound address, port) of every TCP socket the processes `pids` listen on, read from
    /proc (Linux): '0.0.0.0' or '::' is every interface."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:  # gone, or not ours to read
            continue
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                found.add((_proc_address(address), int(port, 16)))
    return found


def reachable(host: str, port: int, timeout: float = 3) -> bool:
    """Whether a TCP connection to host:port from this process is accepted (False when it is
    refused, or nothing answers within `timeout`)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except (ConnectionRefusedError, TimeoutError):
        return False


@contextmanager
def optuna_dashboard(storage: str, folder: Path):
    """`optuna-dashboard STORAGE` on loopback, as a user starts it; yields its base URL."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"http://127.0.0.1:{port}"
    command = [str(BIN / "optuna-dashboard"), "--host", "127.0.0.1", "--port", str(port),
               storage]  # fmt: skip
    with served(command, folder / "optuna-dashboard.log", f"{uri}/api/studies"):
        yield uri


# A Ray client in another process: connects to the address given, or says why it could not.
STRANGER = """
import sys
import ray
try:
    ray.init(address=sys.argv[1], log_to_driver=False)
except Exception as error:  # refused: what kind, for the test to check
    print("REFUSED", type(error).__name__, str(error)[:300])
else:
    print("ADMITTED", ray.cluster_resources())
"""


def http_status(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                    timeout=5) as response:
            return response.status, response.read(200)
    except urllib.error.HTTPError as error:
        return error.code, b""


def assert_admits_no_stranger(gcs: str, url: str, nodes: int, outward: str | None,
                              home: Path) -> None:
    """A multi-node test cluster (token authentication on, what clusters/ asks of users, since
    Ray binds a cluster's nodes to every interface) admits no one without its token. From
    another process, with no token, on the machine's `outward` address: the GCS (`ray status`,
    ray.init), the Ray client server and the agents' HTTP APIs (jobs, runtime environments)
    refuse; the only doors that answer are Ray's read-only Prometheus metrics pages
    (docs/security.md). `nodes`: how many the cluster has, head included. On a machine with
    no outward address (`outward` None) the token's refusals are checked on loopback."""
    import http.client
    import ipaddress

    gcs_port = gcs.rsplit(":", 1)[1]
    home.mkdir(parents=True, exist_ok=True)
    stranger = service_env(HOME=str(home))  # no token, no token file
    assert "RAY_AUTH_TOKEN" not in stranger
    host = outward or "127.0.0.1"
    status = subprocess.run([str(BIN / "ray"), "status", "--address",
                             f"{host}:{gcs_port}"], env=stranger, capture_output=True,
                            text=True, timeout=180)
    assert status.returncode != 0
    assert "InvalidAuthToken" in status.stdout + status.stderr
    processes = cluster_processes(gcs)
    client_port = next(a.split("=", 1)[1] for cmd in processes.values()
                       if "ray.util.client.server" in cmd
                       for a in cmd.split() if a.startswith("--port="))
    for address in (f"{host}:{gcs_port}", f"ray://{host}:{client_port}"):
        attempt = subprocess.run([sys.executable, "-c", STRANGER, address], env=stranger,
                                 capture_output=True, text=True, timeout=240, cwd=home)
        assert attempt.stdout.startswith("REFUSED"), (address, attempt.stdout,
                                                      attempt.stderr[-2000:])
    # With the token, the same door opens: the refusals above are the token's doing.
    assert http_status(f"{url}/api/version", ray_headers())[0] == 200
    assert http_status(f"{url}/api/version")[0] == 401
    if outward is None:  # nobody else can reach this machine: no outward door to try
        return

    sockets = listening_sockets(list(processes))
    exposed = sorted({port for host, port in sockets
                      if not ipaddress.ip_address(host).is_loopback})
    assert int(gcs_port) in exposed  # a cluster's node listens beyond loopback
    metrics, refused = [], []
    for port in exposed:
        try:
            code, body = http_status(f"http://{outward}:{port}/api/job_agent/jobs/")
        except (OSError, http.client.HTTPException):  # BadStatusLine: gRPC, not HTTP
            continue
        if code in (401, 403):
            refused.append(port)
        else:
            assert code == 200 and body.startswith(b"# HELP"), (port, code, body)
            metrics.append(port)
    # A runtime-env agent per node, and the job agent (`ray job submit` lands there).
    assert len(refused) >= nodes + 1, (refused, exposed)
    assert metrics  # Prometheus pages, read-only: named in docs/security.md
