"""`tsfmicro synth` through the real CLI entry point: both modes, and bad input."""

from __future__ import annotations

import shlex

import openpyxl
import pandas as pd
import pytest

from tsfmicro import cli
from tsfmicro.commands import datasets, synth
from tsfmicro.datasets.writers import write_annotation

ROWS = [
    dict(subject="sub01", clip="EP01_01", onset=10, apex="/", offset=14, emotion="happiness"),
    dict(subject="sub02", clip="EP02_01", onset=20, apex=22, offset=24, emotion="disgust"),
]
SMALL = ["--frame-size", "128x96", "--workers", "1"]


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run the CLI with the synth and datasets subcommands; (exit code, stdout, stderr)."""
    monkeypatch.setattr(cli, "_subcommands", lambda: [synth.add_parser, datasets.add_parser])

    def run(*argv: object) -> tuple[int, str, str]:
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _printed_inspect_command(out: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith("inspect:"))
    argv = shlex.split(line.removeprefix("inspect:"))
    assert argv[:2] == ["tsfmicro", "datasets"]
    return argv[1:]


def test_generate_then_inspect_with_the_printed_command(run_cli, tmp_path):
    out_dir = tmp_path / "fake casme2"
    code, out, err = run_cli(
        "synth", "--dataset", "casme2", "--layout", "cropped", "--subjects", "2",
        "--clips-per-subject", "5", "--difficulty", "easy", *SMALL, out_dir,
    )  # fmt: skip
    assert code == 0, err
    assert "wrote 20 frames (10 clips, 2 subjects) of a synthetic CASME II copy" in out
    assert "layout cropped" in out and f"frames:     {out_dir / 'Cropped'}" in out
    assert "100%" not in err and "\r" not in err  # its progress bar only on a terminal
    code, report, _ = run_cli(*_printed_inspect_command(out))
    assert code == 0 and "samples     10 in 2 subjects" in report
    assert report.rstrip().endswith("status: usable")


def test_frames_for_an_existing_sheet(run_cli, tmp_path):
    sheet = write_annotation("casme2", pd.DataFrame(ROWS), tmp_path / "coding.xlsx")
    out_dir = tmp_path / "frames"
    code, out, err = run_cli(
        "synth", "--dataset", "casme2", "--from-annotation", sheet, "--aus", "annotation",
        "--quiet", *SMALL, out_dir,
    )  # fmt: skip
    assert code == 0, err
    assert err == ""
    assert "wrote 4 frames (2 clips, 2 subjects)" in out
    assert "rendered for (not copied)" in out and not list(out_dir.glob("*.xlsx"))
    command = _printed_inspect_command(out)
    assert "--annotation" in command
    code, report, _ = run_cli(*command)
    assert code == 0 and "missing_apex" in report and "status: usable" in report


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "smicx", "{out}"], "unknown dataset 'smicx'"),
        (["--dataset", "casme2", "--classes", "happiness,joy", "{out}"], "unknown class 'joy'"),
        (["--dataset", "casme2", "--subjects", "0", "{out}"], "subjects must be a positive"),
        (["--dataset", "samm", "--clips-per-subject", "-1", "{out}"], "clips_per_subject"),
        (["--dataset", "casme2", "--difficulty", "brutal", "{out}"], "difficulty='brutal'"),
        (["--dataset", "casme2", "--frame-size", "320", "{out}"], "expected WIDTHxHEIGHT"),
        (["--dataset", "casme2", "--workers", "0", "{out}"], "--workers must be at least 1"),
        (["--dataset", "casme2", "{file}/sub"], "cannot write to output folder"),
        (["--dataset", "casme2", "--from-annotation", "{tmp}/none.xlsx", "{out}"], "not found"),
        (
            ["--dataset", "casme2", "--from-annotation", "{no_columns}", "{out}"],
            "OnsetFrame",
        ),
        (
            ["--dataset", "casme2", "--from-annotation", "{sheet}", "--subjects", "3", "{out}"],
            "--subjects is for a generated dataset only",
        ),
        (["--dataset", "casme2", "--aus", "annotation", "{out}"], "--aus is for --from-annotation"),
        (
            ["--dataset", "casme2", "--from-annotation", "{sheet}", "--policy", "apex=x", "{out}"],
            "unknown field",
        ),
        (["--dataset", "casme2", "--subjects", "1", "{full}"], "already exists"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_cli, tmp_path, argv, message):
    (tmp_path / "a_file").write_text("x")
    sheet = write_annotation("casme2", pd.DataFrame(ROWS), tmp_path / "sheet.xlsx")
    workbook = openpyxl.Workbook()
    workbook.active.title = "Sheet1"
    workbook.active.append(["Subject", "Filename", "ApexFrame", "Estimated Emotion"])
    workbook.active.append(["01", "EP01_01", 12, "happiness"])
    workbook.save(tmp_path / "no_columns.xlsx")
    full = tmp_path / "full"
    (full / "CASME2_RAW_selected" / "sub01").mkdir(parents=True)
    paths = {
        "out": tmp_path / "out",
        "tmp": tmp_path,
        "file": tmp_path / "a_file",
        "sheet": sheet,
        "no_columns": tmp_path / "no_columns.xlsx",
        "full": full,
    }
    code, out, err = run_cli("synth", "--quiet", *(a.format(**paths) for a in argv))
    assert code == 2
    assert out == ""
    assert err.startswith("tsfmicro synth: error:") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
