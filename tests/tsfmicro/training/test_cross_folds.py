"""Folds by dataset (PairSet.folds, tsfmicro.datasets.cross): the one LOSO engine groups by the
fold key; train-only samples are never tested; scores per held-out dataset. Then the same
through `tsfmicro train` on synthetic CASME II and SAMM copies (slow: rendering and faces)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tsfmicro.cli import main
from tsfmicro.config import TrainConfig, preset
from tsfmicro.errors import InputError
from tsfmicro.toy import make_toy_pairs
from tsfmicro.training.fold import fold_split
from tsfmicro.training.loso import run_loso


@pytest.fixture(scope="module")
def two_datasets():
    """Four toy subjects as two 'datasets' of two subjects each, and their fold keys."""
    pairs = make_toy_pairs(subjects=4, per_subject=4, classes=3, size=preset("micro").image_size)
    first = np.isin(pairs.subjects, pairs.subject_ids()[:2])
    return pairs, np.where(first, "dsA", "dsB")


def test_folds_are_the_datasets_and_train_only_samples_are_never_tested(two_datasets):
    pairs, keys = two_datasets
    model = preset("micro").replace(num_classes=3)
    train = TrainConfig(epochs=1, val_subjects=1)
    lodo = run_loso(dataclasses.replace(pairs, folds=keys), model, train)
    assert [f.subject for f in lodo.folds] == ["dsA", "dsB"]
    for fold in lodo.folds:
        assert set(keys[fold.test_index]) == {fold.subject}
        assert fold.subject not in set(keys[fold.train_index])
        # the inner validation subjects come from the training dataset
        assert set(pairs.subjects[fold.val_index]) == set(fold.val_subjects)
        assert not set(fold.val_subjects) & set(pairs.subjects[fold.test_index])
    report = lodo.evaluate("final", n_boot=20)
    assert report.n_samples == 16 and report.n_subjects == 4  # intervals still over subjects
    assert sorted(report.extra["held_out"]) == ["dsA", "dsB"]
    assert report.extra["held_out"]["dsA"]["n"] == 8

    a_to_b = dataclasses.replace(pairs, folds=np.where(keys == "dsB", "dsB", ""))
    one = run_loso(a_to_b, model, train)
    assert [f.subject for f in one.folds] == ["dsB"] and len(one.predictions()) == 8
    # the same fold, the same seed and data: the same predictions as LODO's dsB fold
    np.testing.assert_allclose(one.folds[0].test_probs, lodo.folds[1].test_probs)
    assert set(one.predictions()["fold"]) == {"dsB"}


def test_a_fold_key_with_no_samples_is_named(two_datasets):
    pairs, keys = two_datasets
    with pytest.raises(InputError, match="fold 'dsC' has no samples"):
        fold_split(dataclasses.replace(pairs, folds=keys), "dsC", TrainConfig(epochs=1))
    with pytest.raises(InputError, match="1 fold keys"):
        dataclasses.replace(pairs, folds=keys[:1])


@pytest.fixture(scope="module")
def composite_parts(tmp_path_factory):
    """Synthetic CASME II and SAMM copies in their real layouts, 2 subjects x 3 clips each,
    one clip of each 3class class per subject, in one composite folder."""
    from tsfmicro.synth import SynthConfig, write_dataset

    root = tmp_path_factory.mktemp("cross") / "parts"
    for dataset, classes in (
        ("casme2", ("disgust", "happiness", "surprise")),
        ("samm", ("anger", "happiness", "surprise")),
    ):
        config = SynthConfig(dataset=dataset, subjects=2, clips_per_subject=3, classes=classes)
        write_dataset(config, root / dataset)
    return root


@pytest.mark.slow
def test_train_cross_dataset_protocols_through_the_cli(composite_parts, tmp_path, capsys):
    common = ["train", "--dataset", "composite", "--root", str(composite_parts),
              "--preset", "micro", "--epochs", "1", "--cache-dir", str(tmp_path / "cache"),
              "--bootstrap", "20", "--quiet"]  # fmt: skip
    out = tmp_path / "a-to-b"
    assert main([*common, "--protocol", "casme2-to-samm", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "per held-out dataset" in printed and "samm" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "composite-casme2-to-samm" and config["folds"] == ["samm"]
    assert config["n_samples"] == 12
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["final"]["held_out"]) == ["samm"]
    assert metrics["final"]["n_samples"] == 6  # only SAMM is tested
    assert metrics["final"]["held_out"]["samm"]["n_subjects"] == 2

    out = tmp_path / "lodo"
    assert main([*common, "--protocol", "lodo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "per held-out dataset" in printed
    assert "per dataset part" not in printed  # the same table once: the held-out one is per part
    metrics = json.loads((out / "metrics.json").read_text())
    assert sorted(metrics["final"]["held_out"]) == ["casme2", "samm"]
    assert metrics["final"]["n_samples"] == 12

    assert main([*common, "--protocol", "casme2-to-mmew", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "needs the part(s) mmew" in err and str(composite_parts) in err
