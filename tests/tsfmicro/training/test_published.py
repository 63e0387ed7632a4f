"""The published recipe and its epoch selection: `published-oracle` on hand-built folds with a
known answer, the recipe's values per dataset and protocol, and its augmentation options."""

import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tsfmicro import metrics as M
from tsfmicro.config import TrainConfig, preset
from tsfmicro.errors import ConfigError
from tsfmicro.recipes import PUBLISHED_SCRIPTS, published_script, recipe_values
from tsfmicro.training.augment import AugmentParams, augment_pair
from tsfmicro.training.data import IMAGENET_MEAN, normalize
from tsfmicro.training.evaluation import (
    LosoResult,
    pooled_scores,
    published_epochs,
    published_f1,
    published_stop,
    select_epoch,
)
from tsfmicro.training.fold import FoldResult
from tsfmicro.vocab import EVAL_MODES, MODE_NOTES, OPTIMISTIC_MODES, PUBLISHED_ORACLE

K = 3


def _fold(subject, test_index, predictions):
    """A fold whose held-out predictions at each epoch are `predictions[e]` (class ids)."""
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


# Subject a (labels 0 0 0 1 2): 4 right at epochs 1 and 3 (0-based); the scripts take the
# *first* (ACC epoch 1), while the best UF1 is epoch 2 (0.667, with 3 right; 0.619 at 1).
# Subject b (labels 1 2): every sample right at epochs 1 and 2: its training stops after
# epoch 1, so epoch 2 (the later tie the UF1 rule `>=` would take) never happens.
# Subject c (labels 0 0 1 1): 3 right at epochs 0 and 1 (ACC epoch 0). The scripts' F1
# averages over the classes in the labels *or* the predictions: epoch 0 predicts class 2,
# which has no sample, so its F1 is 0.556 (0.833 over the labelled classes alone) and the
# UF1 epoch is 1 (0.733).
LABELS = np.array([0, 0, 0, 1, 2, 1, 2, 0, 0, 1, 1])
SUBJECTS = np.array(["a"] * 5 + ["b"] * 2 + ["c"] * 4)
FOLDS = [
    _fold(
        "a",
        [0, 1, 2, 3, 4],
        [[0, 0, 0, 0, 0], [0, 0, 0, 0, 2], [0, 1, 1, 1, 2], [0, 0, 0, 2, 2]],
    ),
    _fold("b", [5, 6], [[1, 1], [1, 2], [1, 2], [0, 0]]),
    _fold("c", [7, 8, 9, 10], [[0, 0, 1, 2], [0, 1, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]]),
]


def _result():
    return LosoResult(
        folds=FOLDS,
        keys=np.array([f"k{i}" for i in range(len(LABELS))]),
        subjects=SUBJECTS,
        labels=LABELS,
        class_names=("x", "y", "z"),
        dataset="hand",
        model_cfg=preset("micro", num_classes=K),
        train_cfg=TrainConfig(epochs=4),
        seconds=0.0,
    )


def test_published_epochs_are_chosen_separately_and_stop_at_a_perfect_epoch():
    a, b, c = FOLDS
    assert [published_stop(f, LABELS) for f in FOLDS] == [3, 1, 3]
    assert published_epochs(a, LABELS, K) == (1, 2)  # ACC epoch != UF1 epoch
    assert published_epochs(b, LABELS, K) == (1, 1)  # stopped at 100%
    assert published_epochs(c, LABELS, K) == (0, 1)  # F1 over labelled or predicted classes
    assert published_f1(LABELS[[7, 8, 9, 10]], np.array([[0, 0, 1, 2]]), K) == pytest.approx(
        [(1 + 2 / 3 + 0) / 3]
    )
    # the accuracy oracle picks other epochs: the *last* best accuracy, no stop
    assert [select_epoch(f, "oracle", LABELS, K) for f in FOLDS] == [3, 2, 1]
    assert [select_epoch(f, PUBLISHED_ORACLE, LABELS, K, score="acc") for f in FOLDS] == [1, 1, 0]
    assert [select_epoch(f, PUBLISHED_ORACLE, LABELS, K) for f in FOLDS] == [2, 1, 1]


def test_published_oracle_pools_acc_and_uf1_from_their_own_epochs():
    """ACC: the ACC epochs' right answers, 4 + 2 + 3 of 11 (the UF1 epochs have 8). UF1 and
    UAR: the UF1 epochs' predictions pooled, F1 4/7, 8/11, 1 and recalls 2/5, 1, 1."""
    result = _result()
    report = result.evaluate(PUBLISHED_ORACLE, n_boot=200)
    assert report.acc == pytest.approx(9 / 11)
    assert report.uf1 == pytest.approx((4 / 7 + 8 / 11 + 1) / 3)
    assert report.uar == pytest.approx((2 / 5 + 1 + 1) / 3)
    assert report.extra["optimistic"] and report.extra["mode"] == PUBLISHED_ORACLE
    per_fold = report.per_fold.set_index("subject")
    assert per_fold["acc"].to_dict() == pytest.approx({"a": 0.8, "b": 1.0, "c": 0.75})
    assert report.fold_mean["acc"] == pytest.approx((0.8 + 1 + 0.75) / 3)
    assert report.confusion.sum() == 11 and np.trace(report.confusion) == 8  # UF1 epochs
    # the ACC interval is the ACC epochs' own bootstrap (same seed: same subject resamples)
    acc_pred = result.predictions(PUBLISHED_ORACLE)["acc_pred"].to_numpy()
    assert report.ci["acc"] == M.subject_bootstrap(LABELS, acc_pred, SUBJECTS, K, 200)["acc"]
    assert pooled_scores(FOLDS, PUBLISHED_ORACLE, LABELS, K) == pytest.approx(
        {"acc": report.acc, "uf1": report.uf1, "uar": report.uar}
    )


def test_predictions_carry_the_uf1_epoch_and_the_acc_epoch():
    result = _result()
    pred = result.predictions(PUBLISHED_ORACLE).set_index("key")
    assert pred.loc["k0", "epoch"] == 3 and pred.loc["k0", "acc_epoch"] == 2  # 1-based
    assert pred.loc["k7", "epoch"] == 2 and pred.loc["k7", "acc_epoch"] == 1
    assert pred.loc["k3", "pred"] == 1 and pred.loc["k3", "acc_pred"] == 0
    final = result.predictions("final")
    assert (final["acc_pred"] == final["pred"]).all() and (final["acc_epoch"] == 4).all()
    assert PUBLISHED_ORACLE in result.modes


def test_the_mode_is_named_once_and_labelled_optimistic():
    assert PUBLISHED_ORACLE in EVAL_MODES and PUBLISHED_ORACLE in OPTIMISTIC_MODES
    assert MODE_NOTES[PUBLISHED_ORACLE].startswith("OPTIMISTIC")


# ---- the recipe ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "protocol", "epochs", "decay", "rotation", "padding", "pairs"),
    [
        ("casme2", "5class", 174, 0.6, 3.0, 15, True),
        ("casme2", "3class", 199, 0.7, 4.0, 4, True),
        ("samm", "5class", 199, 0.6, 3.0, 15, True),
        ("samm", "3class", 199, 0.7, 4.0, 4, False),
        ("casme3", "4class", 199, 0.6, 3.0, 15, True),
        ("casme3", "7class", 199, 0.6, 3.0, 15, True),
    ],
)
def test_published_recipe_per_script(dataset, protocol, epochs, decay, rotation, padding, pairs):
    values = recipe_values("published", dataset, protocol, 3 if "3" in protocol else 5)
    assert values["epochs"] == epochs and values["weight_decay"] == decay
    assert values["rotation_deg"] == rotation and values["crop_padding"] == padding
    assert values["train_pairs"] is pairs
    assert values["augment_fill"] == "imagenet_mean"
    assert values["augment_interpolation"] == "nearest"
    assert (values["lr"], values["batch_size"], values["lr_gamma"]) == (8e-4, 32, 0.987)
    assert values["lr_decay_epochs"] == 50 and values["class_weighting"] == "none"
    cfg = TrainConfig(**values)  # every value is a valid recipe
    assert cfg.flip_p == 0.5 and cfg.augment
    assert published_script(dataset, protocol, 5).script.endswith(".py")


def test_protocols_without_a_script_take_their_class_counts_values():
    three = published_script("mmew", "3class", 3)
    assert three.script is None and "no published script" in three.note
    assert (three.epochs, three.weight_decay, three.crop_padding) == (199, 0.7, 4)
    seven = recipe_values("published", "mmew", "7class", 7)
    assert (seven["epochs"], seven["weight_decay"], seven["rotation_deg"]) == (199, 0.6, 3.0)
    assert recipe_values("published", "toy", "3class", 3)["rotation_deg"] == 4.0
    assert recipe_values("default") == {}
    with pytest.raises(ConfigError, match="unknown recipe"):
        recipe_values("paper")


def _reference_text(path: str) -> str | None:
    """A file of the authors' repository, from $TSFMICRO_REFERENCE_REPO (a checkout or a bare
    git directory); None when it is not set."""
    root = os.environ.get("TSFMICRO_REFERENCE_REPO")
    if not root:
        return None
    if (Path(root) / path).is_file():
        return (Path(root) / path).read_text()
    done = subprocess.run(
        ["git", "--git-dir", root, "show", f"HEAD:{path}"], capture_output=True, text=True
    )
    return done.stdout if done.returncode == 0 else None


def test_recipe_values_match_the_authors_scripts():
    """Read each script the recipe names (when $TSFMICRO_REFERENCE_REPO points at a copy of
    the authors' repository) and find its values in the text."""
    if _reference_text("base.py") is None:
        pytest.skip("TSFMICRO_REFERENCE_REPO is not set to a copy of the authors' repository")
    for script in PUBLISHED_SCRIPTS.values():
        text = _reference_text(script.script)
        assert text, script.script
        assert f"range(1, {script.epochs + 1})" in text, script.script
        assert f"weight_decay={script.weight_decay}" in text, script.script
        assert f"RandomRotation({int(script.rotation_deg)})" in text, script.script
        assert f"RandomCrop(224, padding={script.crop_padding})" in text, script.script
        assert "lr=0.0008" in text and "gamma=0.987" in text and "if i <= 50" in text
        assert "batch_size=32" in text and "p=0.5" in text
        assert "acc==1." in text.replace(" ", ""), script.script  # the 100% stop
        dataset = _reference_text(script.dataset_file)
        assert dataset, script.dataset_file
        chooses = any(
            line.strip().startswith("on0, apex0 =") and "_difference(" in line
            for line in dataset.splitlines()
        )
        assert chooses is script.train_pairs, script.script


# ---- augmentation options -----------------------------------------------------------------


def _frames(b=2, s=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, s, s, generator=g), torch.rand(b, 3, s, s, generator=g)


def _params(b, angle_deg=0.0, shift=(0, 0), flip=False):
    return AugmentParams(
        flip=torch.full((b,), flip),
        angle=torch.full((b,), math.radians(angle_deg)),
        shift=torch.tensor([shift] * b, dtype=torch.float32),
    )


def test_imagenet_mean_fill_pads_with_the_mean_colour():
    onset, apex = _frames()
    o, a = augment_pair(onset, apex, _params(2, shift=(3, 0)), fill="imagenet_mean")
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1)
    assert torch.allclose(o[..., -3:], mean.expand(2, 3, 32)[..., None].expand(2, 3, 32, 3))
    assert torch.allclose(normalize(a)[..., -3:], torch.zeros(2, 3, 32, 3), atol=1e-6)
    assert torch.allclose(o[..., :-3], onset[..., 3:], atol=1e-6)  # the content only moved
    black, _ = augment_pair(onset, apex, _params(2, shift=(3, 0)))
    assert torch.all(black[..., -3:] == 0)  # the default is unchanged


def test_nearest_rotation_only_copies_pixels_or_the_fill():
    onset, apex = _frames(b=1)
    params = _params(1, angle_deg=4.0)
    near, _ = augment_pair(onset, apex, params, fill="imagenet_mean", interpolation="nearest")
    values = np.sort(np.r_[onset.flatten().numpy(), IMAGENET_MEAN])

    def distance(out):  # from each output pixel to the nearest input value or fill
        v = out.flatten().numpy()
        i = np.clip(np.searchsorted(values, v), 1, len(values) - 1)
        return np.minimum(np.abs(values[i] - v), np.abs(values[i - 1] - v))

    assert distance(near).max() < 1e-6
    smooth, _ = augment_pair(onset, apex, params)
    assert distance(smooth).max() > 1e-3  # bilinear blends
    with pytest.raises(ValueError, match="interpolation"):
        augment_pair(onset, apex, params, interpolation="bicubic")
    with pytest.raises(ValueError, match="fill"):
        augment_pair(onset, apex, params, fill="grey")


def test_options_reproduce_torchvision_on_the_normalised_tensor():
    """The scripts rotate (nearest, fill 0) and pad-crop (fill 0) the normalised tensor:
    ours with imagenet_mean and nearest, then normalised, gives the same pixels for each
    step (torchvision's positive angle turns the other way; the draws are symmetric)."""
    tf = pytest.importorskip("torchvision.transforms.functional")
    from torchvision.transforms import InterpolationMode

    onset, apex = _frames(b=1, s=64)
    for deg in (3.0, -4.0):
        ours, _ = augment_pair(
            onset, apex, _params(1, angle_deg=deg), fill="imagenet_mean", interpolation="nearest"
        )
        theirs = tf.rotate(normalize(onset), -deg, InterpolationMode.NEAREST, fill=0.0)
        assert torch.allclose(normalize(ours), theirs, atol=1e-5)
    ours, _ = augment_pair(onset, apex, _params(1, shift=(3, -2), flip=True), fill="imagenet_mean")
    padded = torch.nn.functional.pad(normalize(onset).flip(-1), (4, 4, 4, 4))
    assert torch.allclose(normalize(ours), padded[..., 2:66, 7:71], atol=1e-5)


def test_train_config_checks_the_options():
    assert TrainConfig().augment_fill == "black"
    assert TrainConfig().augment_interpolation == "bilinear"
    with pytest.raises(ConfigError, match="augment_fill"):
        TrainConfig(augment_fill="white")
    with pytest.raises(ConfigError, match="augment_interpolation"):
        TrainConfig(augment_interpolation="area")


def test_every_runner_trains_with_the_options():
    """The fold loop and the stacked runner pass the fill and interpolation on: the same
    folds under both give the same predictions, and other ones than the defaults give."""
    from tsfmicro.config import MachineConfig
    from tsfmicro.toy import make_toy_pairs
    from tsfmicro.training.loso import run_loso
    from tsfmicro.training.runners import Runner

    toy = make_toy_pairs(subjects=3, per_subject=4, classes=3, size=32, seed=0)
    micro = preset("micro", num_classes=3)
    cpu = MachineConfig(device="cpu")
    published = TrainConfig(
        epochs=1,
        batch_size=8,
        rotation_deg=20.0,
        crop_padding=60,  # 9 px at 32 px: much of the image is fill
        augment_fill="imagenet_mean",
        augment_interpolation="nearest",
    )
    one = run_loso(toy, micro, published, Runner(machine=cpu)).folds
    stacked = run_loso(toy, micro, published, Runner("stacked", 0, machine=cpu)).folds
    plain = run_loso(
        toy,
        micro,
        published.replace(augment_fill="black", augment_interpolation="bilinear"),
        Runner(machine=cpu),
    ).folds
    for a, b, c in zip(one, stacked, plain, strict=True):
        assert np.allclose(a.test_probs, b.test_probs, atol=1e-4)
        assert not np.allclose(a.test_probs, c.test_probs, atol=1e-4)
