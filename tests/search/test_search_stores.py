"""Commands that only read an MLflow store (leaderboard, pull, dashboard) on a wrong store: a
SQLite path that does not exist is refused and not created, a file that is not an MLflow
database is one line (exit 2), a bad model spec or a missing alias is one line naming it; a
pull replaces its folder whole, and a full disk leaves the earlier pull as it was."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from full_disk import leftovers

from search.registry import parse_model_spec
from search.stores import require_readable, sqlite_problem
from tsfmicro.cli import main
from tsfmicro.errors import ConfigError, DataError

MODEL = "tsfmicro-faults-3class"
READERS = [
    ["leaderboard"],
    ["pull", f"{MODEL}@champion", "--out", "{out}"],
    ["dashboard", "--port", "9"],
]


def run(capsys, argv: list[str], **paths: Path) -> tuple[int, str]:
    code = main([a.format(**paths) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err


def one_line(err: str, command: str) -> None:
    assert err.startswith(f"tsfmicro {command}: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


@pytest.fixture
def garbage(tmp_path) -> Path:
    path = tmp_path / "garbage.db"
    path.write_bytes(os.urandom(4096))
    return path


@pytest.mark.parametrize("argv", READERS, ids=lambda a: a[0])
def test_a_missing_sqlite_store_is_refused_and_not_created(argv, tmp_path, capsys):
    missing = tmp_path / "typo.db"
    code, err = run(capsys, [*argv, "--tracking-uri", f"sqlite:///{missing}"], out=tmp_path)
    assert code == 2
    one_line(err, argv[0])
    assert f"there is no MLflow database at {missing}" in err
    assert not missing.exists()


@pytest.mark.parametrize("argv", READERS, ids=lambda a: a[0])
def test_a_corrupt_store_is_one_line(argv, garbage, tmp_path, capsys):
    before = garbage.read_bytes()
    code, err = run(capsys, [*argv, "--tracking-uri", f"sqlite:///{garbage}"], out=tmp_path)
    assert code == 2
    one_line(err, argv[0])
    assert f"{garbage}: it is not an SQLite database, or it is damaged" in err
    assert garbage.read_bytes() == before  # read only


def test_an_sqlite_file_without_mlflow_tables_is_not_taken_for_a_store(tmp_path):
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(DataError, match="without MLflow's tables"):
        require_readable(f"sqlite:///{other}")
    with sqlite3.connect(other) as db:  # left as it was: no MLflow table added
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert tables == {"notes"}
    assert sqlite_problem(tmp_path) == "it is a folder, not an SQLite file"
    require_readable("http://127.0.0.1:1")  # servers are MLflow's to check
    with pytest.raises(ConfigError, match="--store sqlite:///none.db: there is no"):
        require_readable("sqlite:///none.db", flag="--store")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (f"{MODEL}@", "the alias after '@' is empty"),
        (f"{MODEL}@ ", "the alias after '@' is empty"),
        ("@champion", "no model name"),
        (f"{MODEL}/", "version '' is not a number >= 1"),
        (f"{MODEL}/0", "version '0' is not a number >= 1"),
        (f"{MODEL}/two", "version 'two' is not a number >= 1"),
        (f"{MODEL}/1@champion", "an alias and a version at once"),
    ],
)
def test_a_bad_model_spec_is_refused_before_the_store_is_read(spec, message, tmp_path, capsys):
    missing = tmp_path / "none.db"
    code, err = run(capsys, ["pull", spec, "--tracking-uri", f"sqlite:///{missing}",
                             "--out", str(tmp_path / "models")])  # fmt: skip
    assert code == 2
    one_line(err, "pull")
    assert f"model {spec!r}: {message}" in err and "NAME@ALIAS" in err
    assert not missing.exists() and not (tmp_path / "models").exists()


def test_model_specs_parse():
    assert parse_model_spec(f"{MODEL}@champion") == (MODEL, "champion", None)
    assert parse_model_spec(f"{MODEL}/3") == (MODEL, None, "3")
    assert parse_model_spec(MODEL) == (MODEL, None, None)


# A real MLflow store with one registered model (creating its tables takes a while).


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> str:
    """A SQLite store holding MODEL version 1 (alias champion) and version 2 (no alias)."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.create_registered_model(MODEL)
    for version in (1, 2):
        source = folder / f"v{version}" / "tsfmicro_model"
        source.mkdir(parents=True)
        (source / "tsfmicro_model.json").write_text(f'{{"version": {version}}}')
        (source / "weights.pt").write_bytes(b"w" * 5000)
        client.create_model_version(MODEL, source=str(source.parent))
    client.set_registered_model_alias(MODEL, "champion", 1)
    return uri


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            f"{MODEL}@best",
            f"{MODEL} has no alias 'best' (versions: 1, 2; aliases: champion (version 1))",
        ),
        (f"{MODEL}/9", f"{MODEL} has no version 9"),
        (
            "tsfmicro-none",
            f"no registered model named 'tsfmicro-none' in {{uri}} (registered: {MODEL})",
        ),
    ],
)
def test_a_missing_model_or_alias_says_what_there_is(registry, spec, message, tmp_path, capsys):
    code, err = run(capsys, ["pull", spec, "--tracking-uri", registry, "--out", str(tmp_path)])
    assert code == 2
    one_line(err, "pull")
    assert message.format(uri=registry) in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_pull_replaces_its_folder_whole_and_a_full_disk_keeps_the_old_one(
    registry, tmp_path, capsys, monkeypatch
):
    import mlflow

    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # stderr: the error only
    out = tmp_path / "models"
    folder = out / f"{MODEL}_champion"
    assert main(["pull", f"{MODEL}@champion", "--tracking-uri", registry, "--out", str(out)]) == 0
    assert f"-> {folder / 'tsfmicro_model'}" in capsys.readouterr().out
    (folder / "stale.txt").write_text("from an older pull")
    assert main(["pull", f"{MODEL}@champion", "--tracking-uri", registry, "--out", str(out)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["tsfmicro_model"]  # replaced, not mixed
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    real = mlflow.artifacts.download_artifacts

    def full_disk(*args, dst_path, **kwargs):
        """Half of the weights land, then the disk is full."""
        local = Path(real(*args, dst_path=dst_path, **kwargs))
        weights = next(local.rglob("weights.pt"))
        weights.write_bytes(weights.read_bytes()[:100])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(weights))

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", full_disk)
    code = main(["pull", f"{MODEL}@champion", "--tracking-uri", registry, "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    one_line(err, "pull")
    assert f"cannot write {folder}: No space left on device" in err
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in out.iterdir()) == [folder.name] and leftovers(out) == []


@pytest.mark.slow
def test_leaderboard_of_a_real_store_still_reads_it_and_writes_its_json_whole(
    registry, tmp_path, capsys, monkeypatch
):
    from full_disk import fill_disk

    copy = tmp_path / "copy.db"
    shutil.copy(registry.removeprefix("sqlite:///"), copy)
    board = tmp_path / "out" / "board.json"
    board.parent.mkdir()
    argv = ["leaderboard", "--tracking-uri", f"sqlite:///{copy}", "--json", str(board)]
    assert main(argv) == 0
    assert "no trials" in capsys.readouterr().out
    before = board.read_bytes()
    fill_disk(monkeypatch, board.parent, room=10)
    assert main(argv) == 2
    err = capsys.readouterr().err
    one_line(err, "leaderboard")
    assert f"cannot write {board}: No space left on device" in err
    assert board.read_bytes() == before and leftovers(board.parent) == []


def search_settings(tmp_path, tracking: str, name: str = "reg1") -> Path:
    """A finished search's settings file (what `register` reads first), no Ray needed."""
    from search.config import DataSpec, SearchConfig
    from search.run import save_settings

    storage = tmp_path / "runs"
    cfg = SearchConfig(
        name=name,
        data=DataSpec(dataset="toy"),
        tracking_uri=tracking,
        storage_path=str(storage),
    )
    save_settings(cfg)
    return storage


def test_register_refuses_a_missing_or_corrupt_store_in_one_line(garbage, tmp_path, capsys):
    """`register` writes to the store its search used: a mistyped or damaged one is refused
    before MLflow touches it, nothing created, nothing changed, the name not left held."""
    missing = tmp_path / "gone.db"
    storage = search_settings(tmp_path, f"sqlite:///{missing}", "reg1")
    code, err = run(capsys, ["register", "reg1", "--storage-path", str(storage)])
    assert code == 2
    one_line(err, "register")
    assert f"there is no MLflow database at {missing}" in err and not missing.exists()

    before = garbage.read_bytes()
    storage = search_settings(tmp_path, f"sqlite:///{garbage}", "reg2")
    code, err = run(capsys, ["register", "reg2", "--storage-path", str(storage)])
    assert code == 2
    one_line(err, "register")
    assert f"{garbage}: it is not an SQLite database, or it is damaged" in err
    assert garbage.read_bytes() == before
    assert not list(storage.glob("*.lock"))  # the name is not left held


def test_register_refuses_while_another_process_holds_the_search_name(tmp_path, capsys):
    import subprocess
    import sys
    import time

    from mlflow import MlflowClient

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking).search_experiments()  # a real, empty store
    storage = search_settings(tmp_path, tracking, "reg3")
    capsys.readouterr()  # MLflow's own lines while it created the store
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from search.endings import acquire; "
         f"acquire({str(storage)!r}, 'reg3'); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        code, err = run(capsys, ["register", "reg3", "--storage-path", str(storage)])
        assert code == 2 and time.monotonic() - started < 30
        one_line(err, "register")
        assert "'reg3' is running" in err and f"pid {holder.pid}" in err
    finally:
        holder.kill()
        holder.wait()
