"""Nested LOSO (search.nested): the outer plan, bad input refused before any work, and real
nested searches on a local Ray (the MLflow tree, the estimate, a killed driver resumed without
redoing a finished outer fold) and on a loopback two-node cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from search.config import DataSpec, SearchConfig, outer_fold_problem
from search.nested import (
    choice_counts,
    flat_yaml,
    inner_config,
    load_outer,
    outer_groups,
    save_outer,
)
from tsfmicro.cli import build_parser, main
from tsfmicro.errors import ConfigError
from tsfmicro.toy import make_toy_pairs

from services import service_env

TOY = ("--dataset", "toy", "--toy-subjects", "4", "--toy-per-subject", "4", "--preset", "micro")
EXPERIMENT = "tsfmicro/toy/3class"


# ---- no Ray ---------------------------------------------------------------------------------


def test_outer_groups_are_a_seeded_partition():
    subjects = [f"s{i:02d}" for i in range(7)]
    assert outer_groups(subjects, None, 0) == [[s] for s in subjects]  # a true nested LOSO
    assert outer_groups(subjects, 7, 5) == [[s] for s in subjects]
    groups = outer_groups(list(reversed(subjects)), 3, seed=4)
    assert sorted(s for g in groups for s in g) == subjects  # every subject once
    assert sorted(len(g) for g in groups) == [2, 2, 3]
    assert all(g == sorted(g) for g in groups)
    assert outer_groups(subjects, 3, seed=4) == groups  # deterministic, order-free
    assert any(outer_groups(subjects, 3, seed=s) != groups for s in range(1, 6))


def test_bad_nested_settings_are_refused_by_name():
    toy4 = DataSpec(dataset="toy", toy_subjects=4)
    with pytest.raises(ConfigError, match="outer_folds: is for a nested search only"):
        SearchConfig(name="x", outer_folds=2)
    with pytest.raises(ConfigError, match="outer_folds: must be at least 2"):
        SearchConfig(name="x", nested=True, outer_folds=1)
    with pytest.raises(ConfigError, match="5 is more than the 4 subjects"):
        SearchConfig(name="x", nested=True, outer_folds=5, data=toy4)
    with pytest.raises(ConfigError, match="needs at least 3"):
        SearchConfig(name="x", nested=True, data=DataSpec(dataset="toy", toy_subjects=2))
    # 4 subjects in 3 outer folds: a group of 2 leaves 2 for the inner LOSO, which with an
    # inner validation subject needs 3
    from tsfmicro.config import TrainConfig

    with pytest.raises(ConfigError, match=r"needs at least 3 \(2 \+ 1 inner validation\)"):
        SearchConfig(name="x", nested=True, outer_folds=3, data=toy4,
                     train=TrainConfig(val_subjects=1))  # fmt: skip
    with pytest.raises(ConfigError, match="at most 90 characters"):
        SearchConfig(name="n" * 95, nested=True, data=toy4)
    assert outer_fold_problem(4, 2) == "" and outer_fold_problem(4, None) == ""
    cfg = SearchConfig(name="ok", nested=True, outer_folds=2, data=toy4)
    assert SearchConfig.from_dict(json.loads(json.dumps(cfg.to_dict(), default=list))) == cfg


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--outer-folds", "2"), "is for a nested search only (--nested)"),
        (("--nested", "--outer-folds", "9"), "9 is more than the 4 subjects"),
        (("--nested", "--outer-folds", "1"), "must be at least 2"),
        (("--nested", "--toy-subjects", "2"), "a nested LOSO needs at least 3"),
    ],
)
def test_cli_refuses_bad_nested_input_before_any_work(tmp_path, capsys, flags, message):
    storage = tmp_path / "runs"
    code = main(["search", "--name", "bad", *TOY, *flags, "--storage-path", str(storage),
                 "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])  # fmt: skip
    assert code == 2
    assert message in capsys.readouterr().err
    assert not storage.exists() and not (tmp_path / "m.db").exists()  # nothing started
    import ray

    assert not ray.is_initialized()


def test_resume_continues_what_was_started(tmp_path, capsys, monkeypatch):
    """--nested / --outer-folds with --resume do not change a search: a flat one resumes flat
    (with a note), a nested one resumes nested without them."""
    import search.nested
    import search.run

    seen = {}

    def stop(kind):
        def record(cfg, **kwargs):
            seen[kind] = (cfg, kwargs)
            return 0 if kind == "nested" else None

        return record

    monkeypatch.setattr(search.run, "run_search", lambda cfg, **kw: (_ for _ in ()).throw(
        RuntimeError(f"flat {cfg.name} resume={kw['resume']}")))  # fmt: skip
    monkeypatch.setattr(search.nested, "nested_command", stop("nested"))
    storage = tmp_path / "runs"
    search.run.save_settings(SearchConfig(name="flat1", storage_path=str(storage)))
    args = ["search", "--resume", "flat1", "--nested", "--outer-folds", "3",
            "--storage-path", str(storage)]  # fmt: skip
    with pytest.raises(RuntimeError, match="flat flat1 resume=True"):
        main(args)
    err = capsys.readouterr().err
    assert "resuming 'flat1' as it was started (a flat search)" in err
    assert "--nested and --outer-folds 3 ignored" in err

    nested = SearchConfig(name="nest1", nested=True, outer_folds=2, storage_path=str(storage),
                          data=DataSpec(dataset="toy", toy_subjects=4))  # fmt: skip
    search.run.save_settings(nested)
    assert main(["search", "--resume", "nest1", "--storage-path", str(storage)]) == 0
    cfg, kwargs = seen["nested"]
    assert cfg == nested and kwargs["resume"] is True
    assert "ignored" not in capsys.readouterr().err


def test_a_nested_search_registers_nothing(tmp_path, capsys):
    import search.run

    storage = tmp_path / "runs"
    toy = DataSpec(dataset="toy", toy_subjects=4)
    search.run.save_settings(
        SearchConfig(name="nest2", nested=True, storage_path=str(storage), data=toy)
    )
    assert main(["register", "nest2", "--storage-path", str(storage)]) == 2
    err = capsys.readouterr().err
    assert "is nested: it registers nothing" in err and "flat_search.yaml" in err


def test_inner_config_and_flat_settings(tmp_path):
    from search.cli import build_search_config

    cfg = SearchConfig(name="n1", nested=True, outer_folds=2, storage_path=str(tmp_path),
                       data=DataSpec(dataset="toy", toy_subjects=4), trials=3)  # fmt: skip
    inner = inner_config(cfg, 2, ["s00", "s03"])
    assert inner.name == "n1-outer2" and not inner.nested and not inner.register
    assert inner.data.subjects == ("s00", "s03") and inner.trials == 3
    assert inner.storage_path == str((tmp_path / "n1" / "inner").resolve())
    assert inner.replace(name=cfg.name, data=cfg.data, storage_path=cfg.storage_path,
                         register=True, nested=True, outer_folds=2) == cfg  # fmt: skip
    # the flat search a nested one describes, as a --config file the CLI reads back
    path = tmp_path / "flat.yaml"
    path.write_text(flat_yaml(cfg))
    flat = build_search_config(build_parser().parse_args(["search", "--config", str(path),
                                                          "--name", "n1"]))  # fmt: skip
    assert flat == cfg.replace(nested=False, outer_folds=None)
    path.write_text(flat_yaml(cfg.replace(register=False)))  # the flat search registers
    again = build_search_config(build_parser().parse_args(["search", "--config", str(path)]))
    assert again.register


def test_subjects_restrict_the_data_and_unknown_ones_are_named():
    from search.data import load_search_pairs

    spec = DataSpec(dataset="toy", toy_subjects=4, toy_per_subject=3, shuffle_labels=True)
    whole = load_search_pairs(spec, 32, seed=3, progress=False)
    part = load_search_pairs(DataSpec(**{**spec.__dict__, "subjects": ["s03", "s01"]}), 32,
                             seed=3, progress=False)  # fmt: skip
    assert part.subject_ids() == ["s01", "s03"] and len(part) == 6
    mask = np.isin(whole.subjects, ["s01", "s03"])
    assert (whole.keys[mask] == part.keys).all()
    assert (whole.labels[mask] == part.labels).all()  # the shuffled labels of the whole set
    with pytest.raises(ConfigError, match=r"DataSpec.subjects: .* no subject\(s\) 's9'"):
        load_search_pairs(DataSpec(dataset="toy", toy_subjects=4, subjects=("s01", "s9")), 32,
                          progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match="repeated: s01"):
        DataSpec(dataset="toy", subjects=("s01", "s01"))


def test_outer_fold_files_round_trip_without_pickles(tmp_path):
    cfg = SearchConfig(name="n2", nested=True, storage_path=str(tmp_path),
                       data=DataSpec(dataset="toy", toy_subjects=4))  # fmt: skip
    pairs = make_toy_pairs(subjects=4, per_subject=3, classes=3, size=32, seed=0)
    test = pairs.only_subjects(["s02"])
    record = {"outer_fold": 3, "test_subjects": ["s02"], "trial_id": "t1", "params": {"lr": 0.1}}
    arrays = {"index": np.flatnonzero(pairs.subjects == "s02"), "keys": test.keys.astype(str),
              "subjects": test.subjects.astype(str), "y_true": test.labels.numpy(),
              "probs": np.full((3, 3), 1 / 3, dtype=np.float32)}  # fmt: skip
    assert load_outer(cfg, 3) is None
    save_outer(cfg, record, arrays)
    loaded, stored = load_outer(cfg, 3)  # np.load(allow_pickle=False) inside
    assert loaded == record
    for name, value in arrays.items():
        assert np.array_equal(stored[name], value)
    assert sorted(p.name for p in (tmp_path / "n2" / "outer").iterdir()) == [
        "fold-3.json", "fold-3.npz"]  # fmt: skip


def test_choice_counts_count_values_per_parameter():
    chosen = [{"params": {"fusion": "late", "lr": 0.00123456, "depth": 2}},
              {"params": {"fusion": "t2s", "lr": 0.0012349, "depth": 2}},
              {"params": {"fusion": "late", "lr": 0.002, "depth": 4}}]  # fmt: skip
    counts = choice_counts(chosen, ["fusion", "lr", "depth"])
    assert counts == {"fusion": {"late": 2, "t2s": 1}, "lr": {"0.00123": 2, "0.002": 1},
                      "depth": {"2": 2, "4": 1}}  # fmt: skip
    assert list(counts["fusion"]) == ["late", "t2s"]  # most chosen first


# ---- real nested searches ----------------------------------------------------------------------


def run_cli(*args: str, cwd, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tsfmicro.cli", *args],
        cwd=cwd,
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def mlflow_runs(tracking: str, experiment: str = EXPERIMENT) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=5000)


def kind(runs, name):
    return [r for r in runs if r.data.tags.get("tsfmicro.kind") == name]


def check_tree(runs, name: str, outer: int, trials: int, folds_per_trial: int) -> None:
    """search > outer > trial > fold, each inner run tagged with the nested search and its
    outer fold, nothing RUNNING."""
    assert not [r for r in runs if r.info.status == "RUNNING"]
    (top,) = [r for r in kind(runs, "search") if r.data.tags["tsfmicro.search"] == name]
    assert top.data.tags["tsfmicro.nested"] == "true" and top.info.status == "FINISHED"
    outers = [r for r in kind(runs, "outer") if r.data.tags["tsfmicro.nested_in"] == name]
    assert sorted(r.data.tags["tsfmicro.outer_fold"] for r in outers) == [
        str(k) for k in range(1, outer + 1)]  # fmt: skip
    inner_trials = [r for r in kind(runs, "trial") if r.data.tags.get("tsfmicro.nested_in") == name]
    inner_folds = [r for r in kind(runs, "fold") if r.data.tags.get("tsfmicro.nested_in") == name]
    assert len(inner_trials) == outer * trials
    assert len(inner_folds) == outer * trials * folds_per_trial
    for run in outers:
        assert run.data.tags["mlflow.parentRunId"] == top.info.run_id
        assert run.info.status == "FINISHED" and run.data.tags["tsfmicro.state"] == "complete"
        k = run.data.tags["tsfmicro.outer_fold"]
        assert run.data.tags["tsfmicro.inner_search"] == f"{name}-outer{k}"
        assert {"test_uf1", "test_acc", "test_uar", "inner_objective"} <= set(run.data.metrics)
        assert {"test_subjects", "chosen_trial", "fusion", "lr"} <= set(run.data.params)
        mine = [t for t in inner_trials if t.data.tags["mlflow.parentRunId"] == run.info.run_id]
        assert len(mine) == trials
        assert all(t.data.tags["tsfmicro.outer_fold"] == k for t in mine)
        assert all(t.data.tags["tsfmicro.search"] == f"{name}-outer{k}" for t in mine)
        assert run.data.params["chosen_trial"] in {t.data.tags["tsfmicro.trial_id"] for t in mine}
    parents = {t.info.run_id for t in inner_trials}
    assert all(f.data.tags["mlflow.parentRunId"] in parents for f in inner_folds)


def check_estimate(outcome: dict, outer: int) -> dict:
    nested = outcome["estimates"]["nested"]
    assert outcome["estimates"]["search_best"] is None and outcome["estimates"]["bbc"] is None
    for m in ("uf1", "acc", "uar"):
        lo, hi = nested[f"{m}_ci"]
        assert 0.0 <= lo <= nested[m] <= hi <= 1.0
    assert nested["outer_folds"] == outer and len(nested["chosen"]) == outer
    for c in nested["chosen"]:
        assert {"temporal_depth", "spatial_depth", "fusion", "lr"} == set(c["params"])
        assert 0.0 <= c["inner_objective"] <= 1.0
    for name, counts in nested["choice_counts"].items():
        assert sum(counts.values()) == outer, name
    cost = nested["cost"]
    assert cost["nested"]["refits"] == outer and cost["nested"]["folds"] > 0
    assert cost["nested"]["seconds"] > 0 and cost["flat"]["folds"] > 0
    assert nested["registered"] is None and outcome["registered"] is None
    return nested


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_nested_search_on_local_ray(tmp_path):
    """One fold task at a time per inner search: the local Ray (2 CPUs here and in CI) fits two
    inner searches, which run side by side as Ray tasks."""
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_cli("search", "--name", "nest", *TOY, "--trials", "2", "--set", "epochs=1",
                   "--nested", "--outer-folds", "2", "--seed", "1", "--tracking-uri", tracking,
                   "--concurrency", "1", "--fold-parallelism", "1",
                   "--storage-path", str(tmp_path / "runs"), "--json",
                   str(tmp_path / "outcome.json"), cwd=tmp_path)  # fmt: skip (not --quiet:
    # its "side by side" line is checked)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    if (os.cpu_count() or 1) >= 2:
        assert "2 inner searches side by side" in proc.stderr
        assert_inner_searches_overlapped(mlflow_runs(tracking))
    outcome = json.loads((tmp_path / "outcome.json").read_text())
    nested = check_estimate(outcome, outer=2)
    assert nested["n_subjects"] == 4 and nested["n_samples"] == 16
    assert sorted(s for g in nested["groups"] for s in g) == ["s00", "s01", "s02", "s03"]
    check_tree(mlflow_runs(tracking), "nest", outer=2, trials=2, folds_per_trial=2)
    out = proc.stdout
    assert "chosen across outer folds (how often each value):" in out
    assert "the performance of the whole search procedure" in out
    assert "registered: nothing" in out
    flat = f"tsfmicro search --config {tmp_path / 'runs' / 'nest' / 'flat_search.yaml'}"
    assert flat in out and outcome["flat_command"].startswith(flat)
    # nothing registered; inner trials stay out of the cross-search leaderboard
    from mlflow import MlflowClient

    assert not MlflowClient(tracking).search_registered_models()
    from search.leaderboard import leaderboard

    assert leaderboard(tracking).empty
    assert len(leaderboard(tracking, search="nest-outer1")) == 2


def assert_inner_searches_overlapped(runs) -> None:
    """The two outer folds' inner searches trained folds at the same time."""
    spans = {}
    for fold in kind(runs, "fold"):
        k = fold.data.tags["tsfmicro.outer_fold"]
        lo, hi = spans.get(k, (fold.info.start_time, fold.info.end_time))
        spans[k] = (min(lo, fold.info.start_time), max(hi, fold.info.end_time))
    (a, b) = spans["1"], spans["2"]
    assert a[0] < b[1] and b[0] < a[1], spans


def start_search(folder, name: str, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "tsfmicro.cli", "search", "--name", name, *TOY,
            "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--storage-path", str(folder / "runs"), "--quiet", *extra]  # fmt: skip
    log = open(folder / f"{name}.log", "a")  # noqa: SIM115 (lives as long as the process)
    return subprocess.Popen(
        args,
        cwd=folder,
        env=service_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_killed_nested_driver_resumes_without_redoing_a_finished_outer_fold(tmp_path):
    """On shuffled labels (a chance-level control, so the interval must hold chance): SIGTERM
    during the second outer fold's inner search; --resume keeps the first outer fold and
    resumes the second's inner search through Tune's restore."""
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = "tsfmicro/toy-shuffled/3class"
    # each inner search plans for the whole local Ray (its two folds at once), so the two run
    # one after another
    driver = start_search(tmp_path, "nestkill", "--trials", "2", "--set", "epochs=2",
                          "--concurrency", "1", "--nested", "--outer-folds", "2",
                          "--shuffle-labels")  # fmt: skip

    def second_outer_fold_halfway() -> bool:
        # read the store only once the driver has created it (two processes creating the
        # MLflow tables at once collide); the outer plan is written after that
        if not (tmp_path / "runs" / "nestkill" / "outer" / "plan.json").exists():
            return False
        runs = mlflow_runs(tracking, experiment)
        return any(r.data.tags.get("tsfmicro.outer_fold") == "2" for r in kind(runs, "fold"))

    deadline = time.monotonic() + 600
    try:
        while not second_outer_fold_halfway():
            assert driver.poll() is None, (tmp_path / "nestkill.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the second outer fold never started a fold"
            time.sleep(0.5)
    finally:
        if driver.poll() is None:
            os.kill(driver.pid, signal.SIGTERM)  # the driver only, as `kill` would
        driver.wait(120)
    before = mlflow_runs(tracking, experiment)
    assert not [r for r in before if r.info.status == "RUNNING"]  # closed on the way out
    (first,) = [r for r in kind(before, "outer") if r.data.tags["tsfmicro.outer_fold"] == "1"]
    assert first.data.tags["tsfmicro.state"] == "complete"
    (second,) = [r for r in kind(before, "outer") if r.data.tags["tsfmicro.outer_fold"] == "2"]
    assert second.info.status == "KILLED"
    assert not (tmp_path / "runs" / "nestkill" / "outer" / "fold-2.json").exists()

    resumed = run_cli("search", "--resume", "nestkill", "--storage-path",
                      str(tmp_path / "runs"), "--json", str(tmp_path / "outcome.json"),
                      cwd=tmp_path)  # fmt: skip (not --quiet: its notes are read below)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-5000:]
    assert "outer fold 1/2: finished before, kept" in resumed.stderr
    after = mlflow_runs(tracking, experiment)
    check_tree(after, "nestkill", outer=2, trials=2, folds_per_trial=2)  # no duplicate runs
    again = next(r for r in kind(after, "outer") if r.data.tags["tsfmicro.outer_fold"] == "1")
    assert again.info.end_time == first.info.end_time  # not retrained
    outer1 = [r for r in kind(after, "trial") if r.data.tags.get("tsfmicro.outer_fold") == "1"]
    assert all(r.info.end_time <= first.info.end_time for r in outer1)
    # the second outer fold's inner search went on from Tune's checkpoints: a trial cut
    # short kept the folds it had finished
    halfway = {
        t.info.run_id: sum(f.data.tags["mlflow.parentRunId"] == t.info.run_id
                           for f in kind(before, "fold"))
        for t in kind(before, "trial")
        if t.data.tags.get("tsfmicro.outer_fold") == "2"
        and t.data.tags["tsfmicro.state"] != "complete"
    }  # fmt: skip
    for trial in kind(after, "trial"):
        if halfway.get(trial.info.run_id):
            restored = trial.data.metrics.get("partial_folds_restored", 0)
            assert restored >= halfway[trial.info.run_id]
    outcome = json.loads((tmp_path / "outcome.json").read_text())
    nested = check_estimate(outcome, outer=2)
    # shuffled labels: the procedure is at chance, and UAR's chance level is 1/classes
    # whatever the predictions' distribution
    lo, hi = nested["uar_ci"]
    assert lo <= 1 / 3 <= hi


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_nested_search_job_on_a_two_node_cluster(tmp_path):
    """A small nested search sent with `ray job submit` to a two-worker loopback cluster,
    logging to `mlflow server`: the inner searches run side by side, their folds and the refits
    on the workers."""
    from services import killable_ray_cluster, mlflow_server, submit_job

    shared = tmp_path / "shared"  # every node sees this folder (one machine)
    with mlflow_server(tmp_path / "mlflow") as tracking, \
            killable_ray_cluster([{"cpus": 1}] * 2, tmp_path / "ray") as (_, url, _):  # fmt: skip
        entrypoint = [sys.executable, "-m", "tsfmicro.cli", "search", "--ray-address", "auto",
                      "--name", "nestc", *TOY, "--trials", "1", "--set", "epochs=1",
                      "--nested", "--outer-folds", "2", "--fold-parallelism", "1",
                      "--tracking-uri", tracking,
                      "--storage-path", str(shared / "runs"), "--json",
                      str(shared / "outcome.json")]  # fmt: skip (not --quiet: line checked)
        runtime_env = {"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}}  # the token: the nodes' own
        job = submit_job(url, ["--runtime-env-json", json.dumps(runtime_env), "--", *entrypoint],
                         timeout=900)  # fmt: skip
        assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-4000:]
        runs = mlflow_runs(tracking)
        check_tree(runs, "nestc", outer=2, trials=1, folds_per_trial=2)
        workers = {r.data.params["worker"] for r in kind(runs, "fold")}
        assert len(workers) == 2, workers  # the inner folds ran on both worker nodes
        # one fold task at a time each: the two 1-CPU workers fit both inner searches at once
        assert "2 inner searches side by side" in job.stdout + job.stderr
        assert_inner_searches_overlapped(runs)
    nested = check_estimate(json.loads((shared / "outcome.json").read_text()), outer=2)
    assert nested["n_subjects"] == 4
