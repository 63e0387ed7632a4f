"""`tsfmicro dashboard`: a thin wrapper over `streamlit run dashboards/app.py`.

Streamlit is not imported here: the handler starts it as a child process, with the tracking
URI after `--` (and in $TSFMICRO_TRACKING_URI), so `tsfmicro --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from search.schema import DEFAULT_TRACKING_URI

APP = Path(__file__).with_name("app.py")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dashboard",
        help="browse leaderboards, trials, searches and registered models (Streamlit)",
        description="Start the Streamlit dashboard over an MLflow store that tsfmicro "
        "searches write to. It only reads the store.",
    )
    p.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                   help=f"MLflow tracking URI (default {DEFAULT_TRACKING_URI})")
    p.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only). The "
                   "dashboard has no login: anyone who reaches another address reads the "
                   "whole store (docs/dashboard.md: behind a proxy with authentication, or "
                   "an SSH tunnel)")
    p.set_defaults(handler=run_dashboard)


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or name to listen on) keeps the server on this machine."""
    import ipaddress

    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve beyond loopback


def streamlit_command(app: Path, uri: str, host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
        "--", "--tracking-uri", uri,
    ]  # fmt: skip


def run_dashboard(args: argparse.Namespace) -> int:
    from dashboards.store import FAIL_FAST_ENV, URI_ENV
    from tsfmicro.errors import ConfigError

    if importlib.util.find_spec("streamlit") is None:
        raise ConfigError("the dashboard needs Streamlit: install the 'dashboard' extra "
                          "(uv sync --extra dashboard, or pip install 'tsfmicro[dashboard]')")
    # It only reads: a SQLite path that does not exist, or is not an MLflow database, is
    # refused here rather than shown as an empty or broken store (search.stores).
    from search.stores import require_readable

    require_readable(args.tracking_uri)
    env = dict(os.environ)
    env[URI_ENV] = args.tracking_uri
    for key, value in FAIL_FAST_ENV.items():
        env.setdefault(key, value)
    # The app imports the dashboards package that lies beside the app file it runs.
    root = str(APP.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    print(f"tsfmicro dashboard: http://{args.host}:{args.port} reading {args.tracking_uri}",
          flush=True)
    if not is_loopback(args.host):
        print(f"tsfmicro dashboard: warning: listening on {args.host}, beyond this machine, "
              "and the dashboard has no login: anyone who reaches that address reads every "
              "run, parameter and artifact of the store and downloads its registered models. "
              "Put it behind a reverse proxy with authentication, or keep the default "
              "127.0.0.1 and use an SSH tunnel (docs/dashboard.md)", file=sys.stderr,
              flush=True)
    try:
        return subprocess.call(streamlit_command(APP, args.tracking_uri, args.host, args.port),
                               env=env)
    except KeyboardInterrupt:
        return 130
