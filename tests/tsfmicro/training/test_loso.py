"""LOSO training: leak-free folds, full coverage, reproducibility, evaluation modes, learning."""

import numpy as np
import pytest
import torch

from tsfmicro.config import MachineConfig, TrainConfig, preset
from tsfmicro.errors import ConfigError, InputError
from tsfmicro.toy import make_toy_pairs
from tsfmicro.training.data import PairSet
from tsfmicro.training.evaluation import LosoResult, pooled_scores
from tsfmicro.training.fold import FoldResult, fold_seed, train_fold
from tsfmicro.training.loso import run_loso
from tsfmicro.training.runners import Runner

MICRO = preset("micro", num_classes=3)
QUICK = TrainConfig(epochs=2, batch_size=16)
CPU = MachineConfig(device="cpu")
ON_CPU = Runner(machine=CPU)


@pytest.fixture(scope="module")
def toy():
    return make_toy_pairs(subjects=4, per_subject=6, classes=3, size=32, seed=0)


@pytest.fixture(scope="module")
def quick_run(toy):
    return run_loso(toy, MICRO, QUICK.replace(val_subjects=1), ON_CPU)


def test_no_subject_in_two_roles_and_every_sample_predicted_once(toy, quick_run):
    assert len(quick_run.folds) == 4
    seen = np.concatenate([f.test_index for f in quick_run.folds])
    assert sorted(seen.tolist()) == list(range(len(toy)))
    for fold in quick_run.folds:
        test = set(toy.subjects[fold.test_index])
        train = set(toy.subjects[fold.train_index])
        val = set(toy.subjects[fold.val_index])
        assert test == {fold.subject}
        assert not (test & train) and not (test & val) and not (train & val)
        assert len(val) == 1 and len(train) == 2
        assert fold.test_probs.shape == (QUICK.epochs, len(fold.test_index), 3)
    for mode in ("final", "val", "oracle"):
        pred = quick_run.predictions(mode)
        assert len(pred) == len(toy) and pred["key"].is_unique


def test_coverage_check_rejects_missing_and_leaking_folds(toy, quick_run):
    with pytest.raises(InputError, match="exactly once"):
        LosoResult.from_folds(toy, quick_run.folds[:-1], MICRO, QUICK, 0.0)
    leaky = quick_run.folds[0]
    bad = FoldResult(
        **{**leaky.__dict__, "train_index": np.r_[leaky.train_index, leaky.test_index]}
    )
    with pytest.raises(InputError, match="trains on its own test subject"):
        LosoResult.from_folds(toy, [bad, *quick_run.folds[1:]], MICRO, QUICK, 0.0)


def test_a_fold_is_reproducible_whatever_runs_before_it(toy, quick_run):
    subject = quick_run.folds[2].subject
    torch.manual_seed(999)  # disturb the global RNG: the fold must not depend on it
    again = train_fold(toy, subject, MICRO, QUICK.replace(val_subjects=1), CPU)
    assert np.array_equal(again.test_probs, quick_run.folds[2].test_probs)
    assert again.seed == fold_seed(QUICK.seed, subject)
    other = train_fold(toy, subject, MICRO, QUICK.replace(val_subjects=1, seed=1), CPU)
    assert not np.allclose(other.test_probs, again.test_probs)


def test_channels_last_layout_trains_the_same_fold(toy, quick_run):
    """The NHWC layout is a speed choice only: same seeds, same predictions up to float32
    rounding (tolerance 1e-4 on probabilities after 2 epochs)."""
    fold = quick_run.folds[1]
    assert CPU.channels_last  # the default the quick run used
    plain = train_fold(
        toy, fold.subject, MICRO, QUICK.replace(val_subjects=1), CPU.replace(channels_last=False)
    )
    assert np.allclose(plain.test_probs, fold.test_probs, atol=1e-4)
    assert np.allclose(plain.train_loss, fold.train_loss, rtol=1e-4)


def _hand_fold(subject, index, test_probs, val_probs, val_index):
    e = len(test_probs)
    return FoldResult(
        subject=subject,
        seed=0,
        train_index=np.array([], int),
        test_index=np.array(index),
        val_index=np.array(val_index),
        val_subjects=[],
        test_probs=np.array(test_probs, float),
        val_probs=np.array(val_probs, float),
        train_loss=np.zeros(e),
        train_acc=np.zeros(e),
        seconds=0.0,
        train_samples=0,
        device="cpu",
    )


def test_mode_selection_on_hand_built_folds():
    """Two subjects, three epochs. Subject a: test right only at epoch 2; validation best at
    epoch 3. Subject b: test right at epochs 1 and 3 (tie -> the later)."""
    right_a, wrong_a = [0.9, 0.1], [0.1, 0.9]  # label of a's sample is 0
    right_b, wrong_b = [0.2, 0.8], [0.8, 0.2]  # label of b's sample is 1
    fold_a = _hand_fold(
        "a", [0], [[wrong_a], [right_a], [wrong_a]], [[[0.1, 0.9]], [[0.1, 0.9]], [[0.9, 0.1]]], [1]
    )
    fold_b = _hand_fold(
        "b", [1], [[right_b], [wrong_b], [right_b]], [[[0.1, 0.9]], [[0.1, 0.9]], [[0.1, 0.9]]], [0]
    )
    result = LosoResult(
        folds=[fold_a, fold_b],
        keys=np.array(["ka", "kb"]),
        subjects=np.array(["a", "b"]),
        labels=np.array([0, 1]),
        class_names=("x", "y"),
        dataset="hand",
        model_cfg=MICRO,
        train_cfg=QUICK,
        seconds=0.0,
    )
    assert result.selected_epochs("final") == {"a": 2, "b": 2}
    assert result.selected_epochs("oracle") == {"a": 1, "b": 2}
    # Validation sample of fold a is subject b's (label 1): right at epochs 1-2 -> the later.
    assert result.selected_epochs("val") == {"a": 1, "b": 2}
    assert result.evaluate("final", n_boot=50).acc == pytest.approx(0.5)
    oracle = result.evaluate("oracle", n_boot=50)
    assert oracle.acc == pytest.approx(1.0) and oracle.extra["optimistic"]


def test_oracle_is_never_below_final_accuracy(quick_run):
    final = quick_run.evaluate("final", n_boot=50)
    oracle = quick_run.evaluate("oracle", n_boot=50)
    assert oracle.acc >= final.acc
    assert not final.extra["optimistic"]


def test_save_writes_predictions_metrics_and_config(quick_run, tmp_path):
    import json

    import pandas as pd

    quick_run.save(tmp_path, n_boot=50)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"final", "val", "oracle", "published-oracle"}
    assert metrics["oracle"]["optimistic"] is True
    assert metrics["published-oracle"]["optimistic"] is True
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"]["image_size"] == 32 and config["train"]["epochs"] == 2
    pred = pd.read_parquet(tmp_path / "predictions.parquet")
    assert len(pred) == 4 * len(quick_run.labels)
    probs = np.load(tmp_path / "epoch_probs.npz")
    assert len(probs.files) == 2 * len(quick_run.folds)


def test_bad_input_is_reported_clearly(toy):
    with pytest.raises(ConfigError, match="class-count mismatch"):
        run_loso(toy, preset("micro", num_classes=5), QUICK, ON_CPU)
    with pytest.raises(InputError, match="ModelConfig.image_size is 64"):
        run_loso(toy, preset("tiny", num_classes=3), QUICK, ON_CPU)
    with pytest.raises(InputError, match="no samples"):
        train_fold(toy, "nobody", MICRO, QUICK, CPU)
    with pytest.raises(ConfigError, match="leaves no training subject"):
        train_fold(toy, toy.subject_ids()[0], MICRO, QUICK.replace(val_subjects=3), CPU)
    with pytest.raises(InputError, match=r"labels must be in 0\.\.2"):
        PairSet(toy.onset, toy.apex, toy.labels + 1, toy.subjects, toy.keys, toy.class_names)
    with pytest.raises(InputError, match="uint8"):
        PairSet(toy.onset.float(), toy.apex, toy.labels, toy.subjects, toy.keys, toy.class_names)


def test_balanced_class_weighting_runs(toy):
    fold = train_fold(
        toy,
        toy.subject_ids()[0],
        MICRO,
        QUICK.replace(class_weighting="balanced", epochs=1),
        CPU,
    )
    assert np.isfinite(fold.train_loss).all()


@pytest.mark.slow
def test_micro_model_learns_motion_but_not_shuffled_labels():
    data = make_toy_pairs(subjects=6, per_subject=12, classes=3, size=32, seed=0)
    cfg = TrainConfig(epochs=20)
    real = run_loso(data, MICRO, cfg, ON_CPU).evaluate("final", n_boot=200)
    shuffled = run_loso(data.shuffled_labels(1), MICRO, cfg, ON_CPU).evaluate("final", n_boot=200)
    assert real.uf1 > 0.8, real.uf1
    assert shuffled.uf1 < 0.5, shuffled.uf1  # chance is 1/3


@pytest.mark.slow
def test_tiny_preset_learns_the_toy_task():
    data = make_toy_pairs(subjects=4, per_subject=12, classes=3, size=64, seed=0)
    result = run_loso(data, preset("tiny", num_classes=3), TrainConfig(epochs=30), ON_CPU)
    report = result.evaluate("final", n_boot=200)
    assert report.uf1 > 0.7, report.uf1


def test_pooled_scores_of_all_folds_equal_the_full_evaluation(quick_run):

    for mode in ("final", "val", "oracle", "published-oracle"):
        partial = pooled_scores(quick_run.folds, mode, quick_run.labels, 3)
        full = quick_run.evaluate(mode, n_boot=20)
        assert partial == pytest.approx({"acc": full.acc, "uf1": full.uf1, "uar": full.uar})
    two = pooled_scores(quick_run.folds[:2], "final", quick_run.labels, 3)
    n = sum(len(f.test_index) for f in quick_run.folds[:2])
    correct = sum(
        int((f.test_probs[-1].argmax(1) == quick_run.labels[f.test_index]).sum())
        for f in quick_run.folds[:2]
    )
    assert two["acc"] == pytest.approx(correct / n)
