"""Checks on an MLflow store before a command that only reads it (leaderboard, pull, dashboard).

MLflow opens a SQLite tracking URI by creating the file and its tables when they are not
there, so a mistyped path would read as an empty store ("no trials") and leave a new database
behind; and a file that is not an SQLite database fails deep inside SQLAlchemy with a
traceback. `require_readable(uri)` refuses both with one line before MLflow is called, and
`store_errors(uri)` turns what MLflow or its database raise later into one line too.

Only the standard library (and tsfmicro.errors) at import time: the dashboard imports this
before MLflow.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from tsfmicro.errors import ConfigError, DataError

SQLITE_PREFIX = "sqlite:///"
# A table every MLflow tracking database has had since its first schema.
MLFLOW_TABLE = "experiments"


def sqlite_path(uri: str) -> Path | None:
    """The file of a `sqlite:///PATH` tracking URI (relative or, with four slashes, absolute);
    None for any other URI and for an in-memory database."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    path = uri[len(SQLITE_PREFIX) :].split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    return Path(path)


def sqlite_problem(path: Path) -> str | None:
    """Why an existing file cannot be read as an MLflow SQLite database, or None. Opened read
    only: nothing is created or changed. A database another process holds locked is not a
    problem here (MLflow waits for it)."""
    if path.is_dir():
        return "it is a folder, not an SQLite file"
    uri = f"{path.absolute().as_uri()}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=2.0)) as db:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            return None
        return f"it cannot be read as an SQLite database ({exc})"
    except sqlite3.DatabaseError as exc:
        return f"it is not an SQLite database, or it is damaged ({exc})"
    if MLFLOW_TABLE not in {name for (name,) in rows}:
        return "it is an SQLite database without MLflow's tables (not an MLflow store)"
    return None


def require_readable(uri: str, flag: str = "--tracking-uri") -> None:
    """For a command that only reads the store: a SQLite tracking URI must name an existing
    MLflow database (ConfigError when the file does not exist, DataError when it is not an
    MLflow database). Other URIs (servers) are left to MLflow."""
    path = sqlite_path(uri)
    if path is None:
        return
    if not path.exists():
        raise ConfigError(
            f"{flag} {uri}: there is no MLflow database at {path} (this command only reads a "
            "store; a search creates one); check the path"
        )
    problem = sqlite_problem(path)
    if problem is not None:
        raise DataError(f"{flag} {uri}: {path}: {problem}")


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Turn an error of MLflow or of its database inside the block into one DataError line
    naming the store (its first line: MLflow and SQLAlchemy add the SQL and a link below)."""
    try:
        yield
    except Exception as exc:
        if not _from_store(exc):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise DataError(f"MLflow store {uri}: {first}") from exc


def _from_store(exc: BaseException) -> bool:
    """Whether `exc` comes from MLflow, SQLAlchemy or sqlite3 (by class, without importing
    them when they are not loaded)."""
    if isinstance(exc, sqlite3.Error):
        return True
    modules = {cls.__module__.split(".")[0] for cls in type(exc).__mro__}
    return bool(modules & {"mlflow", "sqlalchemy"})
