"""Files written whole or not at all (tsfmicro.fileio.written_whole)."""

import errno
import os

import pytest

from tsfmicro.errors import ConfigError, InputError
from tsfmicro.fileio import written_whole
from tsfmicro.metrics import subject_bootstrap


def test_a_file_is_replaced_whole_or_left_as_it_was(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with written_whole(target) as temp:
        temp.write_text("new")
        assert target.read_text() == "old"  # nobody sees the new file before it is whole
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError, match="crash"), written_whole(target) as temp:
        temp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temp left


def test_a_full_disk_is_one_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "curves.csv"

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(InputError, match=f"cannot write {target}: No space left"):
        with written_whole(target) as temp:
            temp.write_text("x" * 100)
    assert list(tmp_path.iterdir()) == []


def test_bootstrap_replicates_and_level_are_checked():
    args = ([0, 1], [0, 1], ["a", "b"], 2)
    with pytest.raises(ConfigError, match="bootstrap replicates must be a whole number >= 1"):
        subject_bootstrap(*args, n_boot=0)
    with pytest.raises(ConfigError, match="interval level"):
        subject_bootstrap(*args, level=1.5)


def test_a_folder_is_replaced_whole_or_left_as_it_was(tmp_path):
    from tsfmicro.fileio import folder_written_whole

    target = tmp_path / "model"
    with folder_written_whole(target) as temp:
        (temp / "weights.pt").write_text("v1")
        assert not target.exists()  # nobody sees the folder before it is whole
    assert (target / "weights.pt").read_text() == "v1"
    with pytest.raises(InputError, match=f"cannot write {target}: No space left on device"):
        with folder_written_whole(target) as temp:
            (temp / "weights.pt").write_text("v2, half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert [p.name for p in target.iterdir()] == ["weights.pt"]
    assert (target / "weights.pt").read_text() == "v1"
    with folder_written_whole(target) as temp:
        (temp / "config.json").write_text("v3")
    assert [p.name for p in target.iterdir()] == ["config.json"]  # replaced, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_other_os_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(IsADirectoryError):
        with written_whole(tmp_path / "x") as temp:
            temp.write_text("half")
            raise IsADirectoryError(errno.EISDIR, "is a folder")
    assert list(tmp_path.iterdir()) == []
