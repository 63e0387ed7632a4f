"""The tsfmicro CLI: train writes its outputs; model-info reports; bad input is one line."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from tsfmicro.cli import main


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in ("train", "model-info", "datasets"):
        assert name in out


@pytest.mark.parametrize("command", ["train", "model-info", "datasets"])
def test_each_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: tsfmicro " + command in capsys.readouterr().out


def test_train_prints_table_and_writes_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--preset",
            "micro",
            "--epochs",
            "2",
            "--toy-subjects",
            "3",
            "--toy-per-subject",
            "6",
            "--val-subjects",
            "1",
            "--bootstrap",
            "50",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "oracle (optimistic)" in printed and "final" in printed and "UF1" in printed
    assert "published-oracle (optimistic)" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["image_size"] == 32 and config["train"]["val_subjects"] == 1
    assert config["run_id"] in printed and config["train"]["seed"] == 0
    pred = pd.read_parquet(out / "predictions.parquet")
    assert set(pred["mode"]) == {"final", "val", "oracle", "published-oracle"}
    assert len(pred) == 4 * 3 * 6
    assert config["recipe"]["name"] == "default"
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["final"]["pooled"]["uf1"] <= 1.0


def test_train_reads_a_yaml_config_and_flags_override_it(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "preset: micro\nmodel:\n  fusion: early\n  spatial_depth: 3\n"
        "train:\n  epochs: 1\n  lr: 0.001\n"
    )
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                str(cfg),
                "--lr",
                "0.002",
                "--fold-streams",
                "2",
                "--toy-subjects",
                "2",
                "--toy-per-subject",
                "3",
                "--bootstrap",
                "20",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["fusion"] == "early" and config["model"]["spatial_depth"] == 3
    assert config["train"]["lr"] == 0.002 and config["train"]["epochs"] == 1
    # the two folds trained at once, in threads
    assert config["fold_group"] == "streams" and config["fold_size"] == 2


@pytest.mark.parametrize(
    "args, words",
    [
        (["--temporal-depth", "0"], "ModelConfig.temporal_depth"),
        (["--epochs", "0"], "TrainConfig.epochs"),
        (["--device", "tpu"], "MachineConfig.device"),
    ],
)
def test_bad_values_are_one_line_errors(args, words, capsys):
    assert main(["train", "--preset", "micro", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_train_out_is_checked_before_any_training(tmp_path, capsys):
    """An output folder that holds files is refused (nothing in it touched) unless --force; an
    --out that cannot be created fails at once, naming it; no training happens before."""
    quick = ["train", "--preset", "micro", "--epochs", "1", "--toy-subjects", "2",
             "--toy-per-subject", "3", "--bootstrap", "5", "--quiet"]
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("keep me")
    assert main([*quick, "--out", str(used)]) == 2
    err = capsys.readouterr().err
    assert f"--out {used} already holds files" in err and "--force" in err
    assert sorted(p.name for p in used.iterdir()) == ["notes.txt"]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main([*quick, "--out", str(blocker / "run")]) == 2
    assert f"--out {blocker / 'run'} cannot be written to" in capsys.readouterr().err
    assert main([*quick, "--out", str(used), "--force"]) == 0
    assert (used / "notes.txt").read_text() == "keep me" and (used / "metrics.json").is_file()
    assert not [p for p in used.iterdir() if p.name.endswith(".tmp")]  # nothing half-written


def test_bootstrap_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--bootstrap", "0"])
    assert exc.value.code == 2
    assert "--bootstrap: must be at least 1, got 0" in capsys.readouterr().err


def test_bad_yaml_is_reported_with_the_file_name(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model:\n  retnet_depth: 3\n")
    assert main(["train", "--config", str(cfg)]) == 2
    assert "retnet_depth" in capsys.readouterr().err


def test_unknown_fusion_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--fusion", "middle"])
    assert exc.value.code == 2
    assert "invalid choice: 'middle'" in capsys.readouterr().err


def test_model_info_json_reports_paper_cost():
    # Through the installed console script, as a user runs it.
    proc = subprocess.run(
        [sys.executable, "-m", "tsfmicro.cli", "model-info", "--preset", "paper", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(proc.stdout)
    assert rows[0]["preset"] == "paper" and rows[0]["stages"] == [1, 1, 2, 1]
    assert 12.5 < rows[0]["gflops"] < 14.5


def test_train_on_a_dataset_copy_through_the_face_cache(tmp_path, capsys):
    from tsfmicro.synth import SynthConfig, write_dataset

    write_dataset(
        SynthConfig(dataset="casme2", subjects=2, clips_per_subject=5, pair_frames=True),
        tmp_path / "c",
    )
    configs = {}
    for flags in ((), ("--annotated-pairs",)):
        out = tmp_path / f"run{len(flags)}"
        assert (
            main(
                [
                    "train",
                    "--dataset",
                    "casme2",
                    "--root",
                    str(tmp_path / "c"),
                    "--preset",
                    "micro",
                    "--epochs",
                    "1",
                    "--cache-dir",
                    str(tmp_path / "cache"),
                    "--bootstrap",
                    "20",
                    "--out",
                    str(out),
                    "--quiet",
                    *flags,
                ]
            )
            == 0
        )
        configs[flags] = json.loads((out / "config.json").read_text())
    config = configs[()]
    assert config["dataset"] == "casme2-5class" and config["n_samples"] == 10
    assert config["subjects"] == ["sub01", "sub02"]
    assert any((tmp_path / "cache").rglob("frames.npy"))  # crops came through the cache
    assert any((tmp_path / "cache" / "pairs").rglob("*.json"))  # the training pairs' choice
    assert config["train"]["train_pairs"] and config["train_pairs_moved"] > 0
    off = configs[("--annotated-pairs",)]
    assert not off["train"]["train_pairs"] and off["train_pairs_moved"] == 0


def test_train_on_a_dataset_needs_its_folder(capsys):
    assert main(["train", "--dataset", "casme2", "--preset", "micro"]) == 2
    assert "needs the folder of its copy" in capsys.readouterr().err
