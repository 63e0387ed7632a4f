"""Everything a search checks before it starts work (search.checks) and `tsfmicro search
--check` (search.plan): every bad input refused up front with exit status 2 and one line that
names the field, file or value; a good configuration's plan printed with exit status 0; and in
every case nothing started: no Ray, no MLflow store, no storage folder, no data written."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from search.checks import problems, tracking_problem
from search.config import DataSpec, SearchConfig
from search.space import SearchSpace
from tsfmicro.cli import main
from tsfmicro.errors import ConfigError

TOY = ("--dataset", "toy", "--toy-subjects", "4", "--toy-per-subject", "4", "--preset", "micro")
FUSIONS = "late, early, t2s, t2s_pre, s2t, s2t_ref, temporal_only, spatial_only"


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if anything starts or joins Ray."""
    import ray

    def refuse(*args, **kwargs):
        raise AssertionError("a check started Ray")

    monkeypatch.setattr(ray, "init", refuse)
    yield
    assert not ray.is_initialized()


def where(tmp_path: Path) -> list[str]:
    """Storage, tracking and data folders of a test, all under tmp_path."""
    return [
        "--storage-path", str(tmp_path / "runs"),
        "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--data-dir", str(tmp_path / "synth"),
        "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip


def nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "optuna.db").exists()
    assert not (tmp_path / "synth").exists() and not (tmp_path / "cache").exists()


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["search", *args])
    out, err = capsys.readouterr()
    return code, out, err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- numbers in any spelling, choices, fields, bounds ------------------------------------------


def test_yaml_numbers_in_any_spelling_are_numbers(tmp_path, capsys, no_ray):
    """PyYAML (YAML 1.1) reads 1e-4, 1E-4 and 1_000 as strings; the space reads them as the
    numbers they spell, so bounds compare as numbers (5e-4 <= 1e-3, which as strings is
    false) and a constant reaches TrainConfig as a number."""
    space = tmp_path / "space.yaml"
    space.write_text(
        "lr: {type: float, low: 1e-4, high: 3E-3, log: true}\n"
        "weight_decay: {type: float, low: 5e-4, high: 1.0e-3}\n"
        "drop_path: {type: float, low: .05, high: 0.2, step: 5e-2}\n"
        "batch_size: {type: categorical, choices: ['16', 3.2e+1]}\n"
        "epochs: 1e1\n"
        "lr_decay_epochs: 1_000\n"
    )
    parsed = SearchSpace.from_yaml(space)
    params = {p.name: p for p in parsed.params}
    assert (params["lr"].low, params["lr"].high) == (1e-4, 3e-3)
    assert (params["weight_decay"].low, params["weight_decay"].high) == (5e-4, 1e-3)
    assert (params["drop_path"].low, params["drop_path"].step) == (0.05, 0.05)
    assert params["batch_size"].choices == (16, 32)
    assert dict(parsed.constants) == {"epochs": 10, "lr_decay_epochs": 1000}
    assert all(type(v) is int for v in dict(parsed.constants).values())
    cfg = SearchConfig(name="n", space=parsed)
    assert SearchConfig.from_dict(cfg.to_dict()) == cfg  # the settings file keeps them
    code, out, err = run_main(capsys, "--name", "n", *TOY, "--space", str(space), "--check",
                              *where(tmp_path))  # fmt: skip
    assert code == 0, err
    assert "lr float 0.0001..0.003 (log)" in out and "epochs = 10" in out
    nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        # a choice a field does not accept: named, with the values it does accept
        (("--param", "fusion=choice:late,bogus"),
         f"'fusion': 'bogus' is not a value fusion accepts; accepted: {FUSIONS}"),
        (("--set", "class_weighting=bogus"),
         "'bogus' is not a value class_weighting accepts; accepted: none, balanced"),
        (("--set", "augment=maybe"), "augment takes true or false, got 'maybe'"),
        (("--set", "lr=fast"), "search space constant 'lr': 'fast' is not a number"),
        (("--set", "epochs=2.5"), "search space constant 'epochs': 2.5 is not a whole number"),
        # fields that do not exist or cannot be searched
        (("--param", "retnet_depth=int:1:3"), "unknown field 'retnet_depth'"),
        (("--param", "image_size=int:32:64"), "'image_size' is set by the data or the run"),
        (("--param", "compile=choice:off,inductor"), "'compile' is a machine setting"),
        # ranges that do not fit their field, and bounds
        (("--param", "fusion=int:1:3"), f"fusion takes one of {FUSIONS}"),
        (("--param", "epochs=float:2:9"), "epochs takes whole numbers: use type int"),
        (("--param", "temporal_depth=int:2.5:8"), "'temporal_depth' low: 2.5 is not a whole"),
        (("--param", "lr=float:1e-2:1e-3"), "needs low <= high, got low=0.01 high=0.001"),
        (("--param", "weight_decay=float:0:1:log"), "a log scale needs low > 0, got 0"),
        # values the model or the recipe refuse, found at the bounds or in the choices
        (("--param", "temporal_depth=int:0:3"),
         "'temporal_depth': its low 0 is refused: ModelConfig.temporal_depth"),
        (("--param", "spatial_heads=choice:3,4"),
         "'spatial_heads': its choice 3 is refused: ModelConfig.spatial_heads: must divide"),
        (("--param", "drop_path=float:0:1"),
         "'drop_path': its high 1.0 is refused: ModelConfig.drop_path: must be in [0, 1)"),
        (("--set", "lr_gamma=2"), "search space constants: TrainConfig.lr_gamma"),
    ],
)  # fmt: skip
def test_bad_space_refused_up_front_by_name(tmp_path, capsys, no_ray, flags, message):
    code, out, err = run_main(capsys, "--name", "bad", *TOY, *flags, "--check",
                              *where(tmp_path))  # fmt: skip
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    nothing_written(tmp_path)


def test_bad_space_yaml_names_the_file_field_and_value(tmp_path, capsys, no_ray):
    space = tmp_path / "space.yaml"
    space.write_text("lr: {type: float, low: abc, high: 1e-3}\n")
    code, _, err = run_main(capsys, *TOY, "--space", str(space), *where(tmp_path))
    assert code == 2 and "search space parameter 'lr' low: 'abc' is not a number" in err
    space.write_text("fusion: {type: categorical, choices: [late, s2t, bogus]}\n")
    code, _, err = run_main(capsys, *TOY, "--space", str(space), *where(tmp_path))
    assert code == 2 and "'bogus' is not a value fusion accepts" in err
    nothing_written(tmp_path)


# ---- storage ----------------------------------------------------------------------------------


@pytest.mark.parametrize("uri", ["s3://bucket/searches", "gs://bucket/x", "hdfs://nn/x"])
def test_storage_uri_schemes_other_than_file_are_refused(tmp_path, capsys, no_ray, uri):
    """Until now s3://bucket/x silently wrote a local folder named 's3:'."""
    scheme = uri.split(":")[0]
    code, _, err = run_main(capsys, *TOY, "--check", *where(tmp_path), "--storage-path", uri)
    assert code == 2
    assert f"SearchConfig.storage_path: '{uri}': {scheme}:// storage is not supported" in err
    assert not Path(f"{scheme}:").exists()
    code, _, err = run_main(capsys, "--resume", "x", "--storage-path", uri)
    assert code == 2 and f"{scheme}:// storage is not supported" in err


def test_file_uri_storage_is_the_local_folder(tmp_path, capsys, no_ray):
    folder = tmp_path / "store"
    cfg = SearchConfig(name="f", storage_path=f"file://{folder}")
    assert cfg.storage_path == str(folder)
    assert SearchConfig(name="f", storage_path=f"file://localhost{folder}").storage_path == str(
        folder
    )
    with pytest.raises(ConfigError, match="a file URI names a local folder"):
        SearchConfig(name="f", storage_path="file://otherhost/x")
    code, out, _ = run_main(capsys, "--name", "f", *TOY, "--check", *where(tmp_path),
                            "--storage-path", f"file://{folder}")  # fmt: skip
    assert code == 0 and f"storage    {folder / 'f'}" in out
    assert not folder.exists()


def test_unwritable_storage_path_is_refused(tmp_path, capsys, no_ray):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = run_main(capsys, *TOY, "--check", *where(tmp_path),
                            "--storage-path", str(blocker / "runs"))  # fmt: skip
    assert code == 2
    assert f"storage path {blocker / 'runs'}: {blocker} is a file, not a folder" in err


def test_search_name_taken_and_nothing_to_resume(tmp_path, capsys, no_ray):
    from search.run import save_settings

    save_settings(SearchConfig(name="taken", storage_path=str(tmp_path / "runs")))
    code, _, err = run_main(capsys, "--name", "taken", *TOY, "--check", *where(tmp_path))
    assert code == 2 and "a search named 'taken' already exists" in err
    code, out, err = run_main(capsys, "--resume", "taken", "--check",
                              "--storage-path", str(tmp_path / "runs"))  # fmt: skip
    assert "already exists" not in err and "search plan: taken" in out
    code, _, err = run_main(capsys, "--resume", "nope", "--check",
                            "--storage-path", str(tmp_path / "runs"))  # fmt: skip
    assert code == 2 and "no search named 'nope'" in err


# ---- the tracking URI -------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 (the standard library's name)
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """Factory: a local HTTP server answering every GET with `status`; its URI."""
    servers = []

    def start(status: int) -> str:
        handler = type("Handler", (_Handler,), {"status": status})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_tracking_server_probe(http_server):
    assert tracking_problem(http_server(200)) == ""  # /health answers as MLflow's does
    assert tracking_problem(http_server(401)) == ""  # a server asking for credentials
    uri = http_server(404)
    assert tracking_problem(uri) == (
        f"tracking URI {uri}: the server answered HTTP 404, not as an MLflow tracking server "
        "(its /health and REST API pages)"
    )
    assert "answered HTTP 502" in tracking_problem(http_server(502))
    port = free_port()
    problem = tracking_problem(f"http://127.0.0.1:{port}")
    assert problem.startswith(f"tracking URI http://127.0.0.1:{port}: the MLflow server cannot")
    assert "refused" in problem


def test_a_silent_tracking_server_is_refused_within_the_timeout():
    """A server that accepts and never answers: once a ~4-minute hang, then a traceback."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.perf_counter()
        problem = tracking_problem(uri, timeout=1.0)
        seconds = time.perf_counter() - started
    assert problem == f"tracking URI {uri}: the MLflow server cannot be reached (no answer " \
        "within 1 s)"  # fmt: skip
    assert seconds < 3


def test_database_tracking_uri_probed_and_password_never_shown():
    port = free_port()
    problem = tracking_problem(f"postgresql://user:s3cret@127.0.0.1:{port}/mlflow", timeout=2)
    assert problem.startswith(f"tracking URI postgresql://***@127.0.0.1:{port}/mlflow: the "
                              f"database server 127.0.0.1:{port} cannot be reached")  # fmt: skip
    assert "s3cret" not in problem


def test_sqlite_tracking_uri_checks(tmp_path):
    assert tracking_problem(f"sqlite:///{tmp_path / 'new.db'}") == ""
    assert not (tmp_path / "new.db").exists()  # not created by the check
    missing = tmp_path / "typo" / "mlflow.db"
    assert tracking_problem(f"sqlite:///{missing}") == (
        f"tracking URI sqlite:///{missing}: the folder {missing.parent} of its SQLite file does "
        "not exist (MLflow does not create it; check the path or create the folder)"
    )
    assert not missing.parent.exists()
    (tmp_path / "folder.db").mkdir()
    assert "is a folder, not an SQLite file" in tracking_problem(
        f"sqlite:///{tmp_path / 'folder.db'}"
    )
    (tmp_path / "notes.db").write_text("these are notes")
    assert tracking_problem(f"sqlite:///{tmp_path / 'notes.db'}").endswith(
        f"{tmp_path / 'notes.db'} is not an SQLite database"
    )
    import sqlite3

    sqlite3.connect(tmp_path / "real.db").execute("create table t (x)").connection.close()
    assert tracking_problem(f"sqlite:///{tmp_path / 'real.db'}") == ""


def test_unreachable_tracking_uri_stops_the_search_before_any_work(tmp_path, capsys, no_ray):
    """Not only --check: a search refuses before it writes data, starts Ray or opens a store,
    and says every problem it found (here two), one line each."""
    port = free_port()
    args = [*where(tmp_path), "--tracking-uri", f"http://127.0.0.1:{port}",
            "--storage-path", "s3x://b"]  # fmt: skip
    code, _, err = run_main(capsys, "--dataset", "synthetic", "--synth-subjects", "2", *args)
    assert code == 2 and "s3x:// storage is not supported" in err  # built settings refused
    code, _, err = run_main(capsys, "--dataset", "synthetic", "--synth-subjects", "2",
                            "--fold-cpus", "1000", *args[:-2])  # fmt: skip
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"tsfmicro search: error: tracking URI http://127.0.0.1:{port}:")
    assert lines[1].startswith("  also: resources: the cluster") and "cannot fit one fold" in err
    assert len(lines) == 2
    nothing_written(tmp_path)


def test_run_search_checks_before_it_loads_data(tmp_path, no_ray):
    from search.run import run_search

    cfg = SearchConfig(
        name="s",
        data=DataSpec(synth_subjects=2, data_dir=str(tmp_path / "synth"),
                      cache_dir=str(tmp_path / "cache")),  # fmt: skip
        storage_path=str(tmp_path / "runs"),
        tracking_uri=f"sqlite:///{tmp_path / 'typo' / 'm.db'}",
    )
    with pytest.raises(ConfigError, match="of its SQLite file does not exist"):
        run_search(cfg)
    # the driver holds the search's name first (a lock file under the storage path, removed
    # again: search.endings); the CLI checks before that too (the tests above)
    runs = tmp_path / "runs"
    assert not runs.exists() or not list(runs.iterdir())
    assert not (tmp_path / "synth").exists() and not (tmp_path / "cache").exists()
    assert not (tmp_path / "typo").exists()


# ---- data -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--dataset", "casme2", "--root", "/no/such/copy"), "DataSpec.root: /no/such/copy is "
                                                            "not a folder"),
        (("--dataset", "synthetic", "--protocol", "9class"), "9class"),
        (("--dataset", "synthetic", "--synth-difficulty", "brutal"), "brutal"),
        (("--dataset", "toy", "--toy-classes", "1"), "DataSpec.toy_classes must be >= 2"),
        (("--dataset", "toy", "--fold-cpus", "1000"), "cannot fit one fold (1000 CPUs"),
    ],
)  # fmt: skip
def test_bad_data_and_resources_refused_by_check(tmp_path, capsys, no_ray, flags, message):
    code, _, err = run_main(capsys, "--name", "d", *flags, "--check", *where(tmp_path))
    assert code == 2 and message in err
    nothing_written(tmp_path)


def test_unwritable_data_folders_are_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cfg = SearchConfig(
        name="d",
        data=DataSpec(data_dir=str(blocker / "synth"), cache_dir=str(blocker / "cache")),
        storage_path=str(tmp_path / "runs"),
        tracking_uri=f"sqlite:///{tmp_path / 'm.db'}",
    )
    found = problems(cfg)
    assert any(p.startswith("DataSpec.data_dir (where the synthetic copy is written)") for p in
               found)  # fmt: skip
    assert any(p.startswith("DataSpec.cache_dir (the face-crop cache)") for p in found)


# ---- the plan ---------------------------------------------------------------------------------


def test_check_prints_the_plan_and_starts_nothing(tmp_path, capsys, no_ray):
    import json

    code, out, err = run_main(capsys, "--name", "plan1", *TOY, "--trials", "3", "--param",
                              "weight_decay=float:1e-3:1e-1:log", "--set", "epochs=3",
                              "--fold-cpus", "1", "--check", "--json",
                              str(tmp_path / "check.json"), *where(tmp_path))  # fmt: skip
    assert code == 0, err
    assert err == ""
    runs, db = tmp_path / "runs" / "plan1", tmp_path / "mlflow.db"
    for line in [
        "search plan: plan1 (nothing started: no Ray, no MLflow run, no data written)",
        "  data       toy / 3class: 4 subjects; the toy task in memory, 4 samples per subject",
        "  folds      leave-one-subject-out: 4 folds per trial",
        "  trials     3, sampler tpe, scheduler none, seed 0; objective final uf1 (maximised)",
        "weight_decay float 0.001..0.1 (log); epochs = 3",
        "  model      preset micro (32 px), 3 epochs, batch 16",
        "  per task   1 CPU(s), GPUs auto: 0.25 where the cluster has GPUs, else 0",
        "  cluster    a local Ray started by the search:",
        f"  runs       MLflow sqlite:///{db} ({db}, new), experiment tsfmicro/toy/3class",
        f"  optuna     study plan1 (new) in sqlite:///{tmp_path / 'optuna.db'}; view it: "
        f"optuna-dashboard sqlite:///{tmp_path / 'optuna.db'}",
        f"  storage    {runs} (Tune results and the search's settings)",
        "  models     best complete trial refitted on every subject and registered as "
        "tsfmicro-toy-3class (alias champion if it beats the current one)",
        "check: the settings are valid; nothing was started",
    ]:
        assert line in out
    report = json.loads((tmp_path / "check.json").read_text())
    assert report["valid"] is True and report["problems"] == []
    placement = report["plan"]["resources"]["placement"]
    assert placement["fold_slots"] >= 1 and placement["trials_at_once"] <= 3
    nothing_written(tmp_path)


@pytest.mark.parametrize("storage, expected", [
    ("redis://127.0.0.1/0", "redis:// is not a database Optuna keeps studies in"),
    ("not a url", "not a database URL"),
    ("sqlite://", "an in-memory database would not outlive the search"),
    ("postgresql+psycopg2://u:secret@127.0.0.1:1/db", "its database driver is not installed"),
    ("MLFLOW", "without Optuna's tables (it is an MLflow store); give Optuna a file of its own"),
    ("TEXT", "is not an SQLite database"),
])  # fmt: skip
def test_bad_optuna_storage_refused_by_check(tmp_path, capsys, no_ray, storage, expected):
    """--optuna-storage is checked before any work: one line naming the storage (its password
    never printed) and why; nothing created."""
    import sqlite3

    if storage == "MLFLOW":  # a file with MLflow's tables (and alembic_version, as Optuna's)
        path = tmp_path / "other" / "mlflow.db"
        path.parent.mkdir()
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE experiments (id INTEGER)")
            db.execute("CREATE TABLE alembic_version (version_num TEXT)")
        storage = f"sqlite:///{path}"
    elif storage == "TEXT":
        (tmp_path / "notes.txt").write_text("not a database\n")
        storage = f"sqlite:///{tmp_path / 'notes.txt'}"
    code, out, err = run_main(capsys, "--name", "o1", *TOY, "--check", *where(tmp_path),
                              "--optuna-storage", storage)  # fmt: skip
    assert code == 2
    assert err.count("tsfmicro search --check: error: Optuna storage ") == 1, err
    assert expected in err and "secret" not in err + out
    assert "check: 1 problem(s)" in out
    nothing_written(tmp_path)


def test_new_search_refused_where_its_study_exists(tmp_path, capsys, no_ray):
    """A study by the search's name in the Optuna storage (a search whose folder was deleted)
    refuses a new search by that name before work, with how to delete it; --check says so."""
    import optuna

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="taken", storage=url)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    code, out, err = run_main(capsys, "--name", "taken", *TOY, "--check", *where(tmp_path))
    assert code == 2
    assert f"an Optuna study named 'taken' already exists in {url} (2 trial(s))" in err
    assert f"optuna delete-study --study-name taken --storage {url}" in err
    assert "optuna     study taken (2 trial(s) there)" in out
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()
    with pytest.raises(ConfigError, match="an Optuna study named 'taken' already exists"):
        from search.run import run_search

        run_search(SearchConfig(name="taken", data=DataSpec(dataset="toy"), preset="micro",
                                storage_path=str(tmp_path / "runs"),
                                tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))  # fmt: skip
    assert not (tmp_path / "mlflow.db").exists()


def test_check_of_a_nested_search_and_several_problems_at_once(tmp_path, capsys, no_ray):
    port = free_port()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out, err = run_main(capsys, "--name", "n", *TOY, "--nested", "--outer-folds", "2",
                              "--check", *where(tmp_path), "--tracking-uri",
                              f"http://127.0.0.1:{port}", "--storage-path",
                              str(blocker / "runs"))  # fmt: skip
    assert code == 2
    assert "nested: 2 outer folds, a whole search inside each" in out
    assert "models     nothing registered: a nested search's product is its estimate" in out
    errors = [line for line in err.splitlines() if line]
    # the storage path, the tracking server, and the Optuna study's default file under the
    # storage path (the store is a server, so the study goes there)
    assert len(errors) == 3 and all(e.startswith("tsfmicro search --check: error: ") for e in
                                    errors)  # fmt: skip
    assert "tracking URI" in err and "is a file, not a folder" in err
    assert f"Optuna storage sqlite:///{blocker}/runs/optuna.db: the folder" in err
    assert "check: 3 problem(s)" in out


def test_check_as_a_command_exits_2_with_one_line_and_no_traceback(tmp_path):
    """The installed command: a bad choice is one line on stderr, exit status 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "tsfmicro.cli", "search", *TOY, "--check",
         "--param", "fusion=choice:late,bogus", *where(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "tsfmicro search: error: search space parameter 'fusion': 'bogus' is not a value fusion "
        f"accepts; accepted: {FUSIONS}, spatial_only_apex"
    ]
    assert proc.stdout == ""
    nothing_written(tmp_path)
