"""preprocess_faces end to end on small frame sets written to tmp_path."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys

import cv2
import numpy as np
import pandas as pd
import pytest

from tsfmicro.errors import DataError
from tsfmicro.faces import (
    FaceCropConfig,
    Square,
    centre_square,
    crop_square,
    default_cache_dir,
    faces_dir,
    preprocess_faces,
)
from tsfmicro.faces import pipeline as faces_pipeline

CONFIG = FaceCropConfig(size=64, chunk_size=2)
SHIFT = (3, 2)  # apex = onset moved 3 px right and 2 px down


def shifted(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The image moved right by dx and down by dy, the uncovered strip repeated from the edge."""
    moved = np.roll(image, (dy, dx), axis=(0, 1))
    moved[:dy] = moved[dy : dy + 1]
    moved[:, :dx] = moved[:, dx : dx + 1]
    return moved


@pytest.fixture
def faces_samples(faces_make_scene, faces_write):
    """Factory: n samples whose onset holds LFW face i and whose apex is the onset shifted."""

    def build(n: int = 3, ext: str = "png", prefix: str = "") -> pd.DataFrame:
        rows = []
        for i in range(n):
            onset, _ = faces_make_scene(face=i, side=120, x=100, y=60, seed=i)
            rows.append(
                {
                    "key": f"casme2/sub{i:02d}/EP0{i}",
                    "onset_path": faces_write(f"{prefix}s{i}/onset.{ext}", onset),
                    "apex_path": faces_write(f"{prefix}s{i}/apex.{ext}", shifted(onset, *SHIFT)),
                    "label": i % 3,
                }
            )
        return pd.DataFrame(rows)

    return build


def test_apex_is_cropped_with_the_onset_square_exactly(faces_samples, tmp_path):
    samples = faces_samples(n=3, ext="png")
    crops = preprocess_faces(samples, CONFIG, tmp_path / "cache", progress=False)
    assert crops.stacked().shape == (3, 2, 64, 64, 3)
    assert not crops.fallback.any()
    for i, onset_path in enumerate(samples["onset_path"]):
        onset = cv2.cvtColor(cv2.imread(onset_path), cv2.COLOR_BGR2RGB)
        x0, y0, side = (int(v) for v in crops.squares[i])
        expected_onset = crop_square(onset, Square(x0, y0, side), 64, "constant")
        # The apex is the onset moved by SHIFT, so cutting the apex at the onset's square
        # equals cutting the onset at the square moved back by SHIFT.
        expected_apex = crop_square(
            onset, Square(x0 - SHIFT[0], y0 - SHIFT[1], side), 64, "constant"
        )
        np.testing.assert_array_equal(crops.sample(i)[0], expected_onset)
        np.testing.assert_array_equal(crops.sample(i)[1], expected_apex)
        assert not np.array_equal(crops.sample(i)[0], crops.sample(i)[1])


def test_shift_survives_jpeg_and_resizing(faces_samples, tmp_path):
    crops = preprocess_faces(faces_samples(n=2, ext="jpg"), CONFIG, tmp_path / "c", progress=False)
    window = cv2.createHanningWindow((64, 64), cv2.CV_32F)
    for i in range(len(crops)):
        onset, apex = (
            cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in crops.sample(i)
        )
        (dx, dy), _ = cv2.phaseCorrelate(onset, apex, window)
        scale = 64 / crops.squares[i, 2]
        assert dx == pytest.approx(SHIFT[0] * scale, abs=0.3)
        assert dy == pytest.approx(SHIFT[1] * scale, abs=0.3)


def test_grayscale_jpeg_frames_are_detected_and_come_out_rgb(
    faces_make_scene, faces_write, tmp_path
):
    scene, _ = faces_make_scene(face=5, side=130, x=90, y=50)
    gray = cv2.cvtColor(scene, cv2.COLOR_RGB2GRAY)
    path = faces_write("gray/onset.jpg", gray)
    samples = pd.DataFrame([{"key": "gray", "onset_path": path, "apex_path": path}])
    crops = preprocess_faces(samples, CONFIG, tmp_path / "cache", progress=False)
    assert not crops.fallback[0] and crops.probs[0] > 0.9
    assert crops.frames.shape == (2, 64, 64, 3)
    assert (crops.frames[..., 0] == crops.frames[..., 1]).all()
    assert (crops.frames[..., 1] == crops.frames[..., 2]).all()


def test_frame_without_a_face_uses_the_centre_crop_and_is_reported(
    faces_samples, faces_write, faces_background, tmp_path, caplog
):
    samples = faces_samples(n=2)
    empty = faces_write("empty.png", faces_background(240, 320, seed=11))
    samples.loc[len(samples)] = {"key": "noface", "onset_path": empty, "apex_path": empty}
    with caplog.at_level(logging.WARNING, logger="tsfmicro.faces"):
        crops = preprocess_faces(samples, CONFIG, tmp_path / "cache", progress=False)
    assert crops.fallback_keys == ["noface"]
    assert crops.fallback.tolist() == [False, False, True]
    assert tuple(crops.squares[2]) == centre_square(240, 320)
    assert np.isnan(crops.boxes[2]).all() and np.isnan(crops.landmarks[2]).all()
    image = cv2.cvtColor(cv2.imread(empty), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(
        crops.sample(2)[0], crop_square(image, centre_square(240, 320), 64, "constant")
    )
    assert "noface" in caplog.text


def test_fallback_error_policy_raises_naming_the_sample(
    faces_samples, faces_write, faces_background, tmp_path
):
    samples = faces_samples(n=1)
    empty = faces_write("empty.png", faces_background(240, 320, seed=11))
    samples.loc[len(samples)] = {"key": "noface", "onset_path": empty, "apex_path": empty}
    config = dataclasses.replace(CONFIG, fallback="error")
    with pytest.raises(DataError, match="noface"):
        preprocess_faces(samples, config, tmp_path / "cache", progress=False)


def test_corrupt_frame_raises_naming_it_and_commits_nothing(faces_samples, tmp_path):
    samples = faces_samples(n=3)
    with open(samples.loc[2, "apex_path"], "wb") as handle:
        handle.write(b"\xff\xd8\xff\xe0 definitely not the rest of a jpeg")
    with pytest.raises(DataError, match="s2/apex.png"):
        preprocess_faces(samples, CONFIG, tmp_path / "cache", progress=False)
    root = faces_dir(tmp_path / "cache")
    assert [p.name for p in root.iterdir() if p.name != "shards"] == []
    assert len(list((root / "shards").glob("*.npz"))) == 1  # the first, healthy chunk


def test_second_run_hits_the_cache_without_decoding_or_detecting(
    faces_samples, tmp_path, monkeypatch
):
    samples = faces_samples(n=3)
    first = preprocess_faces(samples, CONFIG, tmp_path / "cache", progress=False)
    assert first.stats.images_detected == 3 and first.stats.frames_decoded == 6

    def forbidden(*args, **kwargs):
        raise AssertionError("the cache hit decoded or detected")

    monkeypatch.setattr(faces_pipeline, "read_frame", forbidden)
    monkeypatch.setattr(faces_pipeline, "detect_faces", forbidden)
    again = preprocess_faces(samples, CONFIG, tmp_path / "cache", progress=False)
    assert again.stats.from_cache and again.path == first.path
    assert isinstance(again.frames, np.memmap) and not again.frames.flags.writeable
    np.testing.assert_array_equal(again.frames, first.frames)
    np.testing.assert_array_equal(again.boxes, first.boxes)
    # Execution-only fields do not change the crops, so they reuse the entry too.
    faster = dataclasses.replace(CONFIG, workers=1, batch_size=1, chunk_size=5)
    assert preprocess_faces(samples, faster, tmp_path / "cache", progress=False).stats.from_cache


def counting_detector(monkeypatch) -> list[int]:
    """Wrap pipeline.detect_faces so the test can count detected images."""
    calls: list[int] = []
    real = faces_pipeline.detect_faces

    def counted(images, config):
        calls.append(len(images))
        return real(images, config)

    monkeypatch.setattr(faces_pipeline, "detect_faces", counted)
    return calls


def test_changed_parameter_or_file_misses_the_cache(faces_samples, tmp_path, monkeypatch):
    calls = counting_detector(monkeypatch)
    samples = faces_samples(n=3)
    cache_dir = tmp_path / "cache"
    base = preprocess_faces(samples, CONFIG, cache_dir, progress=False)
    assert sum(calls) == 3

    wider = preprocess_faces(
        samples, dataclasses.replace(CONFIG, margin=0.4), cache_dir, progress=False
    )
    assert sum(calls) == 6 and wider.cache_key != base.cache_key
    assert (wider.squares[:, 2] > base.squares[:, 2]).all()

    apex = samples.loc[1, "apex_path"]
    stat = os.stat(apex)
    cv2.imwrite(apex, np.zeros((240, 320, 3), np.uint8))
    os.utime(apex, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    changed = preprocess_faces(samples, CONFIG, cache_dir, progress=False)
    assert not changed.stats.from_cache and changed.cache_key != base.cache_key
    assert (changed.sample(1)[1] == 0).all()
    np.testing.assert_array_equal(changed.sample(1)[0], base.sample(1)[0])


def test_content_fingerprint_sees_a_rewrite_that_keeps_size_and_mtime(faces_samples, tmp_path):
    samples = faces_samples(n=1, ext="bmp")  # uncompressed: new pixels, same file size
    apex = samples.loc[0, "apex_path"]
    by_stat = FaceCropConfig(size=32, fingerprint="stat")
    by_content = dataclasses.replace(by_stat, fingerprint="content")
    preprocess_faces(samples, by_stat, tmp_path / "cache", progress=False)
    preprocess_faces(samples, by_content, tmp_path / "cache", progress=False)

    stat = os.stat(apex)
    image = cv2.imread(apex)
    cv2.imwrite(apex, 255 - image)
    os.utime(apex, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(apex).st_size == stat.st_size

    assert preprocess_faces(samples, by_stat, tmp_path / "cache", progress=False).stats.from_cache
    redone = preprocess_faces(samples, by_content, tmp_path / "cache", progress=False)
    assert not redone.stats.from_cache


def test_clip_mode_crops_every_listed_frame_with_the_onset_square(faces_samples, tmp_path):
    samples = faces_samples(n=2)
    onsets, apexes = samples["onset_path"].tolist(), samples["apex_path"].tolist()
    samples["frame_paths"] = [[onsets[0], apexes[0], onsets[0]], [onsets[1]] * 4 + [apexes[1]]]
    clip = dataclasses.replace(CONFIG, frames="clip")
    crops = preprocess_faces(samples, clip, tmp_path / "cache", progress=False)
    assert crops.offsets.tolist() == [0, 3, 8]
    assert crops.stats.frames_decoded == 4  # each distinct file once per sample
    with pytest.raises(DataError, match="between 3 and 5 frames"):
        crops.stacked()
    pair = preprocess_faces(samples, CONFIG, tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(crops.sample(0), pair.sample(0)[[0, 1, 0]])
    np.testing.assert_array_equal(crops.sample(1)[4], pair.sample(1)[1])

    fixed = dataclasses.replace(clip, clip_length=4)
    even = preprocess_faces(samples, fixed, tmp_path / "cache", progress=False)
    assert even.stacked().shape == (2, 4, 64, 64, 3)
    np.testing.assert_array_equal(even.stacked()[1, 3], pair.sample(1)[1])


def test_entry_records_order_boxes_landmarks_and_metadata(faces_samples, tmp_path):
    samples = faces_samples(n=3).iloc[::-1].reset_index(drop=True)
    crops = preprocess_faces(samples, CONFIG, tmp_path / "cache", progress=False)
    assert list(crops.keys) == samples["key"].tolist()
    assert crops.boxes.dtype == np.float32 and crops.boxes.shape == (3, 4)
    assert crops.landmarks.shape == (3, 5, 2) and crops.probs.shape == (3,)
    assert crops.frame_shapes.tolist() == [[240, 320]] * 3
    inside = crops.landmarks_in_crop()
    assert ((inside >= 0) & (inside < 64)).all()
    meta = json.loads((crops.path / "meta.json").read_text())
    assert meta["keys"] == list(crops.keys)
    assert meta["frame_paths"][0] == [samples.loc[0, "onset_path"], samples.loc[0, "apex_path"]]
    assert meta["config"]["size"] == 64 and meta["format"] == 1
    assert not (crops.path.parent / "shards").exists() or not any(
        (crops.path.parent / "shards").iterdir()
    )


def test_bad_tables_are_rejected_with_the_reason(faces_samples, tmp_path):
    samples = faces_samples(n=2)
    with pytest.raises(DataError, match="apex_path"):
        preprocess_faces(samples.drop(columns="apex_path"), CONFIG, tmp_path, progress=False)
    with pytest.raises(DataError, match="unique"):
        preprocess_faces(pd.concat([samples, samples]), CONFIG, tmp_path, progress=False)
    gone = samples.copy()
    gone.loc[1, "apex_path"] = str(tmp_path / "nowhere.png")
    with pytest.raises(DataError, match="nowhere.png"):
        preprocess_faces(gone, CONFIG, tmp_path, progress=False)


def test_frame_of_another_size_than_its_onset_is_rejected(faces_samples, faces_write, tmp_path):
    samples = faces_samples(n=1)
    samples.loc[0, "apex_path"] = faces_write("small/apex.png", np.zeros((120, 160, 3), np.uint8))
    with pytest.raises(DataError, match="small/apex.png is 160x120 but its onset frame is 320x240"):
        preprocess_faces(samples, CONFIG, tmp_path / "cache", progress=False)


def test_stale_temporaries_of_dead_processes_are_removed(faces_samples, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    root = faces_dir(tmp_path / "cache")
    (root / "shards").mkdir(parents=True)
    host = os.uname().nodename
    leftover_dir = root / f".tmp~{host}~{dead.pid}~abcd1234~0123"
    leftover_dir.mkdir()
    (leftover_dir / "frames.npy").write_bytes(b"half")
    leftover_file = root / "shards" / f".tmp~{host}~{dead.pid}~abcd1234~x.npz"
    leftover_file.write_bytes(b"half")
    alive = root / f".tmp~{host}~{os.getpid()}~abcd1234~busy"
    alive.mkdir()

    crops = preprocess_faces(faces_samples(n=1), CONFIG, tmp_path / "cache", progress=False)
    assert len(crops) == 1
    assert not leftover_dir.exists() and not leftover_file.exists()
    assert alive.exists()  # a live process may still be writing it


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TSFMICRO_CACHE", str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("TSFMICRO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "tsfmicro"


def test_two_concurrent_runs_agree_on_one_entry(faces_samples, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    samples = faces_samples(n=4)
    with ThreadPoolExecutor(2) as pool:
        runs = [
            pool.submit(preprocess_faces, samples, CONFIG, tmp_path / "cache", progress=False)
            for _ in range(2)
        ]
        first, second = (run.result() for run in runs)
    assert first.path == second.path
    np.testing.assert_array_equal(first.frames, second.frames)
    root = faces_dir(tmp_path / "cache")
    assert [p.name for p in root.iterdir() if p.name != "shards"] == [first.path.name]
