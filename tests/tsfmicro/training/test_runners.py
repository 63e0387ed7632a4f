"""The runners and the one LOSO engine: a part of a run (what a search task trains) is the same
folds as the whole run gives, every runner is chosen by one setting, and the rule a search task
follows is stated once (Runner.for_task)."""

import argparse

import numpy as np
import pytest

from tsfmicro.commands.train import runner_from_args
from tsfmicro.config import MachineConfig, TrainConfig, preset
from tsfmicro.errors import ConfigError, InputError
from tsfmicro.toy import make_toy_pairs
from tsfmicro.training.evaluation import LosoResult
from tsfmicro.training.loso import run_loso
from tsfmicro.training.runners import Runner

MICRO = preset("micro", num_classes=3)
CFG = TrainConfig(epochs=1, batch_size=8)
CPU = MachineConfig(device="cpu")


@pytest.fixture(scope="module")
def toy():
    return make_toy_pairs(subjects=4, per_subject=6, classes=3, size=32, seed=11)


def test_a_part_of_a_run_is_those_folds_of_the_whole_run(toy):
    whole = run_loso(toy, MICRO, CFG, Runner(machine=CPU))
    subjects = toy.subject_ids()
    part = run_loso(toy, MICRO, CFG, Runner("streams", 2, machine=CPU), subjects=subjects[2:])
    assert [f.subject for f in part.folds] == subjects[2:]
    by_subject = {f.subject: f for f in whole.folds}
    for fold in part.folds:
        assert np.array_equal(fold.test_probs, by_subject[fold.subject].test_probs)
    # the parts of a run, assembled, are the whole run
    first = run_loso(toy, MICRO, CFG, Runner(machine=CPU), subjects=subjects[:2])
    joined = LosoResult.from_folds(toy, first.folds + part.folds, MICRO, CFG, 0.0)
    assert joined.evaluate("final", n_boot=5).acc == whole.evaluate("final", n_boot=5).acc
    # but a part is not a whole run
    with pytest.raises(InputError, match="exactly once"):
        LosoResult.from_folds(toy, part.folds, MICRO, CFG, 0.0)


def test_the_task_rule_of_a_search():
    assert Runner.for_task("stacked", 1, 2, CPU) == Runner("sequential", 1, 2, CPU)
    assert Runner.for_task("stacked", 5, 2, CPU) == Runner("stacked", 0, 2, CPU)
    # streams on the CPU: as many folds at once as the task has CPUs, one thread each
    streams = Runner.for_task("streams", 5, 2, CPU)
    assert streams == Runner("streams", 2, 2, CPU) and streams.at_once(5) == 2
    assert Runner.for_task("streams", 5, 8, CPU).at_once(5) == 5
    assert Runner("stacked", 0).at_once(7) == 7 and Runner("stacked", 3).at_once(2) == 2
    assert Runner().at_once(9) == 1


def _args(**kw):
    base = {"fold_group": None, "fold_batch": 1, "fold_streams": 1}
    return argparse.Namespace(**{**base, **kw})


def test_the_train_command_maps_its_flags_onto_one_runner():
    assert runner_from_args(_args()) == Runner()
    assert runner_from_args(_args(fold_batch=0)) == Runner("stacked", 0)
    assert runner_from_args(_args(fold_streams=3)) == Runner("streams", 3)
    assert runner_from_args(_args(fold_group="streams", fold_batch=2)) == Runner("streams", 2)
    with pytest.raises(ConfigError, match="--fold-streams N is --fold-group streams"):
        runner_from_args(_args(fold_streams=2, fold_batch=2))
    with pytest.raises(ConfigError, match="--fold-group sequential"):
        runner_from_args(_args(fold_group="sequential", fold_batch=3))
    with pytest.raises(ConfigError, match="Runner.size"):
        runner_from_args(_args(fold_batch=-2))
