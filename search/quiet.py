"""Harmless output of the dependencies, silenced where it starts (`tsfmicro search`).

    from search.quiet import silence_dependencies
    silence_dependencies()   # before Ray, MLflow and Optuna are imported (idempotent)

Each entry names one known message that says nothing a search's user can act on, and drops
only that message, by the logger that emits it or by the warning's text and category:
nothing is silenced by level or package as a whole, so a dependency's new or real warning
still shows. Tune's own progress tables are turned off where the Tuner is made
(`RunConfig(verbose=0)`, search.run); search.progress draws the search's progress instead.
"""

from __future__ import annotations

import logging
import os
import warnings

# (logger, start of the message): records dropped, with why each is harmless.
DROPPED_RECORDS: tuple[tuple[str, str], ...] = (
    # a new SQLite store being created or migrated: routine, and said once per store
    ("mlflow.store.db.utils", "Creating initial MLflow database tables"),
    ("mlflow.store.db.utils", "Updating database tables"),
    # logging a registered model: the check it announces reports its own failures
    ("mlflow.pyfunc", "Validating input example against model signature"),
    # the project's environment is built by uv, without pip; conda.yaml then names pip bare
    ("mlflow.utils.environment", "Failed to resolve installed pip version"),
    # a local Ray: the search says itself who can reach it and that the token is on
    # (search.security); "is disabled" (a real risk) is not dropped
    (
        "ray._private.authentication.authentication_token_setup",
        "Token authentication is enabled for this Ray cluster",
    ),
    # Optuna announcing the study it creates: the search prints its study's name and storage
    ("optuna.storages._in_memory", "A new study created in memory"),
    ("optuna.storages._rdb.storage", "A new study created in RDB"),
    ("optuna.storages.journal._storage", "A new study created in Journal"),
    # a stopped search: Tune's own advice (Tuner.restore in Python); the search prints the
    # command that resumes it, as its last line (search.endings)
    ("ray.tune.tune", "Experiment has been interrupted, but the most recent state was saved"),
)

# (message regex, category): warnings ignored.
IGNORED_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # Optuna's ExperimentalWarning (a direct Warning subclass) on the metric names a study is
    # given for optuna-dashboard; the interface is pinned by uv.lock
    (r".*set_metric_names is experimental", Warning),
)

# Environment defaults (a value the user set wins).
ENVIRONMENT: dict[str, str] = {
    # Tune's output engine: Ray 2.60's new one prints its experiment table and "View detailed
    # results" even at verbose=0; the classic one honours verbose=0 (search.run sets it)
    "RAY_AIR_NEW_OUTPUT": "0",
    # Tune warns when one step of its loop takes over 0.5 s ("The `callbacks.on_trial_result`
    # operation took 1.2 s, which may be a performance bottleneck"): the search's MLflow
    # tracker writes a trial's records and artifacts there, a second or more on a busy
    # machine, by design. Only a step over 10 s is worth a line. Read when Tune is imported.
    "TUNE_WARN_THRESHOLD_S": "10",
    # MLflow's tqdm bars while logging and downloading a model's artifacts: a few small files
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


class DropMessages(logging.Filter):
    """Drops a logger's records whose message starts with one of `prefixes`."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is left for its handler to report
            return True
        return not message.startswith(self.prefixes)


_done = False


def silence_dependencies() -> None:
    """Install the filters above (once per process)."""
    global _done
    if _done:
        return
    _done = True
    for name, value in ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    by_logger: dict[str, tuple[str, ...]] = {}
    for name, prefix in DROPPED_RECORDS:
        by_logger[name] = (*by_logger.get(name, ()), prefix)
    for name, prefixes in by_logger.items():
        logging.getLogger(name).addFilter(DropMessages(prefixes))
    for message, category in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
