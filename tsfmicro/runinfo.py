"""Provenance recorded with every result: run id, time, code version, package versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tsfmicro


def git_commit(path: str | Path | None = None) -> str | None:
    """The commit of the checkout holding `path` (default: this package), with "-dirty" when
    it has uncommitted changes; None outside a git checkout."""
    where = Path(path) if path else Path(tsfmicro.__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def run_info(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    return {
        "run_id": new_run_id(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "command": argv if argv is not None else sys.argv,
        "versions": {
            "tsfmicro": tsfmicro.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "host": platform.node(),
    }
