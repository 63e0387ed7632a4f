"""A search whose folds are held-out datasets (`--dataset composite --protocol lodo`) under a
local Ray, on synthetic CASME II and SAMM copies: the objective is the cross-dataset score,
the trial runs name the held-out datasets and hold each one's scores, and the CLI
leaderboard shows them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from services import service_env


def run_cli(*args: str, cwd, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tsfmicro.cli", *args], cwd=cwd,
                          env=service_env(), capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_a_leave_one_dataset_out_search(tmp_path):
    from mlflow import MlflowClient

    from tsfmicro.synth import SynthConfig, write_dataset

    for dataset, classes in (("casme2", ("disgust", "happiness", "surprise")),
                             ("samm", ("anger", "happiness", "surprise"))):  # fmt: skip
        write_dataset(SynthConfig(dataset=dataset, subjects=2, clips_per_subject=3,
                                  classes=classes), tmp_path / "parts" / dataset)  # fmt: skip
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_cli("search", "--name", "xlodo", "--dataset", "composite", "--root",
                   str(tmp_path / "parts"), "--protocol", "lodo", "--cache-dir",
                   str(tmp_path / "cache"), "--preset", "micro", "--trials", "1", "--set",
                   "epochs=1", "--no-register", "--tracking-uri", tracking, "--storage-path",
                   str(tmp_path / "runs"), "--quiet", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name("tsfmicro/composite/lodo")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    trials = [r for r in runs if r.data.tags.get("tsfmicro.kind") == "trial"]
    folds = [r for r in runs if r.data.tags.get("tsfmicro.kind") == "fold"]
    assert len(trials) == 1 and trials[0].data.tags["tsfmicro.state"] == "complete"
    assert trials[0].data.tags["tsfmicro.held_out"] == "casme2,samm"
    assert sorted(r.data.tags["tsfmicro.fold"] for r in folds) == ["casme2", "samm"]
    m = trials[0].data.metrics
    for dataset in ("casme2", "samm"):
        assert 0.0 <= m[f"held_out/{dataset}/final_uf1"] <= 1.0
    # the objective pools both held-out datasets
    assert m["objective"] == m["final_uf1"]
    board = run_cli("leaderboard", "--tracking-uri", tracking, "--search", "xlodo", cwd=tmp_path)
    assert board.returncode == 0, board.stderr[-2000:]
    assert "held out (UF1)" in board.stdout
    assert f"casme2 {m['held_out/casme2/final_uf1']:.3f}, samm" in board.stdout
