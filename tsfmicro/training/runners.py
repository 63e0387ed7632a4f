"""Runners: how many of the folds given to one process train at once, and how.

A runner only places folds; what one fold's training is lives in `tsfmicro.training.fold`.

- ``sequential``: one fold after another (`train_fold`).
- ``stacked``: `size` folds at a time, their models stacked into one and trained as one
  (`tsfmicro.training.stacked`).
- ``streams``: `size` folds at a time, each in a thread of its own and, on CUDA, on a stream of
  its own (`tsfmicro.training.streams`).

`size` 0 means every fold given at once. The same `Runner` serves the CLI (all folds in one
process) and each Ray task of a search (the folds of that task): `Runner.for_task` states the
rule a search task follows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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
from tsfmicro.training.stacked import train_stacked
from tsfmicro.training.streams import train_streams
from tsfmicro.vocab import FOLD_GROUPS, FoldGroup


@dataclass(frozen=True)
class Runner:
    """Where and how many folds train at once in this process: the machine side of a run, not
    part of the recipe. The same seed gives the same folds whichever runner trains them,
    exactly for sequential and streams on the CPU, to a tolerance for stacked."""

    group: FoldGroup = "sequential"  # how folds train together (see the module docstring)
    size: int = 1  # folds at once (stacked: per stack; streams: threads); 0: all given folds
    threads: int = 0  # torch CPU threads for the process; 0 leaves torch's setting as it is
    machine: MachineConfig = field(default=DEFAULT_MACHINE)  # device, precision, compile

    def __post_init__(self) -> None:
        if self.group not in FOLD_GROUPS:
            raise ConfigError(f"fold group {self.group!r} is not one of {', '.join(FOLD_GROUPS)}")
        if not isinstance(self.machine, MachineConfig):
            raise ConfigError(f"Runner.machine must be a MachineConfig, got {self.machine!r}")
        for name in ("size", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"Runner.{name} must be a whole number >= 0, got {value!r}")

    @classmethod
    def for_task(
        cls, group: str, folds: int, threads: int, machine: MachineConfig = DEFAULT_MACHINE
    ) -> Runner:
        """The runner of a search task that trains `folds` folds with `threads` CPUs and the
        settings of `machine`: one fold alone is sequential; "stacked" stacks them all;
        "streams" runs all at once on a GPU, and as many at once as the task has CPUs on the
        CPU (one torch thread each)."""
        threads = max(1, threads)
        if folds <= 1 or group == "sequential":
            return cls("sequential", 1, threads, machine)
        if group == "streams" and resolve_device(machine.device).type != "cuda":
            return cls("streams", max(1, min(threads, folds)), threads, machine)
        return cls(group, 0, threads, machine)  # type: ignore[arg-type]

    def at_once(self, folds: int) -> int:
        """How many of `folds` folds train at the same time."""
        if self.group == "sequential":
            return 1
        return max(1, min(self.size or folds, folds))

    def run(
        self,
        data: PairSet,
        subjects: Sequence[str],
        model_cfg: ModelConfig,
        train_cfg: TrainConfig,
        *,
        on_epoch: Callable[[EpochStats], None] | None = None,
        on_fold: Callable[[FoldResult], None] | None = None,
        keep_model: bool = False,
    ) -> list[FoldResult]:
        """Train the folds holding out each of `subjects`; one FoldResult each, in the given
        order. `on_fold` is called as each fold (or stack of folds) finishes."""
        check_compatible(data, model_cfg)
        subjects = group_subjects(subjects, f"the {self.group} runner")
        at_once = self.at_once(len(subjects))
        if self.threads:
            per_fold = self.threads // at_once if self.group == "streams" else self.threads
            torch.set_num_threads(max(1, per_fold))
        if self.group == "streams" and at_once > 1:
            return train_streams(
                data,
                subjects,
                model_cfg,
                train_cfg,
                self.machine,
                concurrent=at_once,
                on_epoch=on_epoch,
                on_fold=on_fold,
                keep_model=keep_model,
            )
        if self.group == "stacked" and at_once > 1:
            train = train_stacked
        else:
            at_once = 1

            def train(data, chosen, model_cfg, train_cfg, machine, *, on_epoch, keep_model):
                return [
                    train_fold(
                        data,
                        chosen[0],
                        model_cfg,
                        train_cfg,
                        machine,
                        on_epoch=on_epoch,
                        keep_model=keep_model,
                    )
                ]

        folds: list[FoldResult] = []
        for begin in range(0, len(subjects), at_once):
            done = train(
                data,
                subjects[begin : begin + at_once],
                model_cfg,
                train_cfg,
                self.machine,
                on_epoch=on_epoch,
                keep_model=keep_model,
            )
            for fold in done:
                folds.append(fold)
                if on_fold is not None:
                    on_fold(fold)
        return folds


SEQUENTIAL = Runner()
