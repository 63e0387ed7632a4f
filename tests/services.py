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
    env = dict(os.environ)
    env.update(RAY_AUTH_MODE="disabled", OMP_WAIT_POLICY="PASSIVE", RAY_USAGE_STATS_ENABLED="0",
               PYTHONUNBUFFERED="1", **extra)
    return env


def wait_for_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process serving {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@contextmanager
def mlflow_server(folder: Path):
    """`mlflow server` with a SQLite database backend and a served artifact store."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / "mlflow-server.log", "w")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
         "--artifacts-destination", str(folder / "artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=service_env(), start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{uri}/health", 90, process)
        yield uri
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def ray(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ray"), *args], env=service_env(), capture_output=True,
                          text=True, check=check, timeout=timeout)


@contextmanager
def ray_cluster(workers: list[dict[str, int]], head_cpus: int = 0):
    """A head node (no GPU work) and worker nodes, each a `ray start` on loopback.

    Yields (gcs address, dashboard URL for `ray job submit`).
    """
    port, dashboard = free_port(), free_port()
    ray("stop", "--force", check=False)
    try:
        ray("start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
            "--num-cpus", str(head_cpus), "--num-gpus", "0", "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(dashboard), "--disable-usage-stats")
        for worker in workers:
            ray("start", "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1",
                "--num-cpus", str(worker.get("cpus", 1)), "--num-gpus", str(worker.get("gpus", 0)))
        url = f"http://127.0.0.1:{dashboard}"
        wait_for_http(f"{url}/api/version", 60)
        wait_for_nodes(f"127.0.0.1:{port}", 1 + len(workers))
        yield f"127.0.0.1:{port}", url
    finally:
        ray("stop", "--force", check=False)


def wait_for_nodes(address: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = ray("status", "--address", address, check=False).stdout
        active = status.split("Active:")[-1].split("Pending:")[0]
        if active.count("node_") >= count:
            return
        time.sleep(1)
    raise TimeoutError(f"the Ray cluster at {address} did not reach {count} nodes")
