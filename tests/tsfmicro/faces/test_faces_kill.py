"""A preprocessing run killed with SIGKILL leaves nothing half-written, and a rerun finishes it.

The child process runs the real pipeline; the test only slows it down at one
chosen point (after a shard is committed, in the middle of writing a shard, or
while an entry is being committed) and says so by creating a marker file, so
the kill lands at that point every time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsfmicro.faces import FaceCropConfig, faces_dir, preprocess_faces

REPO = Path(__file__).resolve().parents[3]
CONFIG = FaceCropConfig(size=48, chunk_size=2, margin=0.1)

CHILD = """
import sys, time
from pathlib import Path
import numpy as np
import pandas as pd
from tsfmicro.faces import FaceCropConfig, preprocess_faces
from tsfmicro.faces import cache

table, cache_dir, marker, point = sys.argv[1:5]

def stop_here():
    Path(marker).touch()
    time.sleep(600)

if point == "after_shard":
    real_save = cache.save_shard
    saved = []
    def save_then_wait(*args, **kwargs):
        real_save(*args, **kwargs)
        saved.append(1)
        if len(saved) == 2:
            stop_here()
    cache.save_shard = save_then_wait
elif point == "mid_shard_write":
    real_savez = np.savez
    calls = []
    def savez_then_wait(handle, **arrays):
        calls.append(1)
        if len(calls) == 2:
            real_savez(handle, **{name: arrays[name] for name in ("keys", "frames")})
            handle.flush()
            stop_here()
        real_savez(handle, **arrays)
    np.savez = savez_then_wait
elif point == "mid_entry_commit":
    real_fsync_dir = cache._fsync_dir
    def fsync_then_wait(directory):
        real_fsync_dir(directory)
        if directory.name.startswith(".tmp~"):
            stop_here()
    cache._fsync_dir = fsync_then_wait

config = FaceCropConfig(size=48, chunk_size=2, margin=0.1)
preprocess_faces(pd.read_json(table), config, cache_dir, progress=False)
"""


@pytest.fixture
def faces_kill_table(faces_make_scene, faces_write, tmp_path) -> pd.DataFrame:
    """Eight samples with real faces (JPEG), apex shifted by a pixel."""
    rows = []
    for i in range(8):
        onset, _ = faces_make_scene(face=10 + i, side=110, x=60 + 8 * i, y=50, seed=i)
        apex = np.roll(onset, 1, axis=1)
        rows.append(
            {
                "key": f"sample{i}",
                "onset_path": faces_write(f"frames/{i}/onset.jpg", onset),
                "apex_path": faces_write(f"frames/{i}/apex.jpg", apex),
            }
        )
    return pd.DataFrame(rows)


def run_child_until(point: str, table: Path, cache_dir: Path, marker: Path) -> None:
    """Start the child, wait until it reaches `point`, then SIGKILL it."""
    script = table.parent / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, str(script), str(table), str(cache_dir), str(marker), point]
    child = subprocess.Popen(args, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not marker.exists():
        if child.poll() is not None:
            pytest.fail(
                f"child ended before {point} (rc={child.returncode}): {child.stderr.read()}"
            )
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"child never reached {point}")
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL


def visible_entries(root: Path) -> list[str]:
    """Names a reader would take for committed entries."""
    return [
        p.name
        for p in root.iterdir()
        if p.is_dir() and p.name not in ("shards",) and not p.name.startswith(".")
    ]


@pytest.mark.slow
@pytest.mark.parametrize("point", ["after_shard", "mid_shard_write", "mid_entry_commit"])
def test_killed_run_leaves_no_partial_entry_and_rerun_matches(faces_kill_table, tmp_path, point):
    table = tmp_path / "samples.json"
    faces_kill_table.to_json(table)
    killed_cache = tmp_path / "killed"
    run_child_until(point, table, killed_cache, tmp_path / "marker")

    root = faces_dir(killed_cache)
    assert visible_entries(root) == []
    shards = sorted((root / "shards").glob("*.npz"))
    for shard in shards:
        with np.load(shard, allow_pickle=False) as archive:
            assert archive["frames"].shape[1:] == (48, 48, 3)
            assert len(archive["keys"]) == 2
    temporaries = [
        p for p in [*root.iterdir(), *(root / "shards").iterdir()] if p.name.startswith(".tmp~")
    ]
    expected_shards = {"after_shard": 2, "mid_shard_write": 1, "mid_entry_commit": 4}[point]
    assert len(shards) == expected_shards
    assert len(temporaries) == (0 if point == "after_shard" else 1)

    resumed = preprocess_faces(faces_kill_table, CONFIG, killed_cache, progress=False)
    assert resumed.stats.chunks_total == 4
    assert resumed.stats.chunks_reused == expected_shards
    assert resumed.stats.images_detected == 8 - 2 * expected_shards
    assert visible_entries(root) == [resumed.path.name]
    assert not any(p.name.startswith(".tmp~") for p in root.iterdir())
    assert not any((root / "shards").iterdir())

    fresh = preprocess_faces(faces_kill_table, CONFIG, tmp_path / "fresh", progress=False)
    assert fresh.cache_key == resumed.cache_key
    for name in ("frames", "offsets", "boxes", "probs", "landmarks", "squares", "fallback"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(fresh, name), err_msg=name)
    assert resumed.keys == fresh.keys
