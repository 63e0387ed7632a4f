"""TrainConfig.compile: the training step under torch.compile trains the same folds as eager
PyTorch, compiles once per process (not once per fold), and refuses what it cannot do.

On the CPU the check uses the aot_eager backend: torch.compile's graph capture and AOT autograd,
the part that decides whether the step (DropPath noise, masked batch norm, channels-last, the
ragged last batch) is captured correctly, without Inductor's code generation, which takes
minutes on two cores. Inductor and CUDA graphs are checked on a GPU (the CUDA test below).
"""

import numpy as np
import pytest
import torch

from tsfmicro.config import MachineConfig, TrainConfig, preset
from tsfmicro.errors import ConfigError
from tsfmicro.toy import make_toy_pairs
from tsfmicro.training.fold import train_fold
from tsfmicro.training.stacked import train_stacked

MICRO = preset("micro", num_classes=3, drop_path=0.3)
# 4 subjects x 6 samples: every fold trains on 18 samples, batches of 8, 8 and 2.
STEPS = TrainConfig(epochs=2, batch_size=8, class_weighting="balanced")
CPU = MachineConfig(device="cpu")


@pytest.fixture(scope="module")
def toy():
    return make_toy_pairs(subjects=4, per_subject=6, classes=3, size=32, seed=5)


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


@pytest.mark.slow
def test_compiled_step_trains_the_same_folds_and_compiles_once(toy):
    torch._dynamo.reset()
    subjects = toy.subject_ids()
    eager = [train_fold(toy, s, MICRO, STEPS, CPU) for s in subjects]
    traced = CPU.replace(compile="aot_eager")
    before = _graphs()
    first = train_fold(toy, subjects[0], MICRO, STEPS, traced)
    after_first = _graphs()
    rest = [train_fold(toy, s, MICRO, STEPS, traced) for s in subjects[1:]]
    # The first fold captured the step (a full batch, then the last batch of 2 with a dynamic
    # batch dimension); the other folds' new models reuse it.
    assert after_first > before
    assert _graphs() == after_first
    for one, traced in zip(eager, [first, *rest], strict=True):
        np.testing.assert_allclose(traced.test_probs, one.test_probs, atol=1e-5, rtol=0)
        np.testing.assert_allclose(traced.train_loss, one.train_loss, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(traced.train_acc, one.train_acc)


def test_compile_settings_that_cannot_work_are_refused(toy):
    with pytest.raises(ConfigError, match="MachineConfig.compile"):
        MachineConfig(compile="jit")
    with pytest.raises(ConfigError, match="'cudagraphs' needs a CUDA device"):
        MachineConfig(compile="cudagraphs", device="cpu")
    subjects = toy.subject_ids()[:2]
    with pytest.raises(ConfigError, match="stacked training"):
        train_stacked(toy, subjects, MICRO, STEPS, CPU.replace(compile="aot_eager"))
    if not torch.cuda.is_available():  # "auto" resolves to the CPU here
        with pytest.raises(ConfigError, match="needs a CUDA device; this fold runs on cpu"):
            train_fold(toy, subjects[0], MICRO, STEPS, MachineConfig(compile="cudagraphs"))


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("mode", ["inductor", "cudagraphs"])
def test_compiled_step_on_cuda_trains_the_same_folds(toy, mode):
    """Inductor kernels (and CUDA graphs replaying them) against eager CUDA, fp32 (amp off, so
    the comparison is not swamped by bf16 rounding): probabilities within 2e-3 after 2 epochs."""
    gpu = MachineConfig(device="cuda", amp=False)
    for subject in toy.subject_ids()[:2]:
        eager = train_fold(toy, subject, MICRO, STEPS, gpu)
        compiled = train_fold(toy, subject, MICRO, STEPS, gpu.replace(compile=mode))
        np.testing.assert_allclose(compiled.test_probs, eager.test_probs, atol=2e-3, rtol=0)
        np.testing.assert_allclose(compiled.train_loss, eager.train_loss, atol=2e-3, rtol=0)
