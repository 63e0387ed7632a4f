"""Search overhead: what a search costs beyond training its folds.

Runs one search through the CLI (local Ray, a fresh SQLite MLflow store in a temporary
folder) and prints, from its own measurements:

- wall time of the whole search (data, Ray start, trials, MLflow logging, refit, registry);
- the sum of the fold training times (each fold's own clock inside its task);
- overhead per trial = (wall - sum of fold times) / trials, the definition of the issue;
- since folds run in parallel slots, also overhead per trial against ideal packing:
  (wall - sum of fold times / slots) / trials.

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
        command = [sys.executable, "-m", "tsfmicro.cli", "search", "--name", "bench",
                   "--dataset", args.dataset, "--preset", args.preset,
                   "--trials", str(args.trials), "--set", f"epochs={args.epochs}",
                   "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}",
                   "--storage-path", str(folder / "runs"), "--json", str(folder / "o.json"),
                   "--quiet"] + (["--no-register"] if args.no_register else [])
        started = time.perf_counter()
        proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        process_seconds = time.perf_counter() - started
        if proc.returncode != 0:
            print(proc.stderr[-4000:], file=sys.stderr)
            return proc.returncode
        outcome = json.loads((folder / "o.json").read_text())
        slots = _slots(proc.stderr)

    trials = len(outcome["trials"])
    wall, folds = outcome["seconds"], outcome["fold_seconds"]
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "search": {"dataset": args.dataset, "preset": args.preset, "trials": trials,
                   "epochs": args.epochs, "register": not args.no_register},
        "process_seconds": round(process_seconds, 1),
        "wall_seconds": round(wall, 1),
        "fold_seconds_sum": round(folds, 1),
        "fold_slots": slots,
        "overhead_per_trial_seconds": round((wall - folds) / trials, 1),
        "overhead_per_trial_vs_ideal_packing_seconds": round((wall - folds / slots) / trials, 1),
        "fold_share_of_wall": round(folds / slots / wall, 3),
    }
    for key, value in report.items():
        print(f"{key:>45}: {value}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def _slots(log: str) -> int:
    """Folds running at once, from the search's own 'N trial(s) at once, M fold(s)' line."""
    for line in log.splitlines():
        if "trial(s) at once" in line:
            words = line.replace(",", "").split()
            trials = int(words[words.index("trial(s)") - 1])
            folds = int(words[words.index("fold(s)") - 1])
            return trials * folds
    return 1


if __name__ == "__main__":
    sys.exit(main())
