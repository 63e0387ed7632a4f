"""`tsfmicro synth` under bad sizes and a full disk: sizes out of bounds are one-line errors
before anything is written; a full disk is one line naming the file, and leaves only whole
frames and no spreadsheet (the copy then fails to load instead of loading half a set)."""

from __future__ import annotations

import cv2
import pytest
from full_disk import fill_disk, leftovers

from tsfmicro import cli
from tsfmicro.commands import synth
from tsfmicro.synth import writer

SMALL = ["--dataset", "casme2", "--subjects", "2", "--clips-per-subject", "3",
         "--frame-size", "96x80", "--workers", "1", "--quiet"]  # fmt: skip


@pytest.fixture
def run_synth(monkeypatch, capsys):
    """Run `tsfmicro synth ARGS`; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(cli, "_subcommands", lambda: [synth.add_parser])

    def run(*argv: object) -> tuple[int, str, str]:
        code = cli.main(["synth", *map(str, argv)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--subjects", "1001"], "SynthConfig.subjects must be at most 1000, got 1001"),
        (["--clips-per-subject", "5000"], "clips_per_subject must be at most 1000, got 5000"),
        (["--subjects", "1000", "--clips-per-subject", "101"], "101000 clips; at most 100000"),
        (["--frame-size", "100000x80"], "100000x80: both sides must be >= 64 and <= 4096 px"),
        (["--frame-size", "0x0"], "0x0: both sides must be >= 64"),
        (["--subjects", "0"], "subjects must be a positive integer, got 0"),
    ],
)
def test_sizes_out_of_bounds_are_one_line_and_write_nothing(run_synth, tmp_path, argv, message):
    out_dir = tmp_path / "copy"
    code, out, err = run_synth("--dataset", "casme2", "--quiet", *argv, out_dir)
    assert code == 2 and out == ""
    assert err.startswith("tsfmicro synth: error:") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out_dir.exists()


def test_a_copy_with_too_many_frames_is_refused_before_writing(run_synth, tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "MAX_FRAMES", 10)
    out_dir = tmp_path / "copy"
    code, _, err = run_synth(*SMALL, out_dir)
    assert code == 2
    assert "would have 12 frames; synth writes at most 10" in err and err.count("\n") == 1
    assert not out_dir.exists()


def frames_of(folder):
    return sorted(folder.rglob("*.jpg"))


def test_a_full_disk_while_writing_frames_is_one_line_and_leaves_whole_frames(
    run_synth, tmp_path, monkeypatch
):
    out_dir = tmp_path / "copy"
    fill_disk(monkeypatch, out_dir, room=6000)  # a few frames fit
    code, out, err = run_synth(*SMALL, out_dir)
    assert code == 2 and out == ""
    assert err.startswith("tsfmicro synth: error: cannot write ") and err.count("\n") == 1
    assert "No space left on device" in err and ".jpg" in err
    written = frames_of(out_dir)
    assert 0 < len(written) < 12
    assert all(cv2.imread(str(path)) is not None for path in written)  # each one whole
    assert leftovers(out_dir) == []
    assert not list(out_dir.glob("*.xlsx"))  # no spreadsheet: the copy does not load


def test_a_full_disk_at_the_spreadsheet_leaves_no_sheet(run_synth, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    assert run_synth(*SMALL, reference)[0] == 0
    frame_bytes = sum(path.stat().st_size for path in frames_of(reference))
    out_dir = tmp_path / "copy"
    fill_disk(monkeypatch, out_dir, room=frame_bytes + 100)  # every frame fits, the sheet not
    code, _, err = run_synth(*SMALL, out_dir)
    assert code == 2
    assert "CASME2-coding-20190701.xlsx: No space left on device" in err
    assert err.count("\n") == 1
    assert len(frames_of(out_dir)) == 12
    assert not list(out_dir.rglob("*.xlsx")) and leftovers(out_dir) == []
    monkeypatch.undo()
    monkeypatch.setattr(cli, "_subcommands", lambda: [synth.add_parser])
    code, _, err = run_synth(*SMALL, "--overwrite", out_dir)  # room again: the rerun finishes
    assert code == 0, err
    assert (out_dir / "CASME2-coding-20190701.xlsx").is_file()
