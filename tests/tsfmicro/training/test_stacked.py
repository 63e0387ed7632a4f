"""Stacked training (the folds' models stacked into one) gives the folds that training them
one by one gives, with the same seeds; and its parts (masked BatchNorm, DropPath noise,
per-fold AdamW) do what they claim.

Tolerance: fold probabilities within 2e-4 of the one-by-one folds after every epoch, training
losses within 1e-5, training accuracies equal. What differs is float rounding only (grouped
kernels, masked BatchNorm sums, the optimiser's operation order); measured differences on this
set are below 1e-4.
"""

import numpy as np
import pytest
import torch
from torch import nn

from tsfmicro.config import MachineConfig, TrainConfig, preset
from tsfmicro.errors import ConfigError
from tsfmicro.models import build_model
from tsfmicro.models.layers import BatchNorm1d, BatchNorm2d, DropPath, attach_step_inputs
from tsfmicro.toy import make_toy_pairs
from tsfmicro.training.data import PairSet, normalize, to_unit_float
from tsfmicro.training.fold import train_fold
from tsfmicro.training.loso import run_loso
from tsfmicro.training.runners import Runner
from tsfmicro.training.stacked import StackedAdamW, train_stacked

MICRO = preset("micro", num_classes=3, drop_path=0.3)
CPU = MachineConfig(device="cpu")
PROB_TOL = 2e-4


@pytest.fixture(scope="module")
def uneven():
    """Five subjects with 9, 7, 5, 3 and 1 samples: folds of different training-set sizes, so
    the last steps of an epoch are padded and some folds sit a step out."""
    toy = make_toy_pairs(subjects=5, per_subject=9, classes=3, size=32, seed=3)
    keep = np.ones(len(toy), dtype=bool)
    for i, subject in enumerate(toy.subject_ids()):
        keep[np.flatnonzero(toy.subjects == subject)[: 2 * i]] = False
    index = torch.as_tensor(np.flatnonzero(keep))
    return PairSet(
        onset=toy.onset[index],
        apex=toy.apex[index],
        labels=toy.labels[index],
        subjects=toy.subjects[keep],
        keys=toy.keys[keep],
        class_names=toy.class_names,
        name="uneven-toy",
    )


@pytest.mark.parametrize(
    "train_cfg",
    [
        TrainConfig(epochs=3, batch_size=8, class_weighting="balanced"),
        TrainConfig(epochs=2, batch_size=8, val_subjects=1, augment=False),
    ],
    ids=["weighted-augmented", "validation-split"],
)
def test_stacked_matches_folds_trained_one_by_one(uneven, train_cfg):
    subjects = uneven.subject_ids()
    sizes = {s: int((uneven.subjects != s).sum()) for s in subjects}
    assert len(set(sizes.values())) == len(subjects)  # every fold a different size
    single = [train_fold(uneven, s, MICRO, train_cfg, CPU, keep_model=True) for s in subjects]
    stats = []
    batched = train_stacked(
        uneven, subjects, MICRO, train_cfg, CPU, keep_model=True, on_epoch=stats.append
    )
    assert [f.subject for f in batched] == subjects
    assert len(stats) == len(subjects) * train_cfg.epochs
    for one, many in zip(single, batched, strict=True):
        assert one.seed == many.seed
        assert np.array_equal(one.train_index, many.train_index)
        assert np.array_equal(one.val_index, many.val_index)
        assert many.test_probs.shape == one.test_probs.shape
        np.testing.assert_allclose(many.test_probs, one.test_probs, atol=PROB_TOL, rtol=0)
        np.testing.assert_allclose(many.val_probs, one.val_probs, atol=PROB_TOL, rtol=0)
        np.testing.assert_allclose(many.train_loss, one.train_loss, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(many.train_acc, one.train_acc)
        _assert_same_models(uneven, one.state_dict, many.state_dict)


def _assert_same_models(data: PairSet, one: dict, many: dict) -> None:
    """The kept models compute the same function: eval-mode probabilities on every sample
    (which also checks BatchNorm's running statistics), and took the same number of steps.
    Parameters are not compared one by one: some (a bias in front of a BatchNorm, a constant
    added to every token before the head's BatchNorm) have a zero gradient in exact arithmetic,
    so AdamW moves them by rounding noise, differently on the two paths, without any effect."""
    assert one.keys() == many.keys()
    for name in one:
        if name.endswith("num_batches_tracked"):  # steps the fold took, padded steps not
            assert int(one[name]) == int(many[name]), name
    probs = []
    for state in (one, many):
        model = build_model(MICRO)
        model.load_state_dict(state)
        with torch.no_grad():
            logits = model.eval()(
                normalize(to_unit_float(data.onset)), normalize(to_unit_float(data.apex))
            )
        probs.append(torch.softmax(logits, 1).numpy())
    np.testing.assert_allclose(probs[1], probs[0], atol=PROB_TOL, rtol=0)


def test_run_loso_in_groups_covers_every_sample_and_matches(uneven):
    cfg = TrainConfig(epochs=1, batch_size=8)
    one_by_one = run_loso(uneven, MICRO, cfg, Runner(machine=CPU))
    grouped = run_loso(uneven, MICRO, cfg, Runner("stacked", 2, machine=CPU))  # 2, 2 and 1
    together = run_loso(uneven, MICRO, cfg, Runner("stacked", 0, machine=CPU))
    assert together.info["fold_size"] == 5 and grouped.info["fold_size"] == 2
    assert together.info["fold_group"] == grouped.info["fold_group"] == "stacked"
    for result in (grouped, together):
        pred, ref = result.predictions("final"), one_by_one.predictions("final")
        assert pred["key"].tolist() == ref["key"].tolist()
        probs = [c for c in ref.columns if c.startswith("p_")]
        np.testing.assert_allclose(pred[probs].to_numpy(), ref[probs].to_numpy(), atol=PROB_TOL)
    with pytest.raises(ConfigError, match="Runner.size"):
        Runner("stacked", -1)
    with pytest.raises(ConfigError, match="twice"):
        train_stacked(uneven, ["s00", "s00"], MICRO, cfg, CPU)


@pytest.mark.parametrize("cls, shape", [(BatchNorm2d, (6, 4, 5, 5)), (BatchNorm1d, (6, 4, 7))])
def test_masked_batch_norm(cls, shape):
    torch.manual_seed(0)
    x = torch.randn(shape) * 3 + 1
    plain, masked = cls(4), cls(4)
    masked.load_state_dict(plain.state_dict())
    # all rows real: torch's BatchNorm exactly (output and running statistics)
    with attach_step_inputs(masked).holding(mask=torch.ones(shape[0])):
        out = masked(x)
    torch.testing.assert_close(out, plain(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(masked.running_mean, plain.running_mean)
    torch.testing.assert_close(masked.running_var, plain.running_var)
    # padded rows change nothing for the real ones
    real = cls(4)
    expected = real(x[:4])
    padded, junk = cls(4), torch.cat([x[:4], torch.full_like(x[4:], 1e3)])
    step = attach_step_inputs(padded)
    with step.holding(mask=torch.tensor([1.0, 1, 1, 1, 0, 0])):
        got = padded(junk)[:4]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded.running_var, real.running_var)
    # no real row: the running statistics stay as they were
    before = {k: v.clone() for k, v in padded.state_dict().items()}
    with step.holding(mask=torch.zeros(shape[0])):
        assert torch.isfinite(padded(x)).all()
    for k, v in padded.state_dict().items():
        assert torch.equal(v, before[k]), k
    # eval mode ignores the mask
    padded.eval()
    with step.holding(mask=torch.zeros(shape[0])):
        torch.testing.assert_close(
            padded(x),
            nn.functional.batch_norm(
                x, padded.running_mean, padded.running_var, padded.weight, padded.bias, False
            ),
        )


def test_drop_path_takes_its_draws_from_the_given_noise():
    layer = DropPath(0.5, calls=2).train()
    x = torch.ones(4, 3)
    noise = torch.tensor([[0.1, 0.9, 0.2, 0.7], [0.6, 0.4, 0.55, 0.3]])
    with attach_step_inputs(layer).holding(noise=noise):
        first, second = layer(x), layer(x)
        with pytest.raises(RuntimeError, match="more than 2 DropPath draws"):
            layer(x)
    assert first[:, 0].tolist() == [2.0, 0.0, 2.0, 0.0]  # kept where u < keep, scaled 1/keep
    assert second[:, 0].tolist() == [0.0, 2.0, 0.0, 2.0]
    assert torch.equal(layer.eval()(x), x)


def test_stacked_adamw_is_torch_adamw_per_fold_with_idle_steps():
    torch.manual_seed(1)
    folds, steps = 3, 6
    start = torch.randn(folds, 20)
    grads = torch.randn(steps, folds, 20)
    active = np.array([[True, True, True], [True, False, True], [True, True, False]] * 2)
    stacked, grad = start.clone(), torch.zeros(folds, 20)
    opt = StackedAdamW(stacked, grad, weight_decay=0.6)
    for t in range(steps):
        opt.zero_grad()
        grad += grads[t]
        opt.step(lr=8e-4 * 0.9**t, active=active[t])
    for f in range(folds):
        p = nn.Parameter(start[f].clone())
        ref = torch.optim.AdamW([p], lr=8e-4, weight_decay=0.6)
        for t in range(steps):
            if not active[t, f]:
                continue
            ref.param_groups[0]["lr"] = 8e-4 * 0.9**t
            p.grad = grads[t, f].clone()
            ref.step()
        torch.testing.assert_close(stacked[f], p.detach(), atol=1e-6, rtol=1e-6)
        assert int(opt.steps[f]) == int(active[:, f].sum())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_stacked_matches_folds_trained_one_by_one_on_cuda(uneven):
    """The same check on a GPU, fp32 (amp off): cuDNN and cuBLAS pick their own kernels for
    stacked and single folds, so the tolerance is 2e-3 in probability."""
    cfg = TrainConfig(epochs=2, batch_size=8)
    gpu = MachineConfig(device="cuda", amp=False)
    subjects = uneven.subject_ids()
    single = [train_fold(uneven, s, MICRO, cfg, gpu) for s in subjects]
    batched = train_stacked(uneven, subjects, MICRO, cfg, gpu)
    for one, many in zip(single, batched, strict=True):
        assert many.device.startswith("cuda")
        np.testing.assert_allclose(many.test_probs, one.test_probs, atol=2e-3, rtol=0)
