"""Face preprocessing under bad input and a full disk: a frame too small for the detector is
refused naming the file (before MTCNN runs); the cache keeps every entry and shard whole, and a
full disk is one line naming the file."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from full_disk import fill_disk, leftovers

from tsfmicro.errors import DataError, InputError
from tsfmicro.faces import FaceCropConfig, detect_faces, faces_dir, preprocess_faces
from tsfmicro.faces.detect import frame_size_problem

CONFIG = FaceCropConfig(size=32, chunk_size=1)


def samples(faces_write, sizes: list[tuple[int, int]], prefix: str = "") -> pd.DataFrame:
    """One sample per (H, W): a flat grey onset and apex of that size."""
    rows = []
    for i, (h, w) in enumerate(sizes):
        image = np.full((h, w, 3), 120, np.uint8)
        rows.append(
            {
                "key": f"{prefix}s{i}",
                "onset_path": faces_write(f"{prefix}s{i}/onset.png", image),
                "apex_path": faces_write(f"{prefix}s{i}/apex.png", image),
            }
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("shape", "max_side", "small"),
    [
        ((1, 1), None, True),
        ((19, 400), None, True),
        ((20, 20), None, False),
        ((12, 16), None, True),  # the old fake-frame size of the tests
        ((30, 100), 48, True),  # 14 px high once shrunk for detection
        ((48, 60), 48, False),
    ],
)
def test_frame_size_problem_matches_what_the_detector_can_search(shape, max_side, small):
    config = dataclasses.replace(CONFIG, detect_max_side=max_side)
    problem = frame_size_problem(shape, config)
    assert (problem is not None) == small
    if small:
        assert f"{shape[1]}x{shape[0]} pixels" in problem and "min_face_size" in problem


def test_detect_faces_refuses_a_tiny_image_instead_of_crashing():
    with pytest.raises(InputError, match="image 1 of 2 is 1x1 pixels"):
        detect_faces([np.zeros((40, 40, 3), np.uint8), np.zeros((1, 1, 3), np.uint8)], CONFIG)


def test_preprocess_refuses_a_tiny_onset_naming_the_file(faces_write, tmp_path):
    table = samples(faces_write, [(1, 1)])
    with pytest.raises(DataError) as caught:
        preprocess_faces(table, CONFIG, tmp_path / "cache", progress=False)
    message = str(caught.value)
    assert message.startswith(f"frame {table['onset_path'][0]} is 1x1 pixels")
    assert "\n" not in message
    assert not list(faces_dir(tmp_path / "cache").glob("*/frames.npy"))  # no entry


def test_a_full_disk_while_caching_is_one_line_and_keeps_what_was_whole(
    faces_write, tmp_path, monkeypatch
):
    """An earlier entry stays readable; the new entry's shard write fails on a full disk with
    one InputError naming the shard; no temporary or half-written file is left."""
    cache = tmp_path / "cache"
    first = samples(faces_write, [(40, 40)])
    kept = preprocess_faces(first, CONFIG, cache, progress=False)
    before = {p: p.read_bytes() for p in faces_dir(cache).rglob("*") if p.is_file()}
    second = samples(faces_write, [(40, 40), (44, 44)], prefix="new")
    room = fill_disk(monkeypatch, faces_dir(cache), room=200)
    with pytest.raises(InputError) as caught:
        preprocess_faces(second, CONFIG, cache, progress=False)
    message = str(caught.value)
    assert room.refused >= 1
    assert message.startswith(f"cannot write {faces_dir(cache) / 'shards'}/")
    assert "No space left on device" in message and "\n" not in message
    assert leftovers(cache) == []
    assert {p: p.read_bytes() for p in faces_dir(cache).rglob("*") if p.is_file()} == before
    monkeypatch.undo()
    again = preprocess_faces(first, CONFIG, cache, progress=False)
    assert again.stats.from_cache and np.array_equal(again.frames, kept.frames)


def test_a_full_disk_while_committing_an_entry_leaves_no_half_entry(
    faces_write, tmp_path, monkeypatch
):
    """The shards are written; assembling the entry fails on a full disk (its index): no entry
    appears, the shards stay for the next run, which then commits the entry."""
    cache = tmp_path / "cache"
    table = samples(faces_write, [(40, 40), (44, 44)])
    from tsfmicro.faces import cache as faces_cache

    real_savez = np.savez

    def savez(file, *args, **kwargs):
        if str(file).endswith("index.npz"):
            fill_disk(monkeypatch, faces_dir(cache), room=10)
        return real_savez(file, *args, **kwargs)

    monkeypatch.setattr(faces_cache.np, "savez", savez)
    with pytest.raises(InputError, match="No space left on device") as caught:
        preprocess_faces(table, CONFIG, cache, progress=False)
    assert "\n" not in str(caught.value)
    assert not [p for p in faces_dir(cache).iterdir() if (p / "meta.json").exists()]
    assert leftovers(cache) == []
    assert len(list((faces_dir(cache) / "shards").glob("*.npz"))) == 2  # the work is kept
    monkeypatch.undo()
    crops = preprocess_faces(table, CONFIG, cache, progress=False)
    assert crops.stats.chunks_reused == 2 and len(crops) == 2
