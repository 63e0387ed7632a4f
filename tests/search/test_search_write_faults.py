"""The search's own files on a full disk: a trial's checkpoint and its fold store keep every
file whole (the earlier folds stay readable), and the failure is one line naming the file."""

from __future__ import annotations

import pytest
from full_disk import fill_disk, leftovers

from search.trial import (
    FOLDS_JSON,
    FOLDS_NPZ,
    load_folds,
    load_stored_folds,
    save_folds,
    store_fold,
)
from tsfmicro.config import MachineConfig, TrainConfig, preset
from tsfmicro.errors import InputError
from tsfmicro.toy import make_toy_pairs
from tsfmicro.training.loso import run_loso
from tsfmicro.training.runners import Runner


@pytest.fixture(scope="module")
def folds():
    data = make_toy_pairs(subjects=3, per_subject=3, classes=3, size=32)
    on_cpu = Runner(machine=MachineConfig(device="cpu"))
    return run_loso(data, preset("micro", num_classes=3), TrainConfig(epochs=1), on_cpu).folds


def test_a_full_disk_in_the_fold_store_keeps_the_earlier_folds(folds, tmp_path, monkeypatch):
    store = tmp_path / "folds" / "trial_1"
    store_fold(store, 0, folds[0])
    kept = (store / "0000.npz").read_bytes()
    fill_disk(monkeypatch, store, room=300)
    with pytest.raises(InputError) as caught:
        store_fold(store, 1, folds[1])
    message = str(caught.value)
    assert message.startswith(f"cannot write {store / '0001.npz'}: No space left on device")
    assert "\n" not in message
    assert sorted(p.name for p in store.iterdir()) == ["0000.npz"] and leftovers(tmp_path) == []
    assert (store / "0000.npz").read_bytes() == kept
    subjects = tuple(f.subject for f in folds)
    assert set(load_stored_folds(store, subjects)) == {subjects[0]}  # the rest trains again


def test_a_full_disk_while_checkpointing_leaves_no_half_checkpoint(folds, tmp_path, monkeypatch):
    save_folds({f.subject: f for f in folds[:1]}, tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in (FOLDS_NPZ, FOLDS_JSON)}
    fill_disk(monkeypatch, tmp_path, room=200)
    with pytest.raises(InputError, match=f"cannot write {tmp_path / FOLDS_NPZ}: No space left"):
        save_folds({f.subject: f for f in folds}, tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert leftovers(tmp_path) == []
    monkeypatch.undo()
    assert set(load_folds(tmp_path)) == {folds[0].subject}


def test_a_full_disk_while_saving_a_search_s_settings_keeps_the_old_file(tmp_path, monkeypatch):
    from search.config import SearchConfig
    from search.run import SETTINGS_FILE, load_settings, save_settings

    cfg = SearchConfig(name="s1", storage_path=str(tmp_path), trials=3)
    save_settings(cfg)
    path = tmp_path / "s1" / SETTINGS_FILE
    before = path.read_bytes()
    fill_disk(monkeypatch, tmp_path, room=20)
    with pytest.raises(InputError) as caught:
        save_settings(cfg.replace(trials=9))
    assert str(caught.value).startswith(f"cannot write {path}: No space left on device")
    assert "\n" not in str(caught.value)
    assert path.read_bytes() == before and leftovers(tmp_path) == []
    monkeypatch.undo()
    assert load_settings("s1", str(tmp_path)).trials == 3
