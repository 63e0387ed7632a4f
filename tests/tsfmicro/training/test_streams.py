"""Folds trained at once in threads (each on its own CUDA stream on a GPU) give the folds that
training them one by one gives, with the same seeds.

Tolerance: on the CPU none. Each fold runs train_fold's own loop on its own generator, and its
model is initialised under a lock from the fold's seed, so every probability, loss and weight
is equal bit for bit. On CUDA fp32, 1e-4 in probability: the same kernels run on another stream,
but cuDNN may pick another algorithm for a convolution when several folds share the device.
"""

import threading

import numpy as np
import pytest
import torch

from tsfmicro.config import MachineConfig, TrainConfig, preset
from tsfmicro.errors import ConfigError
from tsfmicro.toy import make_toy_pairs
from tsfmicro.training.fold import train_fold
from tsfmicro.training.loso import run_loso
from tsfmicro.training.runners import Runner
from tsfmicro.training.streams import train_streams

MICRO = preset("micro", num_classes=3, drop_path=0.3)
CPU = MachineConfig(device="cpu")


@pytest.fixture(scope="module")
def toy():
    return make_toy_pairs(subjects=4, per_subject=6, classes=3, size=32, seed=5)


def _same(a, b) -> None:
    assert a.subject == b.subject and a.seed == b.seed
    np.testing.assert_array_equal(a.train_index, b.train_index)
    np.testing.assert_array_equal(a.test_probs, b.test_probs)
    np.testing.assert_array_equal(a.val_probs, b.val_probs)
    np.testing.assert_array_equal(a.train_loss, b.train_loss)
    np.testing.assert_array_equal(a.train_acc, b.train_acc)


@pytest.mark.parametrize(
    "train_cfg",
    [
        TrainConfig(epochs=2, batch_size=8, class_weighting="balanced"),
        TrainConfig(epochs=2, batch_size=8, val_subjects=1, augment=False),
    ],
    ids=["weighted-augmented", "validation-split"],
)
def test_folds_in_threads_equal_folds_trained_one_by_one(toy, train_cfg):
    subjects = toy.subject_ids()
    before = torch.random.get_rng_state()
    single = [train_fold(toy, s, MICRO, train_cfg, CPU, keep_model=True) for s in subjects]
    seen: list[tuple[str, int]] = []
    threads: set[str] = set()

    def on_epoch(stats) -> None:
        seen.append((stats.subject, stats.epoch))
        threads.add(threading.current_thread().name)

    # the subjects in another order: the results come back in the order asked for
    order = subjects[::-1]
    together = train_streams(
        toy, order, MICRO, train_cfg, CPU, concurrent=3, on_epoch=on_epoch, keep_model=True
    )
    assert [f.subject for f in together] == order
    for fold in together:
        one = single[subjects.index(fold.subject)]
        _same(fold, one)
        for name, value in one.state_dict.items():
            assert torch.equal(fold.state_dict[name], value), name
    assert sorted(seen) == sorted((s, e) for s in subjects for e in (1, 2))
    assert len(threads) > 1  # the folds really ran on several threads
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG untouched


def test_run_loso_with_fold_streams_gives_the_sequential_run(toy):
    cfg = TrainConfig(epochs=2, batch_size=8)
    sequential = run_loso(toy, MICRO, cfg, Runner(machine=CPU))
    finished = []
    streamed = run_loso(toy, MICRO, cfg, Runner("streams", 2, machine=CPU), on_fold=finished.append)
    assert streamed.info["fold_group"] == "streams" and streamed.info["fold_size"] == 2
    assert sorted(f.subject for f in finished) == toy.subject_ids()
    for a, b in zip(sequential.folds, streamed.folds, strict=True):
        _same(a, b)
    assert streamed.evaluate("final", n_boot=5).acc == sequential.evaluate("final", n_boot=5).acc


def test_fold_streams_refuses_bad_settings(toy):
    cfg = TrainConfig(epochs=1, batch_size=8)
    subjects = toy.subject_ids()
    with pytest.raises(ConfigError, match="concurrent"):
        train_streams(toy, subjects, MICRO, cfg, CPU, concurrent=0)
    with pytest.raises(ConfigError, match="twice"):
        train_streams(toy, [subjects[0], subjects[0]], MICRO, cfg, CPU)
    with pytest.raises(ConfigError, match="compile"):
        train_streams(toy, subjects, MICRO, cfg, CPU.replace(compile="inductor"), concurrent=2)
    with pytest.raises(ConfigError, match="Runner.size"):
        Runner("streams", -1)
    with pytest.raises(ConfigError, match="fold group 'threads'"):
        Runner("threads", 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_folds_on_cuda_streams_match_folds_trained_one_by_one():
    """The same check on a GPU, fp32 (amp off), every fold of the set on its own stream."""
    data = make_toy_pairs(subjects=4, per_subject=6, classes=3, size=32, seed=5)
    cfg = TrainConfig(epochs=2, batch_size=8)
    gpu = MachineConfig(device="cuda", amp=False)
    subjects = data.subject_ids()
    single = [train_fold(data, s, MICRO, cfg, gpu) for s in subjects]
    together = train_streams(data, subjects, MICRO, cfg, gpu)
    for one, many in zip(single, together, strict=True):
        assert many.device.startswith("cuda")
        np.testing.assert_allclose(many.test_probs, one.test_probs, atol=1e-4, rtol=0)
