"""LOSO folds trained at once in threads of one process, each on its own CUDA stream on a GPU.

The third way of running several folds on one device, beside stacked training
(`tsfmicro.training.stacked`, the models stacked into one) and several fold processes sharing
a GPU (fractional `fold_gpus` in a search): here one process holds the data once and runs up
to `concurrent` folds at the same time, each fold in a worker thread that runs `train_fold`'s
own loop. On CUDA each worker thread queues its kernels on a stream of its own, so the small
kernels of one fold at batch 32 overlap with the other folds' instead of waiting in one queue;
on the CPU the threads share the cores (PyTorch releases the GIL inside its operators).

Each fold is the fold `train_fold` trains: its model is initialised from torch's global RNG
seeded with the fold's seed (under a lock, one fold at a time), and everything after draws from
the fold's own generator, which no other thread touches. So the predictions equal those of
folds trained one by one, bit for bit on the CPU (tests/tsfmicro/training/test_streams.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from tsfmicro.config import DEFAULT_MACHINE, MachineConfig, ModelConfig, TrainConfig
from tsfmicro.errors import ConfigError
from tsfmicro.training.data import PairSet
from tsfmicro.training.fold import (
    EpochStats,
    FoldResult,
    check_compatible,
    group_subjects,
    resolve_device,
    train_fold,
)

_INIT_LOCK = threading.Lock()  # model initialisation seeds torch's global RNG


def train_streams(
    data: PairSet,
    subjects: Sequence[str],
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    machine: MachineConfig = DEFAULT_MACHINE,
    *,
    concurrent: int | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    on_fold: Callable[[FoldResult], None] | None = None,
    keep_model: bool = False,
) -> list[FoldResult]:
    """Train the LOSO folds holding out each of `subjects`, `concurrent` at a time (default:
    all at once), each in a thread of its own and, on CUDA, on a stream of its own. Returns one
    FoldResult per subject in the given order; each fold's `seconds` is its own wall time.
    `on_epoch` and `on_fold` (as each fold finishes) are called from the worker threads, one
    call at a time."""
    check_compatible(data, model_cfg)
    subjects = group_subjects(subjects, "train_streams")
    if concurrent is None:
        concurrent = len(subjects)
    if not isinstance(concurrent, int) or isinstance(concurrent, bool) or concurrent < 1:
        raise ConfigError(f"concurrent folds must be a whole number >= 1, got {concurrent!r}")
    if machine.compile != "off" and min(concurrent, len(subjects)) > 1:
        raise ConfigError(
            f"MachineConfig.compile={machine.compile!r} applies to folds trained one by one; "
            f"folds trained at once in threads ({concurrent}) run eager: set compile to 'off' "
            "or train one fold at a time"
        )
    device = resolve_device(machine.device)
    workers = min(concurrent, len(subjects))
    callback_lock = threading.Lock()
    report = None
    if on_epoch is not None:

        def report(stats: EpochStats) -> None:
            with callback_lock:
                on_epoch(stats)

    local = threading.local()

    def one(subject: str) -> FoldResult:
        stream = None
        if device.type == "cuda":
            if not hasattr(local, "stream"):  # one stream per worker thread, kept for its folds
                local.stream = torch.cuda.Stream(device)
            stream = local.stream
        fold = train_fold(
            data,
            subject,
            model_cfg,
            train_cfg,
            machine,
            on_epoch=report,
            keep_model=keep_model,
            init_lock=_INIT_LOCK,
            stream=stream,
        )
        if on_fold is not None:
            with callback_lock:
                on_fold(fold)
        return fold

    if workers == 1:
        return [one(s) for s in subjects]
    with ThreadPoolExecutor(workers, thread_name_prefix="tsfmicro-fold") as pool:
        return list(pool.map(one, subjects))
