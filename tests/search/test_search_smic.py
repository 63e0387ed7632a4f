"""SMIC through `tsfmicro search` under a local Ray, on a synthetic SMIC copy in SMIC's own
layout (HS/<subject>/micro/<class>/<clip>/, no annotation): one trial of the micro preset for one
epoch completes in experiment tsfmicro/smic/hs, with a fold per subject."""

from __future__ import annotations

import subprocess
import sys

import pytest

from services import service_env


@pytest.mark.slow
def test_a_search_on_a_synthetic_smic_copy(tmp_path):
    from mlflow import MlflowClient

    from tsfmicro.synth import SynthConfig, write_dataset

    write_dataset(SynthConfig(dataset="smic", subjects=2, clips_per_subject=3),
                  tmp_path / "smic", workers=1)  # fmt: skip
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.run(
        [sys.executable, "-m", "tsfmicro.cli", "search", "--name", "smic1", "--dataset", "smic",
         "--root", str(tmp_path / "smic"), "--cache-dir", str(tmp_path / "cache"),
         "--preset", "micro", "--trials", "1", "--set", "epochs=1", "--no-register",
         "--tracking-uri", tracking, "--storage-path", str(tmp_path / "runs"), "--quiet"],
        cwd=tmp_path, env=service_env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name("tsfmicro/smic/hs")
    assert exp is not None, [e.name for e in client.search_experiments()]
    runs = client.search_runs([exp.experiment_id], max_results=100)
    trials = [r for r in runs if r.data.tags.get("tsfmicro.kind") == "trial"]
    folds = [r for r in runs if r.data.tags.get("tsfmicro.kind") == "fold"]
    assert len(trials) == 1 and trials[0].data.tags["tsfmicro.state"] == "complete"
    tags = trials[0].data.tags
    assert (tags["tsfmicro.dataset"], tags["tsfmicro.protocol"]) == ("smic", "hs")
    assert sorted(r.data.tags["tsfmicro.fold"] for r in folds) == ["s1", "s2"]
    assert 0.0 <= trials[0].data.metrics["final_uf1"] <= 1.0
    # one dataset: neither per-part nor held-out scores
    assert not [k for k in trials[0].data.metrics if k.startswith(("part/", "held_out/"))]


def test_a_search_accepts_every_dataset_the_library_has():
    """The search's data settings follow the library's registry (smic was once refused)."""
    from search.config import DataSpec
    from tsfmicro.datasets import list_datasets
    from tsfmicro.errors import ConfigError

    assert "smic" in list_datasets()
    for dataset in list_datasets():
        assert DataSpec(dataset=dataset, root="/data/copy").dataset == dataset
    with pytest.raises(ConfigError, match=r"unknown 'smicx'.*mmew, samm, smic"):
        DataSpec(dataset="smicx", root="/data/copy")
