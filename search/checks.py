"""What every search checks before it starts work: before it loads or generates data, starts
or joins Ray, or opens an MLflow run.

`problems(cfg)` lists, one line each, what would stop a search later:

- the space as the trials will use it: every bound, choice and constant applied to the base
  model and recipe (`ModelConfig`/`TrainConfig` check each value, so `temporal_depth` 0 or a
  `spatial_heads` that does not divide the width is named here, not trials later); the
  spelling of numbers, the accepted values of each field and the fields that cannot be
  searched are checked when the space is built (search/space.py);
- the data: the dataset's protocol, a real copy's folder and annotation file, the synthetic
  benchmark's settings, and that the folders it writes (the synthetic copy, the face-crop
  cache) can be written;
- where results go: the storage path can be written (its URI scheme is checked by
  `SearchConfig`: local folders and file:// only), and the tracking URI answers: an HTTP
  server within a few seconds (PROBE_TIMEOUT_S), a database server's port, an SQLite file's
  folder exists and can be written;
- the Optuna study's database (search.study): a database URL whose driver is installed, a
  server's port answering, a SQLite file that is Optuna's (or new) in a folder it can write;
- that one fold fits a local Ray on this machine (a cluster is checked when it is joined).

`require_valid(cfg)` raises them as one ConfigError; `run_search` calls it first, and
`tsfmicro search --check` prints them with the plan (search/plan.py). Nothing here starts
Ray or writes anything but a probe file it removes at once.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from search.config import SearchConfig
from tsfmicro.errors import ConfigError, TsfmicroError

PROBE_TIMEOUT_S = 5.0  # how long a tracking server gets to answer before the search refuses
SQLITE_HEADER = b"SQLite format 3\x00"
DATABASE_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}


def problems(cfg: SearchConfig, *, timeout: float = PROBE_TIMEOUT_S) -> list[str]:
    """Everything wrong with `cfg` that can be found before any work, one line each."""
    found = space_problems(cfg) + data_problems(cfg)
    found += [p for p in (storage_problem(cfg.storage_path),) if p]
    found += [p for p in (tracking_problem(cfg.tracking_uri, timeout),) if p]
    found += [p for p in (optuna_problem(cfg.optuna_url(), timeout),) if p]
    found += [p for p in (fit_problem(cfg),) if p]
    return found


def require_valid(cfg: SearchConfig, *, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise a ConfigError listing every problem (the first on the first line)."""
    found = problems(cfg, timeout=timeout)
    if found:
        raise ConfigError("\n  also: ".join(found))


def space_problems(cfg: SearchConfig) -> list[str]:
    """The space's constants, then each parameter's bounds (or each choice), applied to the
    base model and recipe: the values ModelConfig or TrainConfig refuse."""
    from search.space import resolve_configs
    from tsfmicro.config import preset

    model, train = preset(cfg.preset), cfg.train
    constants = dict(cfg.space.constants)
    try:
        resolve_configs(model, train, constants)
    except ConfigError as exc:
        return [f"search space constants: {exc}"]
    found = []
    for p in cfg.space.params:
        if p.type == "categorical":
            values = [(f"choice {c!r}", c) for c in p.choices]
        else:
            values = [(f"low {p.low!r}", p.low), (f"high {p.high!r}", p.high)]
        for which, value in values:
            try:
                resolve_configs(model, train, {**constants, p.name: value})
            except (ConfigError, TypeError) as exc:
                found.append(f"search space parameter {p.name!r}: its {which} is refused: {exc}")
    return found


def data_problems(cfg: SearchConfig) -> list[str]:
    """The dataset's protocol and settings; a real copy's folder and annotation; the folders
    the search would write (the synthetic copy unless present, the face-crop cache)."""
    from search.data import dataset_label, synthetic_root

    spec, found = cfg.data, []
    try:
        dataset_label(spec)
    except TsfmicroError as exc:
        found.append(f"DataSpec: {exc}")
    if spec.dataset == "toy":
        if spec.toy_classes < 2:
            found.append(f"DataSpec.toy_classes must be >= 2, got {spec.toy_classes}")
        return found
    if spec.dataset == "synthetic":
        from tsfmicro.synth.config import SynthConfig

        try:
            SynthConfig(
                dataset=spec.synth_dataset,
                subjects=spec.synth_subjects,
                clips_per_subject=spec.synth_clips,
                difficulty=spec.synth_difficulty,
                seed=spec.synth_seed,
            )
        except ConfigError as exc:
            found.append(f"DataSpec (synthetic benchmark): {exc}")
        root = synthetic_root(spec)
        if not root.is_dir():
            found += _unwritable("DataSpec.data_dir (where the synthetic copy is written)",
                                 root.parent)  # fmt: skip
    else:
        roots = [spec.root] if isinstance(spec.root, str) else []
        for root in roots:
            if not Path(root).expanduser().is_dir():
                found.append(f"DataSpec.root: {root} is not a folder")
        if isinstance(spec.annotation, str) and not Path(spec.annotation).expanduser().is_file():
            found.append(f"DataSpec.annotation: {spec.annotation} is not a file")
    found += _unwritable("DataSpec.cache_dir (the face-crop cache)", cache_dir(cfg))
    return found


def cache_dir(cfg: SearchConfig) -> Path:
    """The face-crop cache the search would use."""
    if cfg.data.cache_dir:
        return Path(cfg.data.cache_dir).expanduser()
    from tsfmicro.faces.cache import default_cache_dir

    return Path(default_cache_dir())


def storage_problem(storage_path: str) -> str:
    """Why the storage folder cannot be written ("" when it can)."""
    found = _unwritable("storage path", Path(storage_path).expanduser())
    return found[0] if found else ""


def _unwritable(what: str, folder: Path) -> list[str]:
    """[a line saying why `folder` cannot be created or written], or [] when it can: its
    nearest existing ancestor must be a folder where a file can be created (tried with a
    probe file, removed at once; creating the missing folders is left to the search)."""
    folder = folder.absolute()
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return [f"{what} {folder}: {existing} is a file, not a folder"]
    try:
        handle, probe = tempfile.mkstemp(prefix=".tsfmicro-probe-", dir=existing)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        where = "" if existing == folder else f" (the first existing folder of {folder})"
        return [f"{what} {folder}: cannot write in {existing}{where}: {exc.strerror or exc}"]
    return []


def shown_uri(uri: str) -> str:
    """`uri` with any user name and password replaced by ***, for messages and plans."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def sqlite_file(uri: str) -> Path | None:
    """The file of an `sqlite:///path` tracking URI (relative paths from the working
    directory, as MLflow reads them); None for another scheme or an in-memory database."""
    if not uri.lower().startswith("sqlite:"):
        return None
    path = uri.split("?", 1)[0][len("sqlite:") :]
    if not path.startswith("///"):
        return None  # sqlite:// (in memory)
    path = path[3:]
    return None if path in ("", ":memory:") else Path(path)


def tracking_problem(uri: str, timeout: float = PROBE_TIMEOUT_S) -> str:
    """Why the MLflow tracking URI cannot be used ("" when it can, or when its scheme is one
    this check does not probe, such as databricks)."""
    shown = shown_uri(uri)
    try:
        parts = urlsplit(uri)
        scheme = parts.scheme.lower().split("+")[0]
        port = parts.port
    except ValueError as exc:
        return f"tracking URI {shown}: not a valid URI ({exc})"
    if scheme == "sqlite":
        return _sqlite_problem(uri, shown)
    if scheme in ("http", "https"):
        return _http_problem(uri, shown, timeout)
    if scheme in DATABASE_PORTS:
        if not parts.hostname:
            return ""  # a local socket: nothing to probe by address
        return _port_problem(parts.hostname, port or DATABASE_PORTS[scheme], shown, timeout)
    if scheme in ("", "file"):
        folder = Path(parts.path if scheme == "file" else uri).expanduser()
        found = _unwritable(f"tracking URI {shown}: the folder", folder)
        return found[0] if found else ""
    return ""


def _sqlite_problem(uri: str, shown: str) -> str:
    path = sqlite_file(uri)
    if path is None:
        return ""
    path = path.expanduser().absolute()
    if path.is_dir():
        return f"tracking URI {shown}: {path} is a folder, not an SQLite file"
    if path.exists():
        try:
            with path.open("rb") as handle:
                head = handle.read(len(SQLITE_HEADER))
        except OSError as exc:
            return f"tracking URI {shown}: cannot read {path}: {exc.strerror or exc}"
        if head and head != SQLITE_HEADER:
            return f"tracking URI {shown}: {path} is not an SQLite database"
    if not path.parent.is_dir():
        return (
            f"tracking URI {shown}: the folder {path.parent} of its SQLite file does not exist "
            "(MLflow does not create it; check the path or create the folder)"
        )
    found = _unwritable(f"tracking URI {shown}: the folder", path.parent)
    return found[0] if found else ""


def _http_problem(uri: str, shown: str, timeout: float) -> str:
    """An HTTP(S) tracking server must answer within `timeout` seconds, as an MLflow server
    does: 200 on /health, or on its REST API (or 401/403 there: a server asking for
    credentials, which MLflow sends from its environment)."""
    base = uri.rstrip("/")
    status = _http_status(base + "/health", timeout)
    if status == 200:
        return ""
    if isinstance(status, int):
        status = _http_status(base + "/api/2.0/mlflow/experiments/search?max_results=1", timeout)
        if status in (200, 401, 403):
            return ""
    if isinstance(status, int):
        return (
            f"tracking URI {shown}: the server answered HTTP {status}, not as an MLflow "
            "tracking server (its /health and REST API pages)"
        )
    return f"tracking URI {shown}: the MLflow server cannot be reached ({status})"


def _http_status(url: str, timeout: float) -> int | str:
    """The HTTP status of GET `url`, or why there was none."""
    import http.client
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return f"no answer within {timeout:g} s"
        return str(reason)


def _port_problem(host: str, port: int, shown: str, timeout: float) -> str:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ""
    except TimeoutError:
        reason = f"no answer within {timeout:g} s"
    except OSError as exc:
        reason = exc.strerror or str(exc)
    return f"tracking URI {shown}: the database server {host}:{port} cannot be reached ({reason})"


def optuna_problem(url: str, timeout: float = PROBE_TIMEOUT_S) -> str:
    """Why the Optuna storage URL cannot keep the search's study ("" when it can): it must be
    a database URL SQLAlchemy reads, of a kind Optuna runs on, with its driver installed; a
    server's port must answer; a SQLite file must be on disk (not in memory), in a folder
    that can be written, and, when it exists, an SQLite database that is Optuna's or empty
    (never MLflow's: both keep a table alembic_version). Nothing is created."""
    from search.study import DEFAULT_PORTS, DIALECTS, sqlite_tables

    shown = f"Optuna storage {shown_uri(url)}"
    try:
        import sqlalchemy
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception as exc:  # SQLAlchemy's ArgumentError and the like
        return f"{shown}: not a database URL ({exc}); e.g. sqlite:////abs/optuna.db or " \
            "postgresql://user@host/db"  # fmt: skip
    kind = parsed.get_backend_name()
    if kind not in DIALECTS:
        return f"{shown}: {kind}:// is not a database Optuna keeps studies in " \
            f"({', '.join(DIALECTS)})"  # fmt: skip
    try:
        sqlalchemy.create_engine(parsed).dispose()  # loads the driver, connects nowhere
    except ModuleNotFoundError as exc:
        return f"{shown}: its database driver is not installed (no module {exc.name!r})"
    except Exception as exc:
        return f"{shown}: {type(exc).__name__}: {exc}"
    if kind != "sqlite":
        if not parsed.host:
            return ""  # a local socket: nothing to probe by address
        found = _port_problem(parsed.host, parsed.port or DEFAULT_PORTS[kind], shown, timeout)
        return found.replace(f"tracking URI {shown}", shown)
    if parsed.database in (None, "", ":memory:"):
        return f"{shown}: an in-memory database would not outlive the search; give a file"
    path = Path(parsed.database).expanduser().absolute()
    if path.is_dir():
        return f"{shown}: {path} is a folder, not an SQLite file"
    if path.exists() and path.stat().st_size:
        try:
            with path.open("rb") as handle:
                head = handle.read(len(SQLITE_HEADER))
        except OSError as exc:
            return f"{shown}: cannot read {path}: {exc.strerror or exc}"
        if head != SQLITE_HEADER:
            return f"{shown}: {path} is not an SQLite database"
        try:
            tables = sqlite_tables(path)
        except Exception as exc:  # sqlite3.DatabaseError: damaged
            return f"{shown}: {path} cannot be read as an SQLite database ({exc})"
        if tables and not {"studies", "version_info"} <= tables:
            whose = " (it is an MLflow store)" if "experiments" in tables else ""
            return (
                f"{shown}: {path} is an SQLite database without Optuna's tables{whose}; give "
                "Optuna a file of its own"
            )
    found = _unwritable(f"{shown}: the folder", path.parent)
    return found[0] if found else ""


def local_resources() -> tuple[float, float]:
    """(CPUs, GPUs) a local `ray.init()` on this machine would register: Ray's own detection
    (its CPU count honours container limits and CUDA_VISIBLE_DEVICES) without starting Ray;
    os.cpu_count() and torch's CUDA count where those helpers are not there."""
    try:
        from ray._private.accelerators import get_accelerator_manager_for_resource
        from ray._private.utils import get_num_cpus

        manager = get_accelerator_manager_for_resource("GPU")
        return float(get_num_cpus()), float(manager.get_current_node_num_accelerators())
    except Exception:  # a Ray version without these private helpers
        import torch

        return float(os.cpu_count() or 1), float(torch.cuda.device_count())


def local_ray_pending(cfg: SearchConfig) -> bool:
    """Whether the search would start a Ray of its own on this machine (no address, and no
    Ray already connected in this process)."""
    ray = sys.modules.get("ray")
    return cfg.ray_address is None and not (ray is not None and ray.is_initialized())


def fit_problem(cfg: SearchConfig) -> str:
    """Why not one fold fits the local Ray the search would start ("" when one does, or when
    the search joins a cluster, which is checked when joined)."""
    if not local_ray_pending(cfg):
        return ""
    cpus, gpus = local_resources()
    try:
        fit_resources(cfg.replace(resources=cfg.resources.resolved(gpus)), 1, cpus, gpus)
    except ConfigError as exc:
        return f"resources: {exc} (a local Ray on this machine)"
    return ""


def fit_resources(cfg: SearchConfig, n_folds: int, cpus: float, gpus: float) -> tuple[int, int]:
    """(fold tasks of one trial at once, trials at once) that fit a cluster of `cpus` CPUs
    and `gpus` GPUs unless set (cfg's resources resolved); a task trains
    `Resources.fold_batch` folds together. A ConfigError when not one fold fits."""
    r = cfg.resources
    slots = math.floor((cpus - 1e-9) / r.fold_cpus + 1e-9) if cpus else 0
    if r.fold_gpus:
        slots = min(slots, math.floor(gpus / r.fold_gpus + 1e-9))
    if slots < 1:
        raise ConfigError(
            f"the cluster ({cpus:g} CPUs, {gpus:g} GPUs) cannot fit one fold "
            f"({r.fold_cpus:g} CPUs, {r.fold_gpus:g} GPUs)"
        )
    group = r.fold_batch or n_folds
    parallelism = r.fold_parallelism or min(math.ceil(n_folds / group), slots)
    concurrency = r.concurrency or max(1, slots // parallelism)
    return parallelism, min(concurrency, cfg.trials)
