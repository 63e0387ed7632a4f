"""The published recipe and the published-oracle mode in the search service: the CLI builds
the recipe, trials report the mode, its MLflow names are valid, the leaderboards label it
optimistic, and the honest estimates read each score from its own epochs."""

import numpy as np
import pytest

from search.honest import TrialInput, estimate, mode_inputs
from search.leaderboard import format_leaderboard
from search.schema import OBJECTIVE, partial_metric, report_key, score_metric
from search.trial import TrialSetup, trial_metrics
from tsfmicro import metrics as M
from tsfmicro.cli import build_parser
from tsfmicro.config import TrainConfig, preset
from tsfmicro.training.evaluation import pooled_scores
from tsfmicro.training.fold import FoldResult
from tsfmicro.vocab import PUBLISHED_ORACLE

K = 3


def _fold(subject, test_index, predictions):
    preds = np.asarray(predictions)
    probs = np.full((*preds.shape, K), 0.1, dtype=np.float32)
    np.put_along_axis(probs, preds[..., None], 0.8, axis=2)
    epochs = len(preds)
    return FoldResult(
        subject=subject,
        seed=0,
        train_index=np.zeros(0, dtype=np.int64),
        test_index=np.asarray(test_index),
        val_index=np.zeros(0, dtype=np.int64),
        val_subjects=[],
        test_probs=probs,
        val_probs=np.zeros((epochs, 0, K), dtype=np.float32),
        train_loss=np.zeros(epochs),
        train_acc=np.zeros(epochs),
        seconds=0.0,
        train_samples=0,
        device="cpu",
    )


# Subject a: the ACC epoch (1) differs from the UF1 epoch (2); b reaches 100% at epoch 1;
# c: ACC epoch 0, UF1 epoch 1 (tests/tsfmicro/training/test_published.py explains each).
LABELS = np.array([0, 0, 0, 1, 2, 1, 2, 0, 0, 1, 1])
FOLDS = {
    "a": _fold(
        "a", [0, 1, 2, 3, 4], [[0, 0, 0, 0, 0], [0, 0, 0, 0, 2], [0, 1, 1, 1, 2], [0, 0, 0, 2, 2]]
    ),
    "b": _fold("b", [5, 6], [[1, 1], [1, 2], [1, 2], [0, 0]]),
    "c": _fold("c", [7, 8, 9, 10], [[0, 0, 1, 2], [0, 1, 1, 1], [2] * 4, [2] * 4]),
}
# a second trial that always predicts class 0
WEAK = {s: _fold(s, f.test_index, np.zeros_like(f.test_probs[..., 0], dtype=int))
        for s, f in FOLDS.items()}  # fmt: skip


def test_train_cli_builds_the_published_recipe_without_reading_data():
    from tsfmicro.commands.train import build_configs

    args = build_parser().parse_args(
        ["train", "--recipe", "published", "--dataset", "samm", "--protocol", "3class"]
    )
    _, train, _ = build_configs(args)
    assert (train.epochs, train.weight_decay, train.train_pairs) == (199, 0.7, False)
    args = build_parser().parse_args(["train", "--recipe", "published", "--epochs", "4"])
    _, train, _ = build_configs(args)  # the toy task (3 classes): the 3-class values
    assert train.epochs == 4 and train.rotation_deg == 4.0 and args.recipe == "published"
    _, train, _ = build_configs(build_parser().parse_args(["train"]))
    assert train == TrainConfig()


def test_trials_report_the_mode_and_can_optimise_it():
    setup = TrialSetup(
        data_ref=[None],
        subjects=("a", "b", "c"),
        labels=LABELS,
        num_classes=K,
        base_model=preset("micro", num_classes=K),
        base_train=TrainConfig(epochs=4),
        eval_mode=PUBLISHED_ORACLE,
        objective="acc",
        fold_cpus=1,
        fold_gpus=0,
        fold_parallelism=1,
        fold_retries=0,
    )
    metrics = trial_metrics(FOLDS, setup)
    assert metrics[report_key(PUBLISHED_ORACLE, "acc")] == pytest.approx(9 / 11)
    assert metrics[report_key(PUBLISHED_ORACLE, "uf1")] == pytest.approx((4 / 7 + 8 / 11 + 1) / 3)
    assert metrics[OBJECTIVE] == pytest.approx(9 / 11)
    assert metrics[report_key("oracle", "acc")] == pytest.approx(9 / 11)
    from mlflow.utils.validation import _validate_metric_name

    for name in (score_metric(PUBLISHED_ORACLE, "uf1"), partial_metric(report_key(
            PUBLISHED_ORACLE, "uf1"))):  # fmt: skip
        _validate_metric_name(name)  # raises on a name MLflow refuses


def test_leaderboards_label_the_mode_optimistic():
    import pandas as pd

    from dashboards import tables

    board = pd.DataFrame(
        [{"trial": "t0", "state": "complete", score_metric(PUBLISHED_ORACLE, "uf1"): 0.9,
          score_metric(PUBLISHED_ORACLE, "acc"): 0.8, score_metric(PUBLISHED_ORACLE, "uar"): 0.7}]
    )  # fmt: skip
    text = format_leaderboard(board, PUBLISHED_ORACLE, "uf1")
    assert "OPTIMISTIC" in text.splitlines()[0] and "0.900" in text
    assert "optimistic" in tables.mode_label(PUBLISHED_ORACLE)


def test_honest_estimates_read_each_score_from_its_own_epochs():
    inputs = []
    for name, folds in (("strong", FOLDS), ("weak", WEAK)):
        main, acc = mode_inputs(folds, LABELS, K, PUBLISHED_ORACLE, "uf1")
        inputs.append(TrialInput(name, "complete", predictions=main, acc_predictions=acc))
    for objective in ("uf1", "acc"):
        report = estimate(inputs, num_classes=K, eval_mode=PUBLISHED_ORACLE,
                          objective=objective, n_boot=200)  # fmt: skip
        best = report["estimates"]["search_best"]
        assert report["champion"] == "strong"
        expected = pooled_scores(list(FOLDS.values()), PUBLISHED_ORACLE, LABELS, K)
        assert best["acc"] == pytest.approx(expected["acc"])  # 9/11, the ACC epochs
        assert best["uf1"] == pytest.approx(expected["uf1"])  # the UF1 epochs
        subjects, y_true, acc_pred = inputs[0].acc_predictions
        ci = M.subject_bootstrap(y_true, acc_pred, subjects, K, 200)["acc"]
        assert best["acc_ci"] == pytest.approx(list(ci))  # the logged interval
        assert report["estimates"]["bbc"]["acc"] <= 1.0
    # without the ACC predictions (another mode), one set of predictions serves every score
    plain = [TrialInput(t.trial_id, t.state, predictions=t.predictions) for t in inputs]
    report = estimate(plain, num_classes=K, eval_mode="oracle", objective="uf1", n_boot=50)
    assert report["estimates"]["search_best"]["acc"] == pytest.approx(8 / 11)


def test_bbc_selects_on_its_data_and_scores_on_score_data():
    from tsfmicro import honest as H

    inputs = {}
    for name, folds in (("strong", FOLDS), ("weak", WEAK)):
        inputs[name] = mode_inputs(folds, LABELS, K, PUBLISHED_ORACLE, "uf1")
    main = H.subject_confusions({n: v[0] for n, v in inputs.items()}, K)
    acc = H.subject_confusions({n: v[1] for n, v in inputs.items()}, K)
    alone = H.bbc(main, "uf1", 300, 0, 0.95)
    assert H.bbc(main, "uf1", 300, 0, 0.95, score_data=main).to_dict() == alone.to_dict()
    mixed = H.bbc(main, "uf1", 300, 0, 0.95, score_data=acc)
    assert mixed.picked == alone.picked  # the same choices ...
    assert mixed.acc > alone.acc  # ... scored on the ACC epochs, which have more right
    other = H.subject_confusions({"x": inputs["strong"][0]}, K)
    with pytest.raises(Exception, match="same trials"):
        H.bbc(main, "uf1", 10, 0, 0.95, score_data=other)


def test_a_search_recipe_follows_its_data():
    from search.config import DataSpec
    from search.data import recipe_train

    synthetic = recipe_train("published", DataSpec())  # imitates CASME II 5-class
    assert (synthetic["epochs"], synthetic["crop_padding"]) == (174, 15)
    samm = recipe_train("published", DataSpec(dataset="samm", root="/x", protocol="3class"))
    assert (samm["epochs"], samm["weight_decay"], samm["train_pairs"]) == (199, 0.7, False)
    toy = recipe_train("published", DataSpec(dataset="toy", toy_classes=4))
    assert (toy["weight_decay"], toy["rotation_deg"]) == (0.6, 3.0)
    assert recipe_train("default", DataSpec()) == {}
