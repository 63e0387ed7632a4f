"""benchmarks/bench_loso.py runs end to end (on its small check set) and its JSON adds up:
every path a full LOSO, the ratios those of the wall times, the paths' predictions alike.

The figures themselves are measured by running the benchmark (docs/speed.md), not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks" / "bench_loso.py"


def _run(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "loso.json"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--preset", "micro", "--small", "3", "--json", str(out),
         *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_every_path_is_a_full_loso_and_the_ratios_are_the_wall_times(tmp_path: Path) -> None:
    report = _run(tmp_path, "--epochs", "2", "--backend", "processes", "--paths", "a,b,c")
    s = report["set"]
    assert (s["subjects"], s["samples"], s["classes"]) == (3, 12, 5)
    assert report["set_source"].startswith("small check set")
    # Some samples train on a pair other than the annotated one, and the benchmark says so.
    assert 0 < s["training_pair_moved"] <= 12
    assert s["candidate_pairs_per_sample"] > 1
    keys = ("a_baseline", "b_cached", "c_spread", "c_batched", "c_streams")
    steps = {report[k]["sample_steps"] for k in keys}
    # One full LOSO: each of the 3 folds trains 2 epochs on the 8 samples of the others.
    assert steps == {3 * 8 * 2}
    for k in keys:
        r = report[k]
        assert r["folds"] == 3 and not r.get("extrapolated")
        assert r["samples_per_second"] > 0
    a = report["a_baseline"]["seconds"]
    assert report["a_over_b"] == pytest.approx(a / report["b_cached"]["seconds"], abs=0.01)
    fastest = min(("c_spread", "c_batched", "c_streams"), key=lambda k: report[k]["seconds"])
    assert report["c_fastest"] == fastest
    assert report["a_over_c"] == pytest.approx(a / report[fastest]["seconds"], abs=0.01)
    # A fold's seed depends only on the run seed and its subject: every path of ours predicts
    # the same (fold-batched to float rounding, which leaves these argmaxes alone).
    accs = {report[k]["final_acc"] for k in ("b_cached", "c_spread", "c_batched", "c_streams")}
    assert len(accs) == 1
    assert report["c_spread"]["backend"] == "processes"
    assert report["c_streams"]["group"] == "streams"
    assert set(report["search_default_path"]) == {"cpu", "gpu"}
    assert report["search_default_path"]["cpu"].startswith("c_spread")


@pytest.mark.slow
def test_sampled_folds_are_extrapolated_and_marked(tmp_path: Path) -> None:
    report = _run(tmp_path, "--epochs", "2", "--paths", "a,b", "--sample-folds", "2",
                  "--baseline-epochs", "1")
    full = 3 * 8 * 2
    a, b = report["a_baseline"], report["b_cached"]
    assert a["extrapolated"] and b["extrapolated"]
    assert (a["folds"], b["folds"]) == (2, 2)
    assert a["measured_sample_steps"] == 2 * 8 * 1  # 2 folds x 1 epoch
    assert b["measured_sample_steps"] == 2 * 8 * 2
    assert a["sample_steps"] == b["sample_steps"] == full
    # Both figures are rounded to 0.1 s.
    factor = full / (2 * 8)
    assert a["seconds"] == pytest.approx(a["measured_seconds"] * factor, abs=0.05 * factor + 0.06)
