"""`tsfmicro datasets inspect` on bad copies and bad flags: frames too small for face detection
are reported with their files (exit 1); an unknown --policy lists the valid ones (exit 2)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from tsfmicro import cli
from tsfmicro.commands import datasets
from tsfmicro.datasets.writers import frame_file

ROWS = [
    dict(subject="sub01", clip="EP01_01", onset=10, apex=12, offset=14, emotion="happiness"),
    dict(subject="sub02", clip="EP02_01", onset=20, apex=22, offset=24, emotion="disgust"),
]


@pytest.fixture
def inspect(monkeypatch, capsys):
    """Run `tsfmicro datasets inspect ARGS`; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(cli, "_subcommands", lambda: [datasets.add_parser])

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(["datasets", "inspect", *map(str, argv)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_frames_too_small_for_face_detection_are_reported_with_their_files(ds_write_copy, inspect):
    root = ds_write_copy("casme2", ROWS)
    tiny = frame_file("casme2", root, "sub02", "EP02_01", 22)
    cv2.imwrite(str(tiny), np.full((1, 1, 3), 90, np.uint8))
    code, out, err = inspect("--dataset", "casme2", root)
    assert code == 1, out + err
    assert "frames too small for face detection (1):" in out
    assert f"casme2/sub02/EP02_01: {tiny}: 1x1 pixels: face detection needs at least 20" in out
    assert f"NOT USABLE: 1 frame(s) too small for face detection, first {tiny}" in out
    code, out, _ = inspect("--dataset", "casme2", "--json", root)
    report = json.loads(out)
    assert code == 1 and report["usable"] is False
    assert [f["path"] for f in report["small_frames"]] == [str(tiny)]
    assert tiny.read_bytes()  # inspection reads, never changes


def test_the_fake_frames_of_the_tests_are_large_enough(ds_write_copy, inspect):
    code, out, _ = inspect("--dataset", "casme2", ds_write_copy("casme2", ROWS))
    assert code == 0 and "frames too small for face detection (0):" in out


@pytest.mark.parametrize(
    ("flag", "words"),
    [
        ("bogus=1", ["unknown quirk policy 'bogus'", "missing_apex: middle, max_difference"]),
        ("missing_apex=guess", ["Policies.missing_apex='guess'", "middle, max_difference"]),
        ("missing_apex", ["--policy 'missing_apex': expected NAME=VALUE"]),
    ],
)
def test_a_bad_policy_is_one_line_listing_the_valid_ones(ds_write_copy, inspect, flag, words):
    code, out, err = inspect("--dataset", "casme2", "--policy", flag, ds_write_copy("casme2", ROWS))
    assert code == 2 and out == ""
    assert err.startswith("tsfmicro datasets: error:") and err.count("\n") == 1
    assert all(word in err for word in words), err
    assert "Traceback" not in err
