"""Honest leaderboards in the search service (search/honest.py, docs/evaluation.md): every
search's selection bias measured (search-best against BBC-CV) and its trials' ties with the
champion, at the end of the search and on request, recorded on one MLflow run per search.

The evidence that it works is two real searches on the toy task (micro preset, 6 subjects x 12
samples, 3 balanced classes, so chance ACC and UAR are exactly 1/3 for any predictor that
ignores the labels, and UF1 is at most about 1/3):

- labels shuffled (no signal), 12 trials: the champion's own UF1 is clearly above chance while
  the bias-corrected interval contains chance. Measured for seeds 0-4 (2026-12-03): search-best
  UF1 0.408, 0.417, 0.376, 0.431, 0.381 (ACC 0.403-0.458); BBC UF1 0.268, 0.285, 0.255, 0.326,
  0.261 with every UF1 and ACC interval containing 1/3. The test runs seed 0.
- real labels, 8 trials with ASHA (so some trials are pruned): BBC stays far above chance, and
  the pruned trials are compared with the champion on the subjects they reached.

Together about 2-3 minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from search import honest as SH
from search.leaderboard import board_json, format_leaderboard, tie_text
from search.schema import (
    CI_HI,
    CI_LO,
    FIGURE_BBC,
    FIGURE_SEARCH_BEST,
    HONEST_ARTIFACT,
    SETTINGS_ARTIFACT,
    SearchMetric,
    Tag,
    TieMetric,
    figure_metric,
)
from tsfmicro.errors import ConfigError, InputError
from tsfmicro.metrics import METRICS
from tsfmicro.training.fold import FoldResult

from services import service_env

CHANCE = 1 / 3
SHUFFLED_EXPERIMENT = "tsfmicro/toy-shuffled/3class"
REAL_EXPERIMENT = "tsfmicro/toy/3class"


# --------------------------------------------------------------------------- no search


def fold(subject: str, test_index, labels, right: float, epochs: int = 2, seed: int = 0,
         k: int = 3) -> FoldResult:
    """A fold whose last epoch predicts a share `right` of its test samples correctly."""
    rng = np.random.default_rng(seed)
    test_index = np.asarray(test_index)
    y = labels[test_index]
    pred = np.where(rng.random(len(y)) < right, y, (y + 1) % k)
    probs = np.full((epochs, len(y), k), 0.1, dtype=np.float32)
    probs[-1, np.arange(len(y)), pred] = 0.8
    probs[:-1, :, 0] = 0.8  # earlier epochs predict class 0
    empty = np.array([], dtype=np.int64)
    return FoldResult(subject=subject, seed=seed, train_index=empty, test_index=test_index,
                      val_index=empty, val_subjects=[],
                      test_probs=probs, val_probs=np.zeros((epochs, 0, k), np.float32),
                      train_loss=np.zeros(epochs), train_acc=np.zeros(epochs), seconds=1.0,
                      train_samples=10, device="cpu")  # fmt: skip


def toy_folds(n_subjects: int, right: float, seed: int, keep: int | None = None):
    labels = np.tile(np.arange(3), n_subjects * 4)
    subjects = np.repeat([f"s{i}" for i in range(n_subjects)], 12)
    folds = {
        s: fold(s, np.flatnonzero(subjects == s), labels, right, seed=seed + i)
        for i, s in enumerate(sorted(set(subjects)))
    }
    if keep is not None:
        folds = {s: folds[s] for s in sorted(folds)[:keep]}
    return folds, labels


def test_estimate_from_folds_takes_the_modes_epoch_and_only_complete_trials_win():
    good, labels = toy_folds(8, 0.9, seed=0)
    weak, _ = toy_folds(8, 0.4, seed=100)
    pruned, _ = toy_folds(8, 1.0, seed=200, keep=3)  # perfect, but only 3 subjects
    inputs = [
        SH.TrialInput(name, state, f"run-{name}",
                      SH.fold_predictions(folds, labels, 3, "final", "uf1"))
        for name, state, folds in [("weak", "complete", weak), ("good", "complete", good),
                                   ("pruned", "pruned", pruned)]
    ] + [SH.TrialInput("failed", "failed", "run-failed", None, "no fold finished")]  # fmt: skip
    subj, y, yp = inputs[1].predictions
    assert len(y) == 96 and (yp == y).mean() > 0.8  # the last epoch, not the class-0 ones
    report = SH.estimate(inputs, num_classes=3, eval_mode="final", objective="uf1",
                         n_boot=300, search="s")  # fmt: skip
    assert report["champion"] == "good"  # the pruned trial scores higher but cannot win
    assert report["n_complete"] == 2 and report["n_trials"] == 4
    sb, bb = report["estimates"][FIGURE_SEARCH_BEST], report["estimates"][FIGURE_BBC]
    assert sb["optimistic"] is True and bb["optimistic"] is False
    assert report["estimates"]["nested"] is None
    for est in (sb, bb):
        for m in METRICS:
            lo, hi = est[f"{m}_ci"]
            assert 0 <= lo <= hi <= 1
    ties = {r["trial"]: r for r in report["ties"]}
    assert ties["good"]["tied_with_best"] is True and ties["good"]["is_champion"]
    assert ties["weak"]["tied_with_best"] is False and ties["weak"]["diff_ci"][1] < 0
    assert ties["pruned"]["n_subjects"] == 3 and ties["pruned"]["complete"] is False
    assert ties["failed"]["tied_with_best"] is None and report["missing"] == ["failed"]
    assert report["n_tied"] == sum(r["tied_with_best"] is True for r in report["ties"])
    json.dumps(report, allow_nan=False)  # strict JSON: no NaN anywhere
    text = SH.format_report(report)
    for words in ("search-best", "OPTIMISTIC", "bias-corrected", "nested", "not run",
                  f"tied with the champion: {report['n_tied']} of 4", "failed (no fold finished)"):
        assert words in text, words


def test_estimate_refuses_what_has_no_answer():
    one, labels = toy_folds(1, 0.9, seed=0)
    single = [SH.TrialInput("a", "complete", None,
                            SH.fold_predictions(one, labels, 3, "final", "uf1"))]
    with pytest.raises(InputError, match="1 fold unit.*test subjects.*at least 2"):
        SH.estimate(single, num_classes=3, eval_mode="final", objective="uf1")
    part, labels = toy_folds(4, 0.9, seed=0, keep=2)
    everything, _ = toy_folds(4, 0.9, seed=0)
    subjects = sorted(everything)
    only_pruned = [SH.TrialInput("p", "pruned", None,
                                 SH.fold_predictions(part, labels, 3, "final", "uf1"))]
    with pytest.raises(InputError, match="no complete trial"):
        SH.estimate(only_pruned, num_classes=3, eval_mode="final", objective="uf1",
                    subjects=subjects)  # fmt: skip
    with pytest.raises(InputError, match="no trial has any held-out prediction"):
        SH.estimate([SH.TrialInput("x", "failed")], num_classes=3, eval_mode="final",
                    objective="uf1")  # fmt: skip


def test_checkpoints_are_found_by_trial_id_in_a_tune_folder(tmp_path):
    search = tmp_path / "s1"
    a = search / "loso_trial_0a1b2c3d_1_fusion=late_2026-12-03_07-06-41"
    b = search / "loso_trial_deadbeef_2_fusion=s2t_2026-12-03_07-06-42"
    for trial, n in ((a, 3), (b, 1)):
        for i in range(n):
            (trial / f"checkpoint_{i:06d}").mkdir(parents=True)
            (trial / f"checkpoint_{i:06d}" / "folds.json").write_text("{}")
    (a / "result.json").write_text(json.dumps({"trial_id": "0a1b2c3d", "folds_done": 1}) + "\n")
    (search / "loso_trial_cafe0000_3_x").mkdir()  # no checkpoint: absent
    found = SH.checkpoint_dirs(tmp_path, "s1")
    assert found == {"0a1b2c3d": a / "checkpoint_000002",  # the latest, from result.json
                     "deadbeef": b / "checkpoint_000000"}  # from the folder's name; fmt: skip
    assert SH.checkpoint_dirs(tmp_path, "nothing") == {}


def test_leaderboard_text_and_json_mark_the_ties():
    row = {"experiment": "tsfmicro/toy/3class", "search": "s", "state": "complete",
           "run_id": "r", "eval_mode": "final", "objective_name": "uf1",
           "final_acc": 0.5, "final_uf1": 0.5, "final_uar": 0.5,
           "final_uf1_ci_lo": 0.4, "final_uf1_ci_hi": 0.6, "reason": None}  # fmt: skip
    board = pd.DataFrame([
        {**row, "trial": "champ", "tied_with_best": True, TieMetric.DIFF: 0.0,
         TieMetric.DIFF + CI_LO: 0.0, TieMetric.DIFF + CI_HI: 0.0, TieMetric.SHARE: 1.0},
        {**row, "trial": "near", "final_uf1": 0.47, "tied_with_best": True,
         TieMetric.DIFF: -0.03, TieMetric.DIFF + CI_LO: -0.1, TieMetric.DIFF + CI_HI: 0.05},
        {**row, "trial": "far", "final_uf1": 0.2, "tied_with_best": False,
         TieMetric.DIFF: -0.3, TieMetric.DIFF + CI_LO: -0.4, TieMetric.DIFF + CI_HI: -0.2},
        {**row, "trial": "old", "final_uf1": 0.1, "tied_with_best": None},
        {**row, "trial": "cut", "state": "pruned", "reason": "stopped after 2 of 6 folds",
         "tied_with_best": True, TieMetric.DIFF: 0.01, TieMetric.DIFF + CI_LO: -0.2,
         TieMetric.DIFF + CI_HI: 0.2, TieMetric.SUBJECTS: 2},
    ])  # fmt: skip
    text = format_leaderboard(board, "final", "uf1")
    assert "Δ vs search best [95% CI]" in text
    lines = {line.split()[1]: line for line in text.splitlines()[3:7]}
    assert lines["champ"].endswith("+0.000 [+0.00,+0.00] best")
    assert lines["near"].endswith("-0.030 [-0.10,+0.05] tied")
    assert lines["far"].endswith("-0.300 [-0.40,-0.20]")
    assert "cut: pruned stopped after 2 of 6 folds (on its 2 subjects: Δ +0.010" in text
    assert tie_text({"tie_diff": float("nan")}) == ""
    rows = {r["trial"]: r for r in board_json(board)}
    assert [rows[t]["tied_with_best"] for t in ("champ", "near", "far", "old", "cut")] == [
        True, True, False, None, True]
    assert rows["champ"]["rank"] == 1 and rows["cut"]["rank"] is None
    assert rows["far"]["diff_vs_best_ci"] == [-0.4, -0.2]
    assert rows["near"]["uf1_ci"] == [0.4, 0.6]
    json.dumps(list(rows.values()), allow_nan=False)


def test_shuffle_labels_flag_gives_its_own_dataset_name_and_settings():
    from search.cli import build_search_config
    from search.config import SearchConfig
    from search.data import dataset_label, load_search_pairs
    from tsfmicro.cli import build_parser

    cfg = build_search_config(build_parser().parse_args(
        ["search", "--name", "s", "--dataset", "toy", "--shuffle-labels", "--seed", "4"]))
    assert cfg.data.shuffle_labels and SearchConfig.from_dict(cfg.to_dict()) == cfg
    assert dataset_label(cfg.data) == ("toy-shuffled", "3class")
    plain = build_search_config(build_parser().parse_args(["search", "--name", "s"]))
    assert not plain.data.shuffle_labels
    assert dataset_label(plain.data) == ("synthetic-casme2", "5class")
    assert dataset_label(cfg.data.__class__(dataset="synthetic", shuffle_labels=True)) == (
        "synthetic-casme2-shuffled", "5class")
    real = load_search_pairs(plain.data.__class__(dataset="toy"), 32, seed=4, progress=False)
    shuffled = load_search_pairs(cfg.data, 32, seed=4, progress=False)
    assert np.array_equal(shuffled.labels, real.shuffled_labels(4).labels)
    assert not np.array_equal(shuffled.labels, real.labels)
    assert sorted(shuffled.labels.tolist()) == sorted(real.labels.tolist())


def test_leaderboard_honest_needs_a_search(capsys):
    from tsfmicro.cli import main

    assert main(["leaderboard", "--honest", "--tracking-uri", "sqlite:///unused.db"]) != 0
    assert "--honest needs --search NAME" in capsys.readouterr().err


# --------------------------------------------------------------------------- real searches


def run_cli(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tsfmicro.cli", *args], cwd=cwd,
                          env=service_env(), capture_output=True, text=True, timeout=timeout)


def toy_search(folder: Path, name: str, *extra: str) -> dict:
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    proc = run_cli("search", "--name", name, "--dataset", "toy", "--preset", "micro",
                   "--set", "class_weighting=balanced", "--sampler", "random", "--seed", "0",
                   "--no-register", "--tracking-uri", tracking,
                   "--storage-path", str(folder / "runs"), "--json", str(folder / f"{name}.json"),
                   "--quiet", *extra, cwd=folder)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    from mlflow import MlflowClient

    return {"folder": folder, "tracking": tracking, "client": MlflowClient(tracking),
            "name": name, "stdout": proc.stdout, "stderr": proc.stderr,
            "outcome": json.loads((folder / f"{name}.json").read_text())}  # fmt: skip


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory):
    """12 trials on shuffled toy labels: 8 epochs, learning rate 2e-3..1e-2, balanced classes
    (so the learned prior does not push every trial below chance)."""
    return toy_search(tmp_path_factory.mktemp("shuffled"), "shuffled12", "--shuffle-labels",
                      "--trials", "12", "--set", "epochs=8",
                      "--param", "lr=float:0.002:0.01:log")  # fmt: skip


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """8 trials on the real toy labels with ASHA: weak trials are stopped after a fold."""
    return toy_search(tmp_path_factory.mktemp("real"), "real8", "--trials", "8",
                      "--set", "epochs=6", "--scheduler", "asha",
                      "--param", "lr=float:0.001:0.01:log")  # fmt: skip


def runs_of(search: dict, experiment: str, kind: str) -> list:
    client = search["client"]
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs(
        [exp.experiment_id], max_results=1000,
        filter_string=f"tags.`tsfmicro.kind` = '{kind}' and "
                      f"tags.`tsfmicro.search` = '{search['name']}'")  # fmt: skip


@pytest.mark.slow
def test_on_shuffled_labels_search_best_is_above_chance_and_bbc_is_not(shuffled):
    est = shuffled["outcome"]["estimates"]
    best, corrected = est["search_best"], est["bbc"]
    assert best["optimistic"] is True and corrected["optimistic"] is False
    assert est["nested"] is None
    # The champion of 12 label-blind trials looks better than chance ...
    assert best["uf1"] >= CHANCE + 0.04, best
    assert best["acc"] >= CHANCE + 0.05, best
    # ... and the bias-corrected estimate of the same search does not.
    for m in ("uf1", "acc", "uar"):
        lo, hi = corrected[f"{m}_ci"]
        assert lo <= CHANCE <= hi, (m, corrected)
    assert best["uf1"] - corrected["uf1"] >= 0.08
    assert corrected["n_trials"] == 12 and corrected["excluded_trials"] == []
    assert "honest estimates of search shuffled12" in shuffled["stdout"]
    assert "LABELS SHUFFLED" in shuffled["stdout"]  # in the result, which --quiet keeps


@pytest.mark.slow
def test_shuffled_search_has_its_own_experiment_and_tags(shuffled):
    client = shuffled["client"]
    assert client.get_experiment_by_name("tsfmicro/toy/3class") is None  # never mixed
    trials = runs_of(shuffled, SHUFFLED_EXPERIMENT, "trial")
    assert len(trials) == 12
    assert {r.data.tags[Tag.SHUFFLED_LABELS] for r in trials} == {"true"}
    assert {r.data.tags[Tag.DATASET] for r in trials} == {"toy-shuffled"}
    (run,) = runs_of(shuffled, SHUFFLED_EXPERIMENT, "search")
    assert run.data.tags[Tag.SHUFFLED_LABELS] == "true"
    settings = json.loads(Path(client.download_artifacts(
        run.info.run_id, SETTINGS_ARTIFACT, str(shuffled["folder"]))).read_text())
    assert settings["data"]["shuffle_labels"] is True
    stored = json.loads((Path(shuffled["folder"]) / "runs" / "shuffled12" /
                         "tsfmicro_search.json").read_text())  # fmt: skip
    assert stored["data"]["shuffle_labels"] is True


@pytest.mark.slow
def test_the_search_run_holds_the_estimates_and_the_trials_their_ties(shuffled):
    client, outcome = shuffled["client"], shuffled["outcome"]
    (run,) = runs_of(shuffled, SHUFFLED_EXPERIMENT, "search")
    assert run.info.status == "FINISHED" and run.data.tags[Tag.STATE] == "complete"
    assert run.data.tags[Tag.STORAGE_PATH] == str((shuffled["folder"] / "runs").resolve())
    m = run.data.metrics
    for figure in (FIGURE_SEARCH_BEST, FIGURE_BBC):
        est = outcome["estimates"][figure]
        for metric in METRICS:
            name = figure_metric(figure, metric)
            assert m[name] == pytest.approx(est[metric])
            assert [m[name + CI_LO], m[name + CI_HI]] == pytest.approx(est[f"{metric}_ci"])
    assert "nested_uf1" not in m
    assert m[SearchMetric.N_TRIALS] == 12 and m[SearchMetric.N_SUBJECTS] == 6
    assert m[SearchMetric.N_TIED] == outcome["honest"]["n_tied"]
    stored = json.loads(Path(client.download_artifacts(
        run.info.run_id, HONEST_ARTIFACT, str(shuffled["folder"]))).read_text())
    assert stored["estimates"] == outcome["estimates"]
    # The search-best interval is the champion's own logged subject-bootstrap interval.
    trials = {r.data.tags[Tag.TRIAL_ID]: r for r in runs_of(shuffled, SHUFFLED_EXPERIMENT,
                                                            "trial")}  # fmt: skip
    champion = trials[outcome["best"]["trial_id"]].data.metrics
    best = outcome["estimates"]["search_best"]
    assert best["champion"] == outcome["best"]["trial_id"]
    assert best["uf1"] == pytest.approx(champion["final_uf1"])
    assert best["uf1_ci"] == pytest.approx([champion["final_uf1_ci_lo"],
                                            champion["final_uf1_ci_hi"]])  # fmt: skip
    for trial in outcome["trials"]:
        tie, metrics = trial["tie"], trials[trial["trial_id"]].data.metrics
        assert metrics[TieMetric.TIED] == float(tie["tied_with_best"])
        assert metrics[TieMetric.DIFF] == pytest.approx(tie["diff"])
        lo, hi = tie["diff_ci"]
        assert tie["tied_with_best"] == (lo <= 0 <= hi)
    assert not [r for r in client.search_runs([run.info.experiment_id], max_results=5000)
                if r.info.status == "RUNNING"]  # fmt: skip


@pytest.mark.slow
def test_on_request_the_same_figures_come_back_from_mlflow(shuffled, tmp_path):
    out = tmp_path / "board.json"
    proc = run_cli("leaderboard", "--search", "shuffled12", "--honest", "--tracking-uri",
                   shuffled["tracking"], "--json", str(out), cwd=shuffled["folder"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = json.loads(out.read_text())
    assert board["estimates"] == shuffled["outcome"]["estimates"]  # bit for bit
    assert "Δ vs search best" in proc.stdout and "bias-corrected" in proc.stdout
    ties = {t["trial_id"]: t["tie"]["tied_with_best"] for t in shuffled["outcome"]["trials"]}
    assert {r["trial"]: r["tied_with_best"] for r in board["trials"]} == ties
    assert [r["rank"] for r in board["trials"]] == list(range(1, 13))
    # Without --honest: the estimates the search stored, read back.
    proc = run_cli("leaderboard", "--search", "shuffled12", "--tracking-uri",
                   shuffled["tracking"], cwd=shuffled["folder"])
    assert proc.returncode == 0 and "stored with the search" in proc.stdout
    (run,) = runs_of(shuffled, SHUFFLED_EXPERIMENT, "search")  # still one search run


@pytest.mark.slow
def test_on_request_errors_are_plain(shuffled):
    proc = run_cli("leaderboard", "--search", "no-such-search", "--honest", "--tracking-uri",
                   shuffled["tracking"], cwd=shuffled["folder"])
    assert proc.returncode != 0
    assert "no search named 'no-such-search'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_with_real_labels_bbc_stays_above_chance_and_pruned_trials_are_compared(real):
    est = real["outcome"]["estimates"]
    assert est["bbc"]["uf1_ci"][0] > CHANCE + 0.1, est["bbc"]
    assert est["bbc"]["acc_ci"][0] > CHANCE + 0.1, est["bbc"]
    assert est["bbc"]["uf1"] <= est["search_best"]["uf1"] + 1e-9
    trials = real["outcome"]["trials"]
    pruned = [t for t in trials if t["state"] == "pruned"]
    assert pruned, "ASHA stopped no trial: the pruned path is not exercised"
    for t in pruned:  # compared on the subjects they reached, never selectable
        assert 1 <= t["tie"]["n_subjects"] < 6 and t["tie"]["complete"] is False
        assert t["trial_id"] in est["bbc"]["excluded_trials"]
        assert t["trial_id"] not in est["bbc"]["picked"]


@pytest.mark.slow
def test_on_request_pruned_trials_come_from_checkpoints_or_are_named(real, tmp_path):
    trials = {t["trial_id"]: t for t in real["outcome"]["trials"]}
    out = tmp_path / "found.json"
    proc = run_cli("leaderboard", "--search", "real8", "--honest", "--tracking-uri",
                   real["tracking"], "--json", str(out), cwd=real["folder"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(out.read_text())["honest"]
    assert found["estimates"] == real["outcome"]["estimates"]
    assert found["missing"] == []
    for row in found["ties"]:
        assert row["diff_ci"] == pytest.approx(trials[row["trial"]]["tie"]["diff_ci"])
    # Without the checkpoints: the same estimates; pruned trials named, without tie figures.
    out = tmp_path / "lost.json"
    proc = run_cli("leaderboard", "--search", "real8", "--honest", "--tracking-uri",
                   real["tracking"], "--storage-path", str(tmp_path / "elsewhere"),
                   "--json", str(out), cwd=real["folder"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lost = json.loads(out.read_text())["honest"]
    assert lost["estimates"] == real["outcome"]["estimates"]
    pruned = sorted(t for t, v in trials.items() if v["state"] == "pruned")
    assert sorted(lost["missing"]) == pruned
    assert f"no tie figures for {len(pruned)} trial(s) whose folds were not found" in proc.stdout
    assert all(r["tied_with_best"] is None for r in lost["ties"] if r["trial"] in pruned)


@pytest.mark.slow
def test_an_interrupted_search_run_ends_killed_and_resumes(tmp_path):
    from mlflow import MlflowClient

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["search", "--name", "stop4", "--dataset", "toy", "--preset", "micro",
            "--trials", "3", "--set", "epochs=3", "--concurrency", "1", "--no-register",
            "--tracking-uri", tracking, "--storage-path", str(tmp_path / "runs"), "--quiet"]
    log = open(tmp_path / "driver.log", "w")  # noqa: SIM115 (closed below)
    driver = subprocess.Popen([sys.executable, "-m", "tsfmicro.cli", *args], cwd=tmp_path,
                              env=service_env(), stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    client = MlflowClient(tracking)

    def runs(kind: str) -> list:
        exp = client.get_experiment_by_name(REAL_EXPERIMENT)
        if exp is None:
            return []
        return client.search_runs([exp.experiment_id], max_results=1000,
                                  filter_string=f"tags.`tsfmicro.kind` = '{kind}'")

    try:
        deadline = time.monotonic() + 300
        while not [r for r in runs("trial") if r.data.tags.get(Tag.STATE) == "complete"]:
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial completed in time"
            time.sleep(1)
        (search_run,) = runs("search")
        assert search_run.info.status == "RUNNING"
        os.kill(driver.pid, signal.SIGTERM)
        driver.wait(120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        log.close()
    (stopped,) = runs("search")
    assert stopped.info.status == "KILLED" and stopped.data.tags[Tag.STATE] == "killed"
    assert "stopped before the search finished" in stopped.data.tags[Tag.REASON]
    assert not [r for r in runs("trial") if r.info.status == "RUNNING"]

    resumed = run_cli("search", "--resume", "stop4", "--storage-path", str(tmp_path / "runs"),
                      "--quiet", cwd=tmp_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    (again,) = runs("search")  # the same run, reopened, not a second one
    assert again.info.run_id == search_run.info.run_id
    assert again.info.status == "FINISHED" and again.data.tags[Tag.STATE] == "complete"
    assert "stopped before the search finished" in again.data.tags[Tag.PREVIOUS_REASON]
    assert Tag.REASON not in again.data.tags
    assert again.data.metrics[SearchMetric.N_COMPLETE] == 3
    assert figure_metric(FIGURE_BBC, "uf1") in again.data.metrics


def test_search_namespace_args_for_the_command_are_checked():
    from search.leaderboard import leaderboard_command

    args = SimpleNamespace(honest=False, search="x", bootstrap=0, tracking_uri="sqlite://",
                           experiment=None, storage_path=None, json=None, eval_mode="final",
                           metric="uf1")  # fmt: skip
    with pytest.raises(ConfigError, match="--bootstrap must be at least 1"):
        leaderboard_command(args)
