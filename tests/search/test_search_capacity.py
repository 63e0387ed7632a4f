"""A search's plan on a cluster that grows: sized for the declared maximum (--cluster-cpus,
--cluster-gpus) or, with nothing declared and no room up now, waiting rather than failing
(search.capacity); the trials' placement groups are the demand an autoscaler adds nodes for.

The last test runs a real search on a loopback cluster whose head holds no CPUs and whose
worker nodes join only after the search has started (what the KubeRay config looks like with
its GPU workers scaled to 0)."""

from __future__ import annotations

import json
import sys
import time
import uuid

import pytest

from search.capacity import capacity_note, capacity_of, fit_capacity
from search.cli import build_search_config
from search.config import Resources, SearchConfig
from search.plan import search_plan
from search.trial import fold_placement
from tsfmicro.cli import build_parser
from tsfmicro.errors import ConfigError


def cluster_cfg(**resources) -> SearchConfig:
    return SearchConfig(name="grow", trials=8, ray_address="auto",
                        resources=Resources(**resources))


def test_a_declared_size_plans_trials_side_by_side_with_nothing_up():
    """KubeRay's config: a head with 0 CPUs, GPU workers (7 CPUs, 1 GPU) scaled to 0, at most
    4: declared as 28 CPUs and 4 GPUs, the plan fills them although no node is up."""
    cfg = cluster_cfg(fold_parallelism=4, cluster_cpus=28, cluster_gpus=4)
    cap = capacity_of(cfg, {})  # nothing up: the head advertises no CPU
    assert (cap.cpus, cap.gpus, cap.present_cpus, cap.present_gpus) == (28, 4, 0, 0)
    placed = cfg.replace(resources=cfg.resources.resolved(cap.gpus))
    assert placed.resources.fold_gpus == 0.25  # GPU folds, from the declared GPUs
    parallelism, concurrency = fit_capacity(placed, 26, cap)
    assert (parallelism, concurrency) == (4, 4)  # 16 GPU fold slots: 4 trials of 4 folds
    note = capacity_note(placed, cap, parallelism, concurrency)
    assert "planned for 28 CPUs, 4 GPUs (declared)" in note
    assert "0 CPUs and 0 GPUs up now" in note and "wait in their placement groups" in note
    # what each of those trials asks Ray for: its own process in no bundle, 4 GPU fold bundles
    assert fold_placement(0.0, 1.0, 0.25, parallelism) == [{}] + [{"CPU": 1.0, "GPU": 0.25}] * 4


def test_the_nodes_up_size_the_plan_when_nothing_is_declared():
    cfg = cluster_cfg(fold_parallelism=4, fold_gpus=0.25)
    cap = capacity_of(cfg, {"CPU": 8.0, "GPU": 2.0})
    assert fit_capacity(cfg, 26, cap) == (4, 2)
    assert capacity_note(cfg, cap, 4, 2) == ""  # fits the nodes up: nothing to say
    # a declared figure replaces the one up now, the other is read from the nodes
    cfg = cluster_cfg(fold_parallelism=4, fold_gpus=0.25, cluster_gpus=1)
    assert fit_capacity(cfg, 26, capacity_of(cfg, {"CPU": 8.0, "GPU": 2.0})) == (4, 1)


def test_no_room_and_nothing_declared_waits_with_the_given_plan():
    """Nothing up and no declared size: not an error on a cluster, the trials wait."""
    cap = capacity_of(cluster_cfg(), {"CPU": 0.0})
    cfg = cluster_cfg(fold_gpus=0.0)
    assert fit_capacity(cfg, 6, cap) == (1, 1)
    cfg = cluster_cfg(fold_gpus=0.0, fold_parallelism=3, concurrency=2)
    assert fit_capacity(cfg, 6, cap) == (3, 2)
    note = capacity_note(cfg, cap, 3, 2)
    assert "not room for the plan (6 CPUs, 0 GPUs)" in note
    assert "--cluster-cpus" in note and "give --fold-gpus" in note


def test_a_declared_size_that_cannot_hold_a_fold_is_refused():
    with pytest.raises(ConfigError, match=r"declared cluster \(0.5 GPUs\) cannot hold"):
        cluster_cfg(fold_gpus=1.0, cluster_gpus=0.5)  # refused with the settings
    with pytest.raises(ConfigError, match=r"declared cluster \(1 CPUs\) cannot hold"):
        cluster_cfg(fold_cpus=2.0, cluster_cpus=1)
    cfg = cluster_cfg(cluster_cpus=4, cluster_gpus=0.1)  # GPU folds take 0.25 by default
    with pytest.raises(ConfigError, match=r"declared cluster \(0.1 GPUs\) cannot hold"):
        cfg.resources.resolved(capacity_of(cfg, {}).gpus)  # as the search places its folds
    local = SearchConfig(name="here", resources=Resources(fold_gpus=1.0))
    with pytest.raises(ConfigError, match="cannot fit one fold"):  # a local Ray never grows
        fit_capacity(local, 6, capacity_of(local, {"CPU": 2.0}))
    # and a local search's plan is its machine's: no note about nodes joining
    local = SearchConfig(name="here", resources=Resources(fold_gpus=0.0, fold_parallelism=4))
    cap = capacity_of(local, {"CPU": 2.0})
    assert fit_capacity(local, 6, cap) == (4, 1)
    assert capacity_note(local, cap, 4, 1) == ""


def test_cluster_size_flags_need_a_cluster_and_plan_in_check(capsys):
    def parse(*flags):
        return build_search_config(build_parser().parse_args(["search", *flags]))

    with pytest.raises(ConfigError, match="a local Ray never does: give --ray-address"):
        parse("--cluster-cpus", "8")
    with pytest.raises(ConfigError, match=r"Resources.cluster_gpus must be >= 0"):
        parse("--ray-address", "auto", "--cluster-gpus", "-1")
    with pytest.raises(ConfigError, match=r"cluster \(0.5 GPUs\) cannot hold one fold task \(1,"):
        parse("--ray-address", "auto", "--cluster-gpus", "0.5", "--fold-gpus", "1")
    cfg = parse("--ray-address", "auto", "--dataset", "toy", "--trials", "4",
                "--cluster-cpus", "2", "--cluster-gpus", "2", "--fold-parallelism", "1")
    assert (cfg.resources.cluster_cpus, cfg.resources.cluster_gpus) == (2, 2)
    assert SearchConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # resume
    plan = search_plan(cfg, [])  # --check: no Ray started, the declared size is the plan's
    assert plan["resources"]["cluster"]["cpus"] == 2
    assert plan["resources"]["fold_gpus_here"] == 0.25
    assert plan["resources"]["placement"]["trials_at_once"] == 2


# ---- worker nodes that join after the search started ---------------------------------------


# Through the `ray` CLI, as a user on the cluster would (and with the test cluster's own
# authentication, services.ray).


def ray_status(address: str) -> str:
    from services import ray

    return ray("status", "--address", address, check=False).stdout


def job_state(url: str, job_id: str) -> str:
    """The job's status as `ray job status` prints it (PENDING and RUNNING as "Status for job
    'ID': RUNNING", the ends in words of their own), or the CLI's output where it says none."""
    from services import ray

    out = ray("job", "status", "--address", url, job_id, check=False)
    text = out.stdout + out.stderr
    ends = {f"Job '{job_id}' succeeded": "SUCCEEDED", f"Job '{job_id}' failed": "FAILED",
            f"Job '{job_id}' was stopped": "STOPPED"}
    for words, state in ends.items():
        if words in text:
            return state
    words = text.split(f"Status for job '{job_id}': ")
    return words[1].split()[0] if len(words) > 1 else text[-2000:]


DONE = ("SUCCEEDED", "FAILED", "STOPPED")


def job_logs(url: str, job_id: str) -> str:
    from services import ray

    out = ray("job", "logs", "--address", url, job_id, check=False)
    return out.stdout + out.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_search_waits_for_worker_nodes_that_join_after_it_started(tmp_path):
    """A head with no CPUs and no worker: the search, submitted with the cluster's declared
    maximum (2 CPUs, 2 GPUs), plans two trials side by side, creates their placement groups,
    which stay pending (Ray's autoscaler view lists them as demand), and waits; a worker of
    that size joins (one node keeps the test cheap), and the trials run on it."""
    from mlflow import MlflowClient

    from services import killable_ray_cluster, late_workers, submit_job

    shared = tmp_path / "shared"
    shared.mkdir()
    tracking = f"sqlite:///{shared / 'mlflow.db'}"
    job_id = f"tsfmicro-late-{uuid.uuid4().hex[:8]}"
    with killable_ray_cluster([], tmp_path / "ray") as (address, url, _):
        entrypoint = [
            sys.executable, "-m", "tsfmicro.cli", "search", "--ray-address", "auto",
            "--name", "late", "--dataset", "toy", "--toy-subjects", "3",
            "--toy-per-subject", "4", "--preset", "micro", "--trials", "2",
            "--set", "epochs=1", "--no-register", "--fold-parallelism", "1",
            "--cluster-cpus", "2", "--cluster-gpus", "2",
            "--tracking-uri", tracking, "--storage-path", str(shared / "runs"),
            "--json", str(shared / "outcome.json"),
        ]
        runtime_env = {"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}}
        submitted = submit_job(url, ["--submission-id", job_id, "--no-wait",
                                     "--runtime-env-json", json.dumps(runtime_env), "--",
                                     *entrypoint], timeout=120)
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        # the search is up and its two trials' groups wait: the demand an autoscaler reads
        deadline, status = time.monotonic() + 300, ""
        while time.monotonic() < deadline:
            state = job_state(url, job_id)
            assert state not in DONE, job_logs(url, job_id)[-4000:]  # it waits, not fails
            status = ray_status(address)
            if "2+ pending placement groups" in status:
                break
            time.sleep(5)
        assert "2+ pending placement groups" in status, status
        assert "'GPU': 0.25" in status and "'CPU': 1.0" in status, status
        logs = job_logs(url, job_id)
        assert "planned for 2 CPUs, 2 GPUs (declared); 0 CPUs and 0 GPUs up now" in logs, logs
        with late_workers(address, [{"cpus": 2, "gpus": 2}], tmp_path / "ray") as nodes:
            deadline = time.monotonic() + 600
            while (state := job_state(url, job_id)) not in DONE:
                assert time.monotonic() < deadline, job_logs(url, job_id)[-4000:]
                time.sleep(5)
            assert state == "SUCCEEDED", f"{state}\n{job_logs(url, job_id)[-4000:]}"
            late = {node.node_id() for node in nodes}
            assert None not in late
    outcome = json.loads((shared / "outcome.json").read_text())
    assert [t["state"] for t in outcome["trials"]] == ["complete", "complete"]
    assert outcome["plan"]["trials_at_once"] == 2
    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name("tsfmicro/toy/3class")
    folds = client.search_runs([exp.experiment_id], "tags.`tsfmicro.kind` = 'fold'")
    assert len(folds) == 6
    assert {r.data.params["worker"] for r in folds} == late  # every fold on the late node
