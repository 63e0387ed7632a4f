"""Dashboard speed: how long the leaderboard takes to load over a store of 1,000 trials.

Fills a fresh SQLite MLflow store with synthetic trial runs that carry what a real search
writes (tags, every ModelConfig/TrainConfig field as a parameter, final/val/oracle scores with
intervals and fold means, per-class recall and F1, `partial_*` curves by folds done; about
10% pruned and 2% failed) through MlflowClient.log_batch, with no training. Optionally adds
fold child runs per trial (real searches log one per subject) so that the trial filter has to
skip them. Then it times, each in a fresh process:

- the leaderboard's query and table, cold (first call: client, database, query) and warm (the
  same `st.cache_data` call again, inside its time-to-live);
- the whole Leaderboard page under streamlit.testing's AppTest, first run and rerun;
- with --server, the same through `mlflow server` over the same database.

Usage:
    python benchmarks/bench_dashboard.py [--trials 1000] [--fold-runs 0] [--folds 26]
        [--server] [--keep DIR]
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

from search.schema import (
    CI_HI,
    CI_LO,
    CURVE_METRICS,
    FOLD_SECONDS,
    FOLDS_DONE,
    FOLDS_RESTORED,
    KIND_FOLD,
    KIND_TRIAL,
    OBJECTIVE,
    PARENT_RUN_TAG,
    STATE_COMPLETE,
    STATE_FAILED,
    STATE_PRUNED,
    FoldParam,
    Tag,
    class_metric,
    experiment_name,
    fold_mean_metric,
    partial_metric,
    score_metric,
)
from tsfmicro.metrics import METRICS
from tsfmicro.vocab import EVAL_MODES, OPTIMISTIC_MODES

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("happiness", "repression", "disgust", "surprise", "others")

TIMING = r"""
import json, os, sys, time
t0 = time.perf_counter()
import warnings
warnings.filterwarnings("ignore", message=".*ScriptRunContext.*")
import logging
logging.getLogger("streamlit").setLevel(logging.ERROR)
from dashboards import data, tables
import mlflow  # imported by the first query otherwise; timed apart
t1 = time.perf_counter()
uri = sys.argv[1]
board = data.trials(uri)
rows = tables.display(tables.ranked(board, ["final"], "uf1"), tables.shown_params(board))
t2 = time.perf_counter()
again = data.trials(uri)
rows2 = tables.display(tables.ranked(again, ["final"], "uf1"), tables.shown_params(again))
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "cold_s": t2 - t1, "warm_s": t3 - t2,
                  "trials": len(board), "ranked": len(rows)}))
"""

PAGE = r"""
import json, os, sys, time
os.environ["TSFMICRO_TRACKING_URI"] = sys.argv[1]
import logging
logging.getLogger("streamlit").setLevel(logging.ERROR)
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[2], default_timeout=600)
t0 = time.perf_counter()
at.run()
t1 = time.perf_counter()
at.run()
t2 = time.perf_counter()
assert not at.exception, [e.message for e in at.exception]
print(json.dumps({"first_s": t1 - t0, "rerun_s": t2 - t1, "rows": len(at.dataframe[0].value)}))
"""


def fill(uri: str, trials: int, fold_runs: int, folds: int, seed: int = 0) -> float:
    """Log `trials` synthetic trial runs (and fold runs) into the store; returns seconds."""
    import numpy as np
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    from tsfmicro.config import ModelConfig, TrainConfig

    rng = np.random.default_rng(seed)
    client = MlflowClient(uri)
    exp_id = client.create_experiment(experiment_name("bench-casme2", "5class"))
    base = {**ModelConfig().to_dict(), **TrainConfig(epochs=12, batch_size=16).to_dict()}
    started = time.perf_counter()
    clock = int(time.time() * 1000) - trials * 60_000
    for i in range(trials):
        search = f"bench{i // 250}"
        sampled = {"temporal_depth": int(rng.integers(2, 9)),
                   "spatial_depth": int(rng.integers(1, 5)),
                   "fusion": str(rng.choice(["late", "early", "t2s", "s2t"])),
                   "lr": float(10 ** rng.uniform(-4, np.log10(3e-3)))}
        state = rng.choice([STATE_COMPLETE, STATE_PRUNED, STATE_FAILED], p=[0.88, 0.10, 0.02])
        tags = {Tag.KIND: KIND_TRIAL, Tag.SEARCH: search, Tag.TRIAL_ID: f"{i:08x}",
                Tag.DATASET: "bench-casme2", Tag.PROTOCOL: "5class",
                Tag.PRESET: "tiny", Tag.EVAL_MODE: "final", Tag.OBJECTIVE: "uf1",
                Tag.GIT_COMMIT: "0" * 40, Tag.STATE: str(state),
                Tag.SEARCHED: "temporal_depth,spatial_depth,fusion,lr",
                Tag.DRIVER_HOST: "bench", Tag.DRIVER_PID: "1"}
        if state != STATE_COMPLETE:
            tags[Tag.REASON] = "stopped after 3 of 26 folds (bench)"
        run = client.create_run(exp_id, start_time=clock + i * 60_000, tags=tags,
                                run_name=f"{search}-{i:08x}")
        run_id = run.info.run_id
        params = [Param(k, str(v)) for k, v in sorted({**base, **sampled}.items())]
        stamp = clock + i * 60_000 + 50_000
        metrics = []
        done = folds if state == STATE_COMPLETE else int(rng.integers(1, folds))
        for step in range(1, done + 1):  # partial curves by folds done
            for name in (OBJECTIVE, FOLDS_DONE, FOLDS_RESTORED,
                         *(score_metric(m, s) for m in EVAL_MODES for s in METRICS)):
                metrics.append(Metric(partial_metric(name), float(rng.random()), stamp, step))
        if state == STATE_COMPLETE:
            quality = rng.uniform(0.2, 0.7)
            for mode in EVAL_MODES:
                lift = 0.08 if mode in OPTIMISTIC_MODES else 0.0
                for m in METRICS:
                    v = float(np.clip(quality + lift + rng.normal(0, 0.03), 0, 1))
                    metrics += [Metric(score_metric(mode, m), v, stamp, 0),
                                Metric(score_metric(mode, m) + CI_LO, max(0.0, v - 0.1), stamp, 0),
                                Metric(score_metric(mode, m) + CI_HI, min(1.0, v + 0.1), stamp, 0),
                                Metric(fold_mean_metric(mode, m), v, stamp, 0)]
                for c in CLASSES:
                    metrics += [Metric(class_metric(mode, "recall", c), float(rng.random()),
                                       stamp, 0),
                                Metric(class_metric(mode, "f1", c), float(rng.random()), stamp, 0)]
            metrics += [Metric(OBJECTIVE, quality, stamp, 0),
                        Metric(FOLD_SECONDS, 600.0, stamp, 0)]
        for begin in range(0, len(metrics), 900):
            client.log_batch(run_id, metrics=metrics[begin:begin + 900],
                             params=params if begin == 0 else [])
        if state == STATE_COMPLETE:
            client.log_batch(run_id, tags=[RunTag(Tag.OPTIMISTIC_MODES,
                                                  ",".join(sorted(OPTIMISTIC_MODES)))])
        client.set_terminated(run_id, "FINISHED" if state != STATE_FAILED else "FAILED",
                              end_time=stamp)
        for f in range(fold_runs):
            child = client.create_run(exp_id, start_time=stamp, tags={
                **{k: v for k, v in tags.items() if k != Tag.SEARCHED},
                PARENT_RUN_TAG: run_id, Tag.KIND: KIND_FOLD, Tag.FOLD: f"sub{f:02d}",
                Tag.STATE: STATE_COMPLETE})
            client.log_batch(child.info.run_id, metrics=[
                Metric(n, float(rng.random()), stamp, e) for e in range(1, 13)
                for n in CURVE_METRICS],
                params=[Param(FoldParam.SUBJECT, f"sub{f:02d}"), Param(FoldParam.WORKER, "bench")])
            client.set_terminated(child.info.run_id, "FINISHED", end_time=stamp)
        if (i + 1) % 100 == 0:
            print(f"  logged {i + 1}/{trials} trials", file=sys.stderr, flush=True)
    return time.perf_counter() - started


def run_json(code: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(uri: str) -> dict:
    """Each figure from a fresh process; the query twice, since the store's first query after
    it opened (a server that just started, a database not in the page cache) costs more."""
    return {"query1": run_json(TIMING, uri),
            "query2": run_json(TIMING, uri),
            "page": run_json(PAGE, uri, str(ROOT / "dashboards" / "app.py"))}


def report(where: str, result: dict) -> None:
    q1, q2, p = result["query1"], result["query2"], result["page"]
    print(f"{where}: {q1['trials']} trial runs, {q1['ranked']} ranked (complete) in the "
          "final-mode leaderboard")
    print(f"  imports (Streamlit, pandas, MLflow), fresh process:      {q2['import_s']:6.2f} s")
    print(f"  query + table, cold, first query the store answers:      {q1['cold_s']:6.2f} s"
          + ("  (a server that has just started)" if where.startswith("mlflow server") else ""))
    print(f"  query + table, cold, fresh process (store already open): {q2['cold_s']:6.2f} s")
    print(f"  query + table, warm (st.cache_data hit):                 {q2['warm_s']:6.3f} s")
    print(f"  Leaderboard page (AppTest), first run incl. imports:     {p['first_s']:6.2f} s")
    print(f"  Leaderboard page (AppTest), rerun (cached):              {p['rerun_s']:6.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--fold-runs", type=int, default=0,
                        help="fold child runs per trial (a real search logs one per subject)")
    parser.add_argument("--folds", type=int, default=26, help="steps of the partial_* curves")
    parser.add_argument("--server", action="store_true", help="also time through mlflow server")
    parser.add_argument("--keep", type=Path, help="build the store in this folder and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tsfmicro-bench-dash-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        print(f"machine: {os.cpu_count()} cores; store {uri}")
        seconds = fill(uri, args.trials, args.fold_runs, args.folds)
        size = (folder / "mlflow.db").stat().st_size / 1e6
        print(f"filled {args.trials} trial runs (+{args.fold_runs} fold runs each) in "
              f"{seconds:.0f} s; database {size:.0f} MB")
        report("SQLite store", measure(uri))
        if args.server:
            from tests.services import mlflow_server

            server = folder / "server"
            server.mkdir(exist_ok=True)
            (server / "server.db").write_bytes((folder / "mlflow.db").read_bytes())
            with mlflow_server(server) as http:
                report(f"mlflow server ({http})", measure(http))
    return 0


if __name__ == "__main__":
    sys.exit(main())
