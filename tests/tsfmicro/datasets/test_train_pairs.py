"""The published recipe's training-time frame pair: the rule, the choice, its cache, the crops
it adds to a PairSet, and that training (one by one and fold-batched) uses it while evaluation
keeps the annotated pair."""

import dataclasses

import cv2
import numpy as np
import pytest
import torch

import tsfmicro.datasets.train_pairs as train_pairs_module
from tsfmicro.config import MachineConfig, TrainConfig, preset
from tsfmicro.datasets import frame_path, load_dataset
from tsfmicro.datasets.train_pairs import (
    candidate_frames,
    candidate_pairs,
    choose_pair,
    jitter_range,
    training_pairs,
)
from tsfmicro.errors import DataError, InputError
from tsfmicro.pairs import pairs_from_table
from tsfmicro.synth import SynthConfig
from tsfmicro.synth.writer import write_dataset
from tsfmicro.toy import make_toy_pairs
from tsfmicro.training.fold import train_fold
from tsfmicro.training.stacked import train_stacked

MICRO = preset("micro", num_classes=3)
CPU = MachineConfig(device="cpu")


def test_range_follows_the_reference_rule_per_dataset():
    # CASME II and CAS(ME)3: int(0.15 * span / 4); SAMM: int(0.1 * span)
    assert jitter_range("casme2", 100, 180) == 3  # 0.15 * 80 / 4 = 3.0
    assert jitter_range("casme3", 0, 26) == 0  # 0.975
    assert jitter_range("casme3", 0, 27) == 1  # 1.0125
    assert jitter_range("mmew", 10, 90) == 3  # the CASME II rule
    assert jitter_range("samm", 5000, 5025) == 2
    assert jitter_range("samm", 10, 10) == 0
    assert candidate_pairs(10, 20, 1) == [(10, 20), (10, 19), (11, 20), (11, 19)]
    assert candidate_frames(10, 20, 1) == [10, 11, 19, 20]
    assert candidate_frames(10, 11, 0) == [10, 11]


def _frame(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, dtype=np.uint8)


def test_choice_is_the_largest_signed_difference():
    # onset 10 (grey 10), onset+1 (grey 100), apex-1 (grey 7), apex 13 (grey 5): in a signed
    # type |5 - 100| is the largest difference. Subtracting uint8 as the reference does wraps
    # 7 - 10 to 253 and would pick (10, 12).
    frames = {10: _frame(10), 11: _frame(100), 12: _frame(7), 13: _frame(5)}
    assert choose_pair(frames, 10, 13, 1) == (11, 13)
    wrapped = {
        pair: float(np.linalg.norm(frames[pair[1]] - frames[pair[0]]))
        for pair in candidate_pairs(10, 13, 1)
    }
    assert max(wrapped, key=wrapped.get) == (10, 12)
    # ties keep the annotated pair; a missing candidate frame is skipped
    assert choose_pair({n: _frame(50) for n in range(10, 14)}, 10, 13, 1) == (10, 13)
    assert choose_pair({10: _frame(0), 13: _frame(9), 12: _frame(200)}, 10, 13, 1) == (10, 12)


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    """A small CASME II copy with the candidate frames written (pair_frames)."""
    root = tmp_path_factory.mktemp("pairs") / "casme2"
    config = SynthConfig(
        dataset="casme2",
        subjects=3,
        clips_per_subject=4,
        frame_size=(96, 96),
        pair_frames=True,
        seed=5,
    )
    write_dataset(config, root, workers=1, progress=False)
    return root


def test_training_pairs_on_disk_are_chosen_cached_and_reread(copy, tmp_path, monkeypatch):
    table = load_dataset("casme2", copy)
    samples = table.samples
    ranges = [
        jitter_range("casme2", o, a) for o, a in zip(samples.onset, samples.apex, strict=True)
    ]
    assert max(ranges) >= 1  # some sample has candidates to choose from
    for k, r in enumerate(ranges):  # SynthConfig.pair_frames wrote every candidate frame
        onset, apex = int(samples.onset.iloc[k]), int(samples.apex.iloc[k])
        for n in candidate_frames(onset, apex, r):
            assert frame_path(samples.iloc[k], n).is_file(), (k, n)
    # Force a choice: one candidate apex becomes the negative of its onset.
    i = int(np.argmax(ranges))
    row = samples.iloc[i]
    forced = frame_path(row, int(row.apex) - 1)
    onset_image = cv2.imread(str(row.onset_path))
    cv2.imwrite(str(forced), 255 - onset_image)
    chosen = training_pairs(samples, cache_dir=tmp_path)
    assert list(chosen.columns) == [
        "train_onset",
        "train_apex",
        "train_onset_path",
        "train_apex_path",
    ]
    assert (chosen.train_onset >= samples.onset).all()
    assert (chosen.train_apex <= samples.apex).all()
    assert (chosen.train_onset - samples.onset <= ranges).all()
    assert chosen.train_apex.iloc[i] == row.apex - 1
    assert chosen.train_apex_path.iloc[i] == str(forced)
    expected = [
        choose_pair(
            _decoded(samples.iloc[k], r), int(samples.onset.iloc[k]), int(samples.apex.iloc[k]), r
        )
        for k, r in enumerate(ranges)
    ]
    assert list(zip(chosen.train_onset, chosen.train_apex, strict=True)) == expected

    def no_decoding(path):
        raise AssertionError(f"decoded {path} on a cache hit")

    monkeypatch.setattr(train_pairs_module, "load_frame", no_decoding)
    again = training_pairs(samples, cache_dir=tmp_path)
    assert again.equals(chosen)
    monkeypatch.undo()

    # a changed candidate file changes the key: chosen anew, here back to the annotated apex
    forced.unlink()
    third = training_pairs(samples, cache_dir=tmp_path)
    assert third.train_apex.iloc[i] != row.apex - 1 or ranges[i] > 1

    with pytest.raises(DataError, match="frames were not resolved"):
        training_pairs(samples.assign(clip_dir=""), cache_dir=tmp_path)


def _decoded(row, r: int) -> dict[int, np.ndarray]:
    from tsfmicro.fileio import load_frame

    numbers = {
        *range(int(row.onset), int(row.onset) + r + 1),
        *range(int(row.apex) - r, int(row.apex) + 1),
    }
    return {n: load_frame(frame_path(row, n))[0] for n in numbers if frame_path(row, n).is_file()}


def test_pairset_gets_the_training_crops_and_evaluation_keeps_annotated(copy, tmp_path):
    table = load_dataset("casme2", copy)
    samples = table.samples
    ranges = [
        jitter_range("casme2", o, a) for o, a in zip(samples.onset, samples.apex, strict=True)
    ]
    i = int(np.argmax(ranges))
    row = samples.iloc[i]
    cv2.imwrite(str(frame_path(row, int(row.onset) + 1)), 255 - cv2.imread(str(row.apex_path)))
    pairs = pairs_from_table(table, 32, cache_dir=tmp_path, progress=False)
    plain = pairs_from_table(table, 32, cache_dir=tmp_path, progress=False, train_pairs=False)
    assert pairs.train_onset is not None and plain.train_onset is None
    assert torch.equal(pairs.onset, plain.onset) and torch.equal(pairs.apex, plain.apex)
    differs = (pairs.train_onset != pairs.onset).flatten(1).any(1)
    assert bool(differs[i])  # the sample whose onset+1 was made the apex's negative
    # the unchanged samples' training crops equal their annotated crops, same face square
    chosen = training_pairs(samples, cache_dir=tmp_path)
    same = (
        ((chosen.train_onset == samples.onset) & (chosen.train_apex == samples.apex))
        .to_numpy()
        .copy()
    )
    assert torch.equal(pairs.train_onset[same], pairs.onset[same])
    assert torch.equal(pairs.train_apex[same], pairs.apex[same])


def test_pairset_checks_the_training_frames():
    toy = make_toy_pairs(subjects=2, per_subject=3, classes=3, size=16, seed=0)
    with pytest.raises(InputError, match="together"):
        dataclasses.replace(toy, train_onset=toy.onset)
    with pytest.raises(InputError, match="train_apex"):
        dataclasses.replace(toy, train_onset=toy.onset, train_apex=toy.apex[:, :, :8, :8])
    assert toy.training_frames()[0] is toy.onset


def test_training_uses_the_training_pair_and_batched_agrees():
    toy = make_toy_pairs(subjects=3, per_subject=6, classes=3, size=32, seed=2)
    swapped = dataclasses.replace(  # training frames that differ: each sample's frames rolled
        toy, train_onset=toy.onset.roll(3, dims=-1), train_apex=toy.apex.roll(3, dims=-1)
    )
    same = dataclasses.replace(toy, train_onset=toy.onset.clone(), train_apex=toy.apex.clone())
    cfg = TrainConfig(epochs=2, batch_size=6)
    subject = toy.subject_ids()[0]
    base = train_fold(toy, subject, MICRO, cfg, CPU)
    assert np.array_equal(train_fold(same, subject, MICRO, cfg, CPU).test_probs, base.test_probs)
    jittered = train_fold(swapped, subject, MICRO, cfg, CPU)
    assert np.abs(jittered.test_probs - base.test_probs).max() > 1e-4  # same frames: equal
    off = train_fold(swapped, subject, MICRO, dataclasses.replace(cfg, train_pairs=False), CPU)
    assert np.array_equal(off.test_probs, base.test_probs)
    # evaluation reads the annotated pair: training frames as the plain set's, annotated frames
    # rolled, gives the plain set's model and other held-out predictions
    evaluated = dataclasses.replace(
        swapped,
        onset=swapped.train_onset,
        apex=swapped.train_apex,
        train_onset=toy.onset,
        train_apex=toy.apex,
    )
    kept = train_fold(evaluated, subject, MICRO, cfg, CPU, keep_model=True)
    plain = train_fold(toy, subject, MICRO, cfg, CPU, keep_model=True)
    for name, value in plain.state_dict.items():
        assert torch.equal(kept.state_dict[name], value), name
    assert not np.array_equal(kept.test_probs, plain.test_probs)  # deterministic otherwise
    batched = train_stacked(swapped, toy.subject_ids(), MICRO, cfg, CPU)
    single = [train_fold(swapped, s, MICRO, cfg, CPU) for s in toy.subject_ids()]
    for one, many in zip(single, batched, strict=True):
        np.testing.assert_allclose(many.test_probs, one.test_probs, atol=2e-4, rtol=0)
