"""Search overhead: what a search costs beyond training its folds.

Runs one search through the CLI (local Ray, a fresh SQLite MLflow store in a temporary folder)
and prints, from its own measurements:

- the whole process's wall time (Python start, imports, data, Ray start and stop, trials,
  MLflow logging, refit, registry), timed from outside, beside the search's own wall time
  (what `run_search` measures, from loading the data to the end);
- the sum of the fold training times (each fold's own clock inside its task);
- the fold slots: how many folds the search planned to train at once (its `plan`: trials at
  once x fold tasks per trial x folds at once per task) and how many it really had at once,
  from the folds' own training intervals (each fold's MLflow run spans exactly its training):
  the peak, and the mean over the span from the first fold's start to the last fold's end;
- overhead per trial against the folds as they really ran: (search wall - fold span) / trials,
  and against ideal packing on the planned slots: (search wall - fold sum / slots) / trials.

Usage (defaults: the toy task, tiny preset, 4 trials of 2 epochs):
    python benchmarks/bench_search_overhead.py [--trials 4] [--epochs 2] [--dataset toy]
        [--no-register] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from search.schema import KIND_FOLD, Tag, run_filter


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dataset", default="toy")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--no-register", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    env = dict(os.environ, RAY_AUTH_MODE="disabled", OMP_WAIT_POLICY="PASSIVE")
    with tempfile.TemporaryDirectory(prefix="tsfmicro-bench-") as tmp:
        folder = Path(tmp)
        tracking = f"sqlite:///{folder / 'mlflow.db'}"
        command = [sys.executable, "-m", "tsfmicro.cli", "search", "--name", "bench",
                   "--dataset", args.dataset, "--preset", args.preset,
                   "--trials", str(args.trials), "--set", f"epochs={args.epochs}",
                   "--tracking-uri", tracking,
                   "--storage-path", str(folder / "runs"), "--json", str(folder / "o.json"),
                   "--quiet"] + (["--no-register"] if args.no_register else [])
        started = time.perf_counter()
        proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        process_seconds = time.perf_counter() - started
        if proc.returncode != 0:
            print(proc.stderr[-4000:], file=sys.stderr)
            return proc.returncode
        outcome = json.loads((folder / "o.json").read_text())
        intervals = fold_intervals(tracking, "bench")

    trials = len(outcome["trials"])
    wall, folds = outcome["seconds"], outcome["fold_seconds"]
    plan = outcome.get("plan") or {}
    planned = int(plan.get("fold_slots", 0)) or None
    peak, mean, span = concurrency(intervals)
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "search": {"dataset": args.dataset, "preset": args.preset, "trials": trials,
                   "epochs": args.epochs, "register": not args.no_register},
        "process_seconds": round(process_seconds, 1),
        "search_wall_seconds": round(wall, 1),
        "outside_the_search_seconds": round(process_seconds - wall, 1),
        "fold_seconds_sum": round(folds, 1),
        "folds": len(intervals),
        "fold_span_seconds": round(span, 1),
        "planned_fold_slots": planned,
        "plan": plan,
        "fold_slots_peak": peak,
        "fold_slots_mean": round(mean, 2),
        "overhead_per_trial_seconds": round((wall - span) / trials, 1),
        "overhead_per_trial_vs_ideal_packing_seconds": (
            round((wall - folds / planned) / trials, 1) if planned else None
        ),
        "fold_share_of_search_wall": round(folds / max(peak, 1) / wall, 3),
    }
    for key, value in report.items():
        print(f"{key:>45}: {value}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def fold_intervals(tracking_uri: str, search: str) -> list[tuple[float, float]]:
    """(start, end) in seconds of every fold of the search: its MLflow fold run's times, which
    the search sets to the fold's own training interval."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        experiments, filter_string=run_filter({Tag.SEARCH: search, Tag.KIND: KIND_FOLD}),
        max_results=10000,
    )
    return sorted((r.info.start_time / 1000, r.info.end_time / 1000) for r in runs
                  if r.info.end_time)


def concurrency(intervals: list[tuple[float, float]]) -> tuple[int, float, float]:
    """(most folds training at the same moment, mean folds training over the span from the
    first start to the last end, that span in seconds)."""
    if not intervals:
        return 0, 0.0, 0.0
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
                    key=lambda t: (t[0], t[1]))  # an end before a start at the same instant
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    span = max(e for _, e in intervals) - min(s for s, _ in intervals)
    busy = sum(e - s for s, e in intervals)
    return peak, busy / span if span > 0 else float(peak), span


if __name__ == "__main__":
    sys.exit(main())
