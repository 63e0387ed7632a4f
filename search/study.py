"""A search's Optuna study, kept in a database so that it outlives the search.

Every search keeps its Optuna study (each trial's sampled values, its state and its objective)
in a database, under the search's name, so `optuna-dashboard URL` shows its history, parameter
importances and parallel coordinates, and `tsfmicro search --resume NAME` continues the same
study. Where it is kept (`SearchConfig.optuna_url`, `--optuna-storage URL`):

- by default, a SQLite file `optuna.db` beside the MLflow store when that is local (the folder
  of `sqlite:///mlflow.db`, or of a file store), otherwise (an MLflow server) under the search's
  storage path (`<storage>/optuna.db`, shared by every search stored there);
- `--optuna-storage URL`: any database SQLAlchemy reaches (`postgresql://user@host/db`,
  `mysql://...`, `sqlite:////abs/path.db`). Never MLflow's own database: both keep their schema
  version in a table named `alembic_version`.

Ray Tune's OptunaSearch takes the storage as an `optuna.storages.BaseStorage` (not a URL) and
creates or loads the study by name. On a resume Tune restores the searcher from its pickle, and
the pickled study is bound to the same database (an RDBStorage pickles its URL), so the study
continued is the one in the database; the trials that were asked for after Tune last saved its
state are left RUNNING there and are marked FAIL (`lost_trials_failed`), as their MLflow runs
are deleted (search.tracking.MlflowTracker.drop_lost_trials), so no trial is counted twice.

Nothing here imports Optuna or SQLAlchemy at import time.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from search.stores import sqlite_path

OPTUNA_FILE = "optuna.db"
# SQLAlchemy dialects Optuna's RDBStorage runs on
DIALECTS = ("sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql")
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "oracle": 1521,
                 "mssql": 1433}  # fmt: skip
LOST_ATTR = "tsfmicro_lost"  # user attribute of a trial marked FAIL because Tune lost it
TUNE_TRIAL_ATTR = "tune_trial_id"  # user attribute: the trial's Tune id (and MLflow tag)
SQLITE_TIMEOUT_S = 30.0  # how long a writer waits for SQLite's lock (inner searches side by side)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def local_store_folder(tracking_uri: str) -> Path | None:
    """The folder of a local MLflow store (a SQLite file's folder, a file store's parent), or
    None for a server or an in-memory database."""
    if tracking_uri.lower().startswith("sqlite:"):
        path = sqlite_path(tracking_uri)
        return None if path is None else path.expanduser().absolute().parent
    try:
        parts = urlsplit(tracking_uri)
    except ValueError:
        return None
    if parts.scheme.lower() == "file":
        return Path(parts.path).expanduser().absolute().parent
    if parts.scheme == "":
        return Path(tracking_uri).expanduser().absolute().parent
    return None


def default_storage(tracking_uri: str, storage_path: str) -> str:
    """The Optuna storage a search uses unless told: `optuna.db` beside a local MLflow store,
    else under the storage path; an absolute SQLite URL."""
    folder = local_store_folder(tracking_uri)
    if folder is None:
        folder = Path(storage_path).expanduser().absolute()
    return sqlite_url(folder / OPTUNA_FILE)


def dialect(url: str) -> str:
    """The URL's database kind (`postgresql` for `postgresql+psycopg://`), lower case."""
    return urlsplit(url).scheme.lower().split("+")[0]


def sqlite_file(url: str) -> Path | None:
    """The file of a `sqlite:///` Optuna storage URL (None: in memory, or not SQLite)."""
    if dialect(url) != "sqlite":
        return None
    path = sqlite_path(url)
    return None if path is None else path.expanduser().absolute()


def existing_study(url: str, name: str) -> int | None:
    """How many trials the study `name` holds in the storage at `url`, or None when there is
    no such study. Read only: nothing is created (a SQLite file that is not there is not made,
    a server database gets no tables)."""
    path = sqlite_file(url)
    if path is not None:
        if not path.is_file() or path.stat().st_size == 0:
            return None
        uri = f"{path.as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=SQLITE_TIMEOUT_S)) as db:
            return _count(db.execute, name, _sqlite_tables(db))
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(sqlalchemy.inspect(conn).get_table_names())

            def run(sql: str, args: tuple = ()) -> Any:
                names = [f"a{i}" for i in range(len(args))]
                for n in names:
                    sql = sql.replace("?", f":{n}", 1)
                return conn.execute(sqlalchemy.text(sql), dict(zip(names, args, strict=True)))

            return _count(run, name, tables)
    finally:
        engine.dispose()


def _sqlite_tables(db: sqlite3.Connection) -> set[str]:
    rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {n for (n,) in rows}


def _count(execute: Any, name: str, tables: set[str]) -> int | None:
    if "studies" not in tables:
        return None
    row = execute("SELECT study_id FROM studies WHERE study_name = ?", (name,)).fetchone()
    if row is None:
        return None
    if "trials" not in tables:
        return 0
    return int(execute("SELECT COUNT(*) FROM trials WHERE study_id = ?", (row[0],)).fetchone()[0])


def sqlite_tables(path: Path) -> set[str]:
    """The tables of an existing SQLite file, opened read only."""
    with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True,
                                            timeout=SQLITE_TIMEOUT_S)) as db:  # fmt: skip
        return _sqlite_tables(db)


def rdb_storage(url: str, attempts: int = 3) -> Any:
    """The Optuna storage of `url` (its SQLite file's folder created when missing). Optuna
    creates its tables on first use; two inner searches of a nested one starting side by side
    on a new file may race to (`table ... already exists`, a duplicate version row): the
    loser tries again and finds them made."""
    import time

    import optuna
    import sqlalchemy.exc

    kwargs: dict[str, Any] = {}
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def lost_trials_failed(study: Any, known: set[int]) -> list[int]:
    """Mark FAIL the study's RUNNING trials whose numbers are not in `known` (the trials the
    searcher holds): asked for by a driver that stopped before Tune saved a state holding
    them, so no one will ever tell their result. Returns their numbers."""
    import optuna

    lost = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if t.number not in known
    ]
    reason = (
        "lost: the search driver stopped before Tune saved a state holding this trial; "
        "the resumed search sampled another in its place"
    )
    for frozen in lost:
        trial = optuna.trial.Trial(study, frozen._trial_id)
        trial.set_user_attr(LOST_ATTR, reason)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return [t.number for t in lost]


def study_name_problem(url: str, name: str, resume: bool) -> str:
    """Why a new search named `name` cannot have its study in `url` ("" when it can): a study
    by that name is there already (a search deleted from its storage folder, or one stored
    elsewhere that shares the database), whose trials it would mix with its own. A resumed
    search continues the study it finds (or makes it, if it stopped before making it)."""
    try:
        trials = existing_study(url, name)
    except Exception as exc:  # the server refused us, or the file is damaged
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return f"Optuna storage {_shown(url)}: cannot read its studies ({first})"
    if trials is None or resume:
        return ""
    return (
        f"an Optuna study named {name!r} already exists in {_shown(url)} ({trials} trial(s)), "
        "from an earlier search by that name; a new search would mix its trials with those. "
        f"Choose another --name, or delete it: optuna delete-study --study-name {name} "
        f"--storage {_shown(url)}"
    )


def _shown(url: str) -> str:
    """`url` without its password (as search.checks.shown_uri, which imports this module)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()
