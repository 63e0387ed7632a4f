"""The search's Optuna study storage (search.study): where it goes by default, and a new SQLite
file opened by several searches at once (the inner searches of a nested one side by side)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from search.config import SearchConfig
from search.study import default_storage, existing_study

from services import service_env


def test_default_storage_is_beside_a_local_store_else_under_the_storage_path(tmp_path):
    assert default_storage(f"sqlite:///{tmp_path}/x/mlflow.db", "runs") == (
        f"sqlite:///{tmp_path}/x/optuna.db"
    )
    assert default_storage(f"file://{tmp_path}/mlruns", "runs") == f"sqlite:///{tmp_path}/optuna.db"
    served = default_storage("http://mlflow:5000", str(tmp_path / "runs"))
    assert served == f"sqlite:///{tmp_path}/runs/optuna.db"
    # relative paths are read from the working directory, as MLflow reads its own
    assert default_storage("sqlite:///mlflow.db", "runs") == f"sqlite:///{Path.cwd()}/optuna.db"
    cfg = SearchConfig(name="s", tracking_uri="http://mlflow:5000", storage_path=str(tmp_path))
    assert cfg.optuna_url() == f"sqlite:///{tmp_path}/optuna.db"
    given = cfg.replace(optuna_storage="postgresql://u@db/optuna")
    assert given.optuna_url() == "postgresql://u@db/optuna"


OPEN = """
import sys, time
from search.study import rdb_storage
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
optuna.create_study(storage=rdb_storage(sys.argv[1]), study_name=sys.argv[3])
print("ok")
"""


@pytest.mark.slow  # four interpreters importing Optuna: about 25 s at load 30 on 2 cores
def test_searches_opening_a_new_sqlite_file_at_once_all_succeed(tmp_path):
    """Optuna makes its tables on first use; four processes doing it on one new file at the
    same moment raced (measured: 9 of 12 failed with `table ... already exists` or a duplicate
    alembic_version row) until rdb_storage tried again."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    start = time.time() + 8  # after every process has imported what it needs
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN, url, str(start), f"s{k}"],
                         cwd=Path(__file__).resolve().parents[2], env=service_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for k in range(4)
    ]  # fmt: skip
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-800:] for _, err in outs]
    assert all(out.strip() == "ok" for out, _ in outs)
    assert [existing_study(url, f"s{k}") for k in range(4)] == [0] * 4
