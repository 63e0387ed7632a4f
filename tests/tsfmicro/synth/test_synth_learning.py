"""The synthetic benchmark is learnable from the motion, and only from it.

A tiny TSFmicro, LOSO over a generated 5-class CASME II-layout set of 8 subjects (read back
through the adapter and the face-crop cache like a licensed copy). Each test runs its two LOSO
evaluations at once in two single-thread processes (one thread trains as fast as two here, so
the pair takes the time of one).

- 30 epochs, late fusion: pooled UF1 >= 0.6; the same with shuffled labels <= 0.35.
- 15 epochs: temporal-only (motion) beats spatial-only (onset appearance) by a wide margin.

Measured 2026-12-01 on 2 vCPUs: 15 epochs gave temporal 0.403 against spatial 0.195; an earlier
30-epoch run gave late 0.676 and shuffled 0.134, and 2026-12-02 late 0.655 and shuffled 0.133.
"""

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest

from tsfmicro.synth import SynthConfig, write_dataset


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> tuple[Path, Path]:
    """The generated dataset copy and a face-crop cache already filled from it."""
    from tsfmicro.pairs import load_pairs

    root = tmp_path_factory.mktemp("synth-learning")
    write_dataset(
        SynthConfig(dataset="casme2", subjects=8, clips_per_subject=10, difficulty="easy", seed=0),
        root / "copy",
    )
    pairs = load_pairs(
        "casme2", root / "copy", image_size=64, cache_dir=root / "cache", progress=False
    )
    assert len(pairs) == 80 and len(pairs.subject_ids()) == 8 and pairs.num_classes == 5
    return root / "copy", root / "cache"


def loso_uf1(copy: Path, cache: Path, fusion: str, epochs: int, shuffle_seed: int | None) -> float:
    """Pooled final-epoch UF1 of a LOSO evaluation of the tiny preset (runs in a worker)."""
    import torch

    from tsfmicro.config import MachineConfig, TrainConfig, preset
    from tsfmicro.pairs import load_pairs
    from tsfmicro.training.loso import run_loso
    from tsfmicro.training.runners import Runner

    torch.set_num_threads(1)
    pairs = load_pairs("casme2", copy, image_size=64, cache_dir=cache, progress=False)
    if shuffle_seed is not None:
        pairs = pairs.shuffled_labels(shuffle_seed)
    recipe = TrainConfig(epochs=epochs, batch_size=16, weight_decay=0.05)
    model = preset("tiny", num_classes=5, fusion=fusion)
    on_cpu = Runner(machine=MachineConfig(device="cpu"))
    return run_loso(pairs, model, recipe, on_cpu).evaluate("final", n_boot=100).uf1


def both(copy: tuple[Path, Path], *runs: tuple[str, int, int | None]) -> list[float]:
    with ProcessPoolExecutor(len(runs), mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(loso_uf1, *copy, *run) for run in runs]
        return [future.result() for future in futures]


@pytest.mark.slow
def test_tiny_model_learns_the_labels_and_not_shuffled_ones(copy):
    learned, shuffled = both(copy, ("late", 30, None), ("late", 30, 1))
    assert learned >= 0.6
    assert shuffled <= 0.35


@pytest.mark.slow
def test_the_motion_carries_the_label_not_the_onset_appearance(copy):
    temporal, spatial = both(copy, ("temporal_only", 15, None), ("spatial_only", 15, None))
    assert temporal > spatial + 0.1
