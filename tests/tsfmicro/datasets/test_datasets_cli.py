"""`tsfmicro datasets inspect` and `list`, through the real CLI entry point."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from tsfmicro import cli
from tsfmicro.commands import datasets
from tsfmicro.datasets.writers import frame_file, write_annotation

ROWS = [
    dict(subject="sub01", clip="EP01_01", onset=10, apex="/", offset=14, emotion="happiness"),
    dict(subject="sub02", clip="EP02_01", onset=20, apex=22, offset=24, emotion="disgust"),
    dict(subject="sub02", clip="EP02_02", onset=30, apex=32, offset=34, emotion="fear"),
]


@pytest.fixture
def ds_cli(monkeypatch, capsys):
    """Run the CLI with only this subcommand registered; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(cli, "_subcommands", lambda: [datasets.add_parser])

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(["datasets", *map(str, argv)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_inspect_a_good_copy(ds_write_copy, ds_cli):
    root = ds_write_copy("casme2", ROWS, layout="cropped")
    code, out, err = ds_cli("inspect", "--dataset", "casme2", root)
    assert code == 0, out + err
    assert "samples     2 in 2 subjects" in out
    assert "dropped by the protocol: fear 1" in out
    assert "layout cropped" in out
    assert "missing_apex: apex '/' is not a frame number; apex set to the middle frame 12" in out
    assert "frames decoded: 4" in out and out.rstrip().endswith("status: usable")
    assert err == ""  # quirks are in the report, not repeated as log lines


def test_inspect_reports_every_missing_frame_and_fails(ds_write_copy, ds_cli):
    root = ds_write_copy("casme2", ROWS)
    for clip, n in (("EP01_01", 10), ("EP02_01", 22)):
        subject = "sub01" if clip == "EP01_01" else "sub02"
        frame_file("casme2", root, subject, clip, n).unlink()
    code, out, _ = ds_cli("inspect", "--dataset", "casme2", root)
    assert code == 1
    assert "missing frames (2 in 2 rows):" in out
    assert "onset frame 10 missing" in out and "apex frame 22 missing" in out
    assert "NOT USABLE: 2 missing frame(s) in 2 row(s)" in out


def test_inspect_json(ds_write_copy, ds_cli):
    root = ds_write_copy("casme2", ROWS)
    code, out, _ = ds_cli("inspect", "--dataset", "casme2", "--protocol", "3class", "--json", root)
    report = json.loads(out)
    assert code == 0 and report["usable"] is True
    assert report["per_class"] == {"negative": 2, "positive": 1, "surprise": 0}
    assert report["per_subject"] == {"sub01": {"positive": 1}, "sub02": {"negative": 2}}
    assert report["issue_counts"] == {"missing_apex": 1}
    assert report["issues"][0]["row"] == 2 and report["missing_frames"] == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "casme2", "{empty}"], "dataset folder is empty"),
        (["--dataset", "casme2", "{tmp}"], "no annotation spreadsheet"),
        (["--dataset", "samm", "--annotation", "{sheet}"], "no sheet 'MICRO_ONLY'"),
        (["--dataset", "casme2", "--annotation", "{tmp}/none.xlsx"], "not found"),
        (
            ["--dataset", "casme2", "--annotation", "{bad_label}"],
            "row 2, column 'Estimated Emotion'",
        ),
        (["--dataset", "nope", "{tmp}"], "unknown dataset 'nope'"),
        (["--dataset", "casme2", "--policy", "missing_apex=guess", "{tmp}"], "missing_apex"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(ds_cli, tmp_path, argv, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.txt").write_text("x")
    sheet = write_annotation("casme2", pd.DataFrame(ROWS), tmp_path / "sheet.xlsx")
    bad = [{**ROWS[0], "emotion": "joy"}, *ROWS]
    bad_label = write_annotation("casme2", pd.DataFrame(bad), tmp_path / "bad.xlsx")
    paths = {"empty": tmp_path / "empty", "tmp": tmp_path, "sheet": sheet, "bad_label": bad_label}
    code, out, err = ds_cli("inspect", *(a.format(**paths) for a in argv))
    assert code == 2
    assert out == ""
    assert err.startswith("tsfmicro datasets: error:") and message in err
    assert "Traceback" not in err


def test_inspect_composite_with_parts(ds_write_copy, ds_cli):
    casme2 = ds_write_copy("casme2", ROWS, name="c2")
    samm_rows = [dict(subject="006", clip="006_1_2", onset=5, apex=7, offset=9, emotion="Anger")]
    samm = ds_write_copy("samm", samm_rows, name="samm", gray=True)
    code, out, _ = ds_cli(
        "inspect",
        "--dataset",
        "composite",
        "--json",
        "--part",
        f"casme2={casme2}",
        "--part",
        f"samm={samm}",
    )
    report = json.loads(out)
    assert code == 0
    assert sorted(report["per_subject"]) == ["casme2/sub01", "casme2/sub02", "samm/006"]
    assert report["grayscale_frames"] == 2


def test_inspect_composite_folder_of_parts(ds_write_copy, ds_cli, tmp_path):
    ds_write_copy("casme2", ROWS, name="parts/CASME2")
    samm_rows = [
        dict(subject="006", clip="006_1_2", onset=5, apex=7, offset=9, emotion="Happiness")
    ]
    ds_write_copy("samm", samm_rows, name="parts/samm")
    code, out, _ = ds_cli("inspect", "--dataset", "composite", tmp_path / "parts")
    assert code == 0
    assert "samples     4 in 3 subjects" in out
    assert "(layout casme2:raw; samm:samm)" in out
    assert re.search(r"^  samm\s+0\s+1\s+0\s+1$", out, re.MULTILINE)
    assert re.search(r"^  casme2/sub02\s+2\s+0\s+0\s+2$", out, re.MULTILINE)


def test_list(ds_cli):
    code, out, _ = ds_cli("list")
    assert code == 0
    assert "5class: happiness, repression, disgust, surprise, others" in out
    assert "composite\n  3class: negative, positive, surprise" in out
    # every protocol of every dataset, under its dataset (issue 21: SMIC, MEGC 2019, cross)
    from tsfmicro.datasets import list_datasets, list_protocols

    blocks = dict(re.findall(r"^(\w+)\n((?:  .*\n?)+)", out, re.MULTILINE))
    assert list(blocks) == list(list_datasets())
    for dataset in list_datasets():
        names = re.findall(r"^  (\S+):", blocks[dataset], re.MULTILINE)
        assert names[: len(list_protocols(dataset))] == [p.name for p in list_protocols(dataset)]
    assert re.findall(r"^  (\S+):", blocks["smic"], re.MULTILINE) == [
        "hs", "vis", "nir", "3class", "megc2019"]  # fmt: skip
    for dataset in ("casme2", "samm", "smic", "composite"):
        assert "\n  megc2019: negative, positive, surprise\n" in blocks[dataset]
    assert "164 samples, 16 subjects" in blocks["smic"]
    assert "442 samples, 68 subjects" in blocks["composite"]
    assert "  lodo: negative, positive, surprise\n    dropped: other, others\n    leave one " \
        "dataset out" in blocks["composite"]
    assert "  A-to-B: the classes A and B share\n    train on dataset A, test on dataset B" \
        in blocks["composite"] and "casme2-to-samm" in blocks["composite"]


def test_inspect_a_synthetic_smic_copy(ds_cli, tmp_path):
    """A copy `tsfmicro synth` writes in SMIC's layout (HS/<subject>/micro/<class>/<clip>/):
    `datasets inspect` counts its subjects, clips and classes, applies the middle-frame apex
    to every clip, and sets the counts against SMIC-HS's published ones."""
    import json

    from tsfmicro.synth import SynthConfig, write_dataset

    write_dataset(SynthConfig(dataset="smic", subjects=2, clips_per_subject=3), tmp_path,
                  workers=1)  # fmt: skip
    code, out, err = ds_cli("inspect", "--dataset", "smic", tmp_path)
    assert code == 0, out + err
    assert "dataset     smic, protocol smic-hs" in out and "samples     6 in 2 subjects" in out
    assert re.search(r"^  s1\s+1\s+1\s+1\s+3$", out, re.MULTILINE)
    assert "published: 164 samples, 16 subjects (negative 70, positive 51, surprise 43): " \
        "this copy differs" in out
    code, out, err = ds_cli("inspect", "--dataset", "smic", "--json", tmp_path)
    summary = json.loads(out)
    assert summary["published_counts"]["found"] == {
        "samples": 6, "subjects": 2, "per_class": {"negative": 2, "positive": 2, "surprise": 2}}
    assert summary["published_counts"]["expected"]["samples"] == 164
    assert not summary["published_counts"]["matches"] and summary["usable"]
    assert [i["kind"] for i in summary["issues"]] == ["unannotated_apex"] * 6
