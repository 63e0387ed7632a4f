"""ACC/UF1/UAR against scikit-learn and hand computations; subject bootstrap."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

from tsfmicro import metrics as M
from tsfmicro.errors import InputError


@pytest.mark.parametrize("seed", range(20))
def test_agrees_with_sklearn_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    n = int(rng.integers(5, 80))
    y_true = rng.integers(0, k, n)
    # Biased predictions so scores differ from chance, sometimes into absent classes.
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, k, n))
    present = np.unique(y_true)
    cm = M.confusion_matrix(y_true, y_pred, k)
    assert np.array_equal(cm, confusion_matrix(y_true, y_pred, labels=range(k)))
    s = M.scores(cm)
    assert s["acc"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert s["uf1"] == pytest.approx(f1_score(y_true, y_pred, labels=present, average="macro"))
    assert s["uar"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))


def test_hand_computed_case():
    # true:  0 0 0 1 1 2
    # pred:  0 0 1 1 2 2
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    s = M.scores(M.confusion_matrix(y_true, y_pred, 3))
    assert s["acc"] == pytest.approx(4 / 6)
    # F1: class0 2*2/(2*2+0+1)=4/5, class1 2/(2+1+1)=1/2, class2 2/(2+1+0)=2/3
    assert s["uf1"] == pytest.approx((4 / 5 + 1 / 2 + 2 / 3) / 3)
    # recall: 2/3, 1/2, 1/1
    assert s["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)


def test_uar_is_recall_not_precision():
    # Everything predicted as class 0: recall (1, 0) -> UAR 0.5; precision would differ.
    y_true = np.array([0, 0, 0, 1])
    y_pred = np.zeros(4, dtype=int)
    assert M.scores(M.confusion_matrix(y_true, y_pred, 2))["uar"] == pytest.approx(0.5)


def test_class_absent_from_a_fold_is_left_out_not_counted_as_zero():
    # Fold with only classes 0 and 1 out of 3; one sample wrongly predicted as class 2.
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 2, 1, 1])
    s = M.scores(M.confusion_matrix(y_true, y_pred, 3))
    f1_0, f1_1 = 2 * 1 / (2 * 1 + 0 + 1), 2 * 2 / (2 * 2 + 0 + 0)
    assert s["uf1"] == pytest.approx((f1_0 + f1_1) / 2)
    assert s["uar"] == pytest.approx((0.5 + 1.0) / 2)
    table = M.per_class(M.confusion_matrix(y_true, y_pred, 3), ["a", "b", "c"])
    assert np.isnan(table.loc[2, "recall"]) and table.loc[2, "f1"] == 0.0


def test_evaluate_reports_pooled_and_per_fold_means():
    y_true = np.array([0, 1, 0, 1, 0, 0])
    y_pred = np.array([0, 1, 1, 1, 0, 1])
    subjects = np.array(["a", "a", "b", "b", "c", "c"])
    r = M.evaluate(y_true, y_pred, subjects, ("x", "y"), n_boot=200)
    assert r.acc == pytest.approx(4 / 6)
    assert r.n_subjects == 3 and list(r.per_fold["subject"]) == ["a", "b", "c"]
    assert r.fold_mean["acc"] == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    # Subject c has only class 0: its UF1 and UAR use that class alone.
    c = r.per_fold.set_index("subject").loc["c"]
    assert c["uar"] == pytest.approx(0.5) and c["uf1"] == pytest.approx(2 / 3)
    assert r.confusion.sum() == 6
    d = r.to_dict()
    assert d["pooled"]["acc"] == pytest.approx(r.acc) and "ci" in d


def test_subject_bootstrap_resamples_subjects():
    # Two subjects: one always right, one always wrong, 50 samples each. Resampling samples
    # would give a very narrow interval around 0.5; resampling subjects gives 0..1 outcomes
    # with 2 subjects (all-right, all-wrong or mixed).
    y_true = np.zeros(100, dtype=int)
    y_pred = np.r_[np.zeros(50, int), np.ones(50, int)]
    subjects = np.r_[["good"] * 50, ["bad"] * 50]
    lo, hi = M.subject_bootstrap(y_true, y_pred, subjects, 2, n_boot=2000, seed=0)["acc"]
    assert lo == pytest.approx(0.0) and hi == pytest.approx(1.0)


def test_bootstrap_interval_contains_estimate_and_shrinks_with_subjects():
    rng = np.random.default_rng(0)

    def width(n_subjects):
        subjects = np.repeat(np.arange(n_subjects), 10).astype(str)
        y_true = rng.integers(0, 3, len(subjects))
        y_pred = np.where(
            rng.random(len(subjects)) < 0.7, y_true, rng.integers(0, 3, len(subjects))
        )
        r = M.evaluate(y_true, y_pred, subjects, ("a", "b", "c"), n_boot=1000)
        assert r.ci["uf1"][0] <= r.uf1 <= r.ci["uf1"][1]
        return r.ci["acc"][1] - r.ci["acc"][0]

    assert width(60) < width(6)


def test_bad_input():
    with pytest.raises(InputError, match="labels outside"):
        M.confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(InputError, match="equal length"):
        M.confusion_matrix(np.array([0, 1]), np.array([0]), 3)
    with pytest.raises(InputError, match="no predictions"):
        M.evaluate(np.array([], int), np.array([], int), np.array([]), ("a", "b"))


def test_part_scores_per_dataset_of_the_keys_or_of_a_column():
    """Per part of a pooled multi-dataset run (MEGC 2019's per-dataset figures) and per held-out
    dataset of a cross-dataset run: one function, each part's samples alone, against
    scikit-learn; the ACC from `acc_pred` (a mode whose ACC epochs differ) where present."""
    import pandas as pd

    rng = np.random.default_rng(3)
    keys = [f"{d}/{d}-s{i % 2}/c{i}" for d in ("casme2", "samm", "smic") for i in range(8)]
    label = rng.integers(0, 3, len(keys))
    pred = pd.DataFrame({"key": keys, "subject": [k.rsplit("/", 1)[0] for k in keys],
                         "label": label, "pred": rng.integers(0, 3, len(keys))})  # fmt: skip
    parts = M.part_scores(pred, 3)
    assert list(parts) == ["casme2", "samm", "smic"]
    for i, name in enumerate(parts):
        y, p = label[8 * i : 8 * i + 8], pred["pred"].to_numpy()[8 * i : 8 * i + 8]
        assert parts[name]["n"] == 8 and parts[name]["n_subjects"] == 2
        assert parts[name]["acc"] == pytest.approx(accuracy_score(y, p))
        assert parts[name]["uf1"] == pytest.approx(
            f1_score(y, p, labels=np.unique(y), average="macro"))  # fmt: skip
        assert parts[name]["uar"] == pytest.approx(balanced_accuracy_score(y, p))
    pred["acc_pred"] = pred["label"]  # every ACC-epoch prediction right
    pred["fold"] = np.where(pred["key"].str.startswith("samm"), "samm", "casme2+smic")
    by_fold = M.part_scores(pred, 3, by="fold")
    assert sorted(by_fold) == ["casme2+smic", "samm"] and by_fold["samm"]["acc"] == 1.0
    assert by_fold["samm"]["uf1"] == pytest.approx(parts["samm"]["uf1"])
    assert list(M.key_parts(["casme2/sub01/EP1", "samm/006/006_1"])) == ["casme2", "samm"]
