"""A real search under a local Ray on the synthetic benchmark, checked through MLflow; then the
registered model is pulled and run on a synthetic clip."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from services import optuna_dashboard, service_env

TRIALS = 4
SUBJECTS = 4
EXPERIMENT = "tsfmicro/synthetic-casme2/5class"
MODEL = "tsfmicro-synthetic-casme2-5class"
CLASSES = ("happiness", "repression", "disgust", "surprise", "others")


def run_cli(*args: str, cwd, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tsfmicro.cli", *args], cwd=cwd,
                          env=service_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def local_search(tmp_path_factory):
    """Four trials of the tiny preset on a small synthetic set, tracked in a SQLite store."""
    folder = tmp_path_factory.mktemp("search")
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    proc = run_cli("search", "--name", "local4", "--synth-subjects", str(SUBJECTS),
                   "--synth-clips", "5", "--data-dir", str(folder / "data"),
                   "--cache-dir", str(folder / "cache"), "--preset", "tiny",
                   "--trials", str(TRIALS), "--set", "epochs=2", "--seed", "1",
                   "--tracking-uri", tracking, "--storage-path", str(folder / "runs"),
                   "--json", str(folder / "outcome.json"), "--quiet", cwd=folder)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    from mlflow import MlflowClient

    return {"folder": folder, "tracking": tracking, "client": MlflowClient(tracking),
            "stdout": proc.stdout, "stderr": proc.stderr,
            "outcome": json.loads((folder / "outcome.json").read_text())}


def _runs(client, kind=None):
    exp = client.get_experiment_by_name(EXPERIMENT)
    where = f"tags.`tsfmicro.kind` = '{kind}'" if kind else ""
    return client.search_runs([exp.experiment_id], filter_string=where, max_results=1000)


@pytest.mark.slow
def test_every_trial_and_fold_is_in_mlflow(local_search):
    client = local_search["client"]
    trials = _runs(client, "trial")
    folds = _runs(client, "fold")
    assert len(trials) == TRIALS
    assert all(r.info.status == "FINISHED" and r.data.tags["tsfmicro.state"] == "complete"
               for r in trials)
    assert len(folds) == TRIALS * SUBJECTS
    parents = {r.info.run_id for r in trials}
    assert {r.data.tags["mlflow.parentRunId"] for r in folds} == parents
    for run in trials:
        m, tags = run.data.metrics, run.data.tags
        for mode in ("final", "oracle"):
            for metric in ("acc", "uf1", "uar"):
                assert m[f"{mode}_{metric}_ci_lo"] <= m[f"{mode}_{metric}"] <= \
                    m[f"{mode}_{metric}_ci_hi"]
        assert m["oracle_acc"] >= m["final_acc"]
        assert tags["tsfmicro.search"] == "local4" and tags["tsfmicro.eval_mode"] == "final"
        assert tags["tsfmicro.dataset"] == "synthetic-casme2"
        assert tags["tsfmicro.protocol"] == "5class"
        assert tags["tsfmicro.git_commit"]
        assert tags["tsfmicro.train_pairs_moved"] == "0"  # the default synthetic copy
        assert {"temporal_depth", "spatial_depth", "fusion", "lr", "epochs"} <= set(
            run.data.params)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"predictions.parquet", "metrics.json", "config.json", "confusion_final.json",
                "per_class_final.csv", "curves.csv"} <= artifacts
    fold = folds[0]
    history = client.get_metric_history(fold.info.run_id, "train_loss")
    assert [h.step for h in history] == [1, 2]
    assert fold.data.params["subject"].startswith("sub")


@pytest.mark.slow
def test_nothing_left_running_and_outcome_matches(local_search):
    client = local_search["client"]
    assert not [r for r in _runs(client) if r.info.status == "RUNNING"]
    outcome = local_search["outcome"]
    assert len(outcome["trials"]) == TRIALS
    assert all(t["state"] == "complete" for t in outcome["trials"])
    assert outcome["overhead_seconds"] == pytest.approx(
        outcome["seconds"] - outcome["fold_seconds"])
    assert "leaderboard by final UF1" in local_search["stdout"]


@pytest.mark.slow
def test_quiet_prints_only_the_result(local_search):
    """--quiet: nothing on stderr (no notes, progress or dependency messages); stdout holds the
    leaderboard, the honest estimates, the summary and the registered version, each once."""
    assert local_search["stderr"] == ""
    out = local_search["stdout"]
    assert out.startswith("leaderboard by final UF1") and out.count("leaderboard by") == 1
    assert out.count("honest estimates of search local4") == 1
    assert out.count(f"registered {MODEL} version ") == 1
    lines = [line for line in out.splitlines() if line.strip() and set(line) != {"-"}]
    assert len(lines) == len(set(lines)) and "\r" not in out


@pytest.mark.slow
def test_best_model_registered_with_champion_alias(local_search):
    client = local_search["client"]
    version = client.get_model_version_by_alias(MODEL, "champion")
    best = local_search["outcome"]["best"]
    assert version.tags["trial_id"] == best["trial_id"]
    assert float(version.tags["final_uf1"]) == pytest.approx(best["metrics"]["objective"])
    refit = client.get_run(version.run_id)
    assert refit.data.tags["tsfmicro.kind"] == "refit" and refit.info.status == "FINISHED"


@pytest.mark.slow
def test_pull_then_predict_on_a_synthetic_clip(local_search, tmp_path):
    proc = run_cli("pull", f"{MODEL}@champion", "--out", str(tmp_path / "models"),
                   "--tracking-uri", local_search["tracking"], cwd=local_search["folder"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = next((tmp_path / "models").rglob("tsfmicro_model.json")).parent
    assert (folder / "weights.pt").is_file()

    # A new synthetic subject with full clips (every frame onset..offset).
    clips = tmp_path / "clips"
    made = run_cli("synth", "--dataset", "casme2", "--subjects", "1", "--clips-per-subject", "2",
                   "--full-clips", "--seed", "7", "--quiet", str(clips), cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    clip = sorted((clips / "CASME2_RAW_selected" / "sub01").iterdir())[0]
    frames = sorted(clip.glob("*.jpg"), key=lambda p: int(p.stem[3:]))
    assert len(frames) > 2

    out = run_cli("predict", "--model", str(folder), "--clip", str(clip), "--json",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert set(result["probabilities"]) == set(CLASSES)
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert result["face_found"] and result["onset"] == str(frames[0])

    pair = run_cli("predict", "--model", str(folder), "--onset", str(frames[0]), "--apex",
                   str(frames[len(frames) // 2]), cwd=tmp_path)
    assert pair.returncode == 0 and "predicted:" in pair.stdout

    # Loading needs only the library: run it in a process where mlflow cannot be imported.
    code = ("import sys; sys.modules['mlflow'] = None\n"
            "from tsfmicro.inference import Predictor\n"
            f"p = Predictor.load({str(folder)!r})\n"
            f"print(p.predict_files({str(frames[0])!r}, {str(frames[-1])!r}).label)")
    bare = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=service_env())
    assert bare.returncode == 0, bare.stderr[-2000:]
    assert bare.stdout.strip() in CLASSES


@pytest.mark.slow
def test_fold_runs_span_each_folds_training_and_fit_the_plan(local_search):
    """Each fold's MLflow run starts and ends when the fold's training did, so the folds'
    real concurrency can be read back (benchmarks/bench_search_overhead.py does) and never
    exceeds the slots the search planned."""
    from benchmarks.bench_search_overhead import concurrency

    folds = _runs(local_search["client"], "fold")
    intervals = [(r.info.start_time / 1000, r.info.end_time / 1000) for r in folds]
    for run, (start, end) in zip(folds, intervals, strict=True):
        assert end - start == pytest.approx(run.data.metrics["seconds"], abs=0.01)
    plan = local_search["outcome"]["plan"]
    assert plan["fold_slots"] == (
        plan["trials_at_once"] * plan["fold_tasks_per_trial"] * plan["folds_at_once_per_task"]
    )
    peak, mean, span = concurrency(intervals)
    assert peak == plan["fold_slots"]  # the planned slots were really filled, never exceeded
    assert 0 < mean <= peak and span > 0


@pytest.mark.slow
def test_mlflow_classic_view_readable_run_names_and_dataset_input(local_search):
    """The experiment opens in MLflow's classic ML view; trial runs are named by the search,
    their Optuna trial number and sampled values, fold runs by their subject; the search run
    and every trial run have the dataset as an input (name, protocol, digest)."""
    client = local_search["client"]
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    trials = _runs(client, "trial")
    labels = {}
    for run in trials:
        number, p = run.data.tags["tsfmicro.optuna_trial"], run.data.params
        assert run.info.run_name == (
            f"local4 #{number} temporal_depth={p['temporal_depth']} "
            f"spatial_depth={p['spatial_depth']} fusion={p['fusion']} lr={float(p['lr']):.3g}"
        )
        labels[run.info.run_id] = f"local4 #{number}"
    assert sorted(int(r.data.tags["tsfmicro.optuna_trial"]) for r in trials) == list(
        range(TRIALS))
    for fold in _runs(client, "fold"):
        parent = labels[fold.data.tags["mlflow.parentRunId"]]
        assert fold.info.run_name == f"{fold.data.params['subject']} ({parent})"
    (search,) = _runs(client, "search")
    digests = set()
    for run in [search, *trials]:
        (given,) = client.get_run(run.info.run_id).inputs.dataset_inputs
        tags = {t.key: t.value for t in given.tags}
        assert tags == {"mlflow.data.context": "loso", "tsfmicro.protocol": "5class"}
        data = given.dataset
        assert data.name == "synthetic-casme2" and data.source_type == "local"
        profile = json.loads(data.profile)
        assert profile["protocol"] == "5class" and profile["subjects"] == SUBJECTS
        assert profile["samples"] == SUBJECTS * 5 and profile["classes"] == list(CLASSES)
        assert json.loads(data.source)["uri"].startswith(str(local_search["folder"] / "data"))
        digests.add(data.digest)
    (digest,) = digests
    assert len(digest) == 16 and int(digest, 16) >= 0


@pytest.mark.slow
def test_optuna_study_holds_the_trials_and_the_dashboard_serves_it(local_search):
    """The search's study is in optuna.db beside the MLflow store, named after the search:
    optuna.load_study finds every trial with the value MLflow holds, and optuna-dashboard
    (started as a user would, on loopback) serves it: its trials and parameter importances."""
    import urllib.request

    import optuna

    folder, client = local_search["folder"], local_search["client"]
    storage = f"sqlite:///{folder / 'optuna.db'}"
    assert local_search["outcome"]["optuna"] == {"storage": storage, "study": "local4"}
    study = optuna.load_study(study_name="local4", storage=storage)
    assert study.metric_names == ["objective"] and study.user_attrs["mlflow_experiment"] == (
        EXPERIMENT)
    runs = {r.data.tags["tsfmicro.trial_id"]: r for r in _runs(client, "trial")}
    assert len(study.trials) == TRIALS
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        run = runs[trial.user_attrs["tune_trial_id"]]
        assert trial.value == pytest.approx(run.data.metrics["objective"])
        assert run.data.tags["tsfmicro.optuna_trial"] == str(trial.number)
        assert str(trial.params["fusion"]) == run.data.params["fusion"]
        assert trial.params["lr"] == pytest.approx(float(run.data.params["lr"]))

    def get(url: str) -> dict:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return json.loads(answer.read())

    with optuna_dashboard(storage, folder / "dashboard") as base:
        (summary,) = [s for s in get(f"{base}/api/studies")["study_summaries"]
                      if s["study_name"] == "local4"]  # fmt: skip
        served = get(f"{base}/api/studies/{summary['study_id']}?after=0")
        assert sorted(v for t in served["trials"] for v in t["values"]) == pytest.approx(
            sorted(t.value for t in study.trials))
        (importances,) = get(f"{base}/api/studies/{summary['study_id']}/param_importances")[
            "param_importances"]
        assert {p["name"] for p in importances} == {"temporal_depth", "spatial_depth", "fusion",
                                                    "lr"}  # fmt: skip


def test_concurrency_of_fold_intervals():
    from benchmarks.bench_search_overhead import concurrency

    # two folds overlap for 1 s, a third starts as the second ends: peak 2, 5 s busy over 4 s
    assert concurrency([(0.0, 2.0), (1.0, 3.0), (3.0, 4.0)]) == (2, 1.25, 4.0)
    assert concurrency([]) == (0, 0.0, 0.0)
