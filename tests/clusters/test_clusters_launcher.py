"""The Ray cluster-launcher files (clusters/aws.yaml, clusters/gcp.yaml), checked offline.

Ray's own `prepare_config` (fills in the provider's defaults.yaml) and `validate_config`
(ray/autoscaler/ray-schema.json) are what `ray up` runs before it calls any cloud API; the
provider-specific bootstrap that follows (IAM roles, key pairs, security groups) is what needs
credentials, and is not called here. The network is blocked while they run, to prove it.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import shlex
import socket
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAUNCHER_FILES = {"aws": REPO / "clusters" / "aws.yaml", "gcp": REPO / "clusters" / "gcp.yaml"}


def locked_version(package: str) -> str:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    return next(p["version"] for p in lock["package"] if p["name"] == package)


def load(cloud: str) -> dict:
    return yaml.safe_load(LAUNCHER_FILES[cloud].read_text())


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def prepared(cloud: str) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(load(cloud))
    validate_config(config)
    return config


@pytest.mark.parametrize("cloud", sorted(LAUNCHER_FILES))
def test_launcher_file_passes_rays_own_validation_offline(cloud, no_network):
    config = prepared(cloud)
    # prepare_config merged the provider's defaults (fields the file does not set) ...
    assert {"rsync_exclude", "rsync_filter"} <= set(config)
    assert config["available_node_types"]["head"]["max_workers"] == 0
    # ... and none of the defaults' commands that install another Ray survived the merge.
    commands = [c for key in ("setup_commands", "head_setup_commands", "worker_setup_commands",
                              "head_start_ray_commands", "worker_start_ray_commands",
                              "initialization_commands") for c in config[key]]
    assert not [c for c in commands if re.search(r"install[^|;&]*\bray\b", c)], commands


@pytest.mark.parametrize("cloud", sorted(LAUNCHER_FILES))
def test_rays_validation_rejects_a_broken_launcher_file(cloud, no_network):
    from ray.autoscaler._private.util import prepare_config, validate_config

    typo = load(cloud)
    typo["max_worker"] = typo.pop("max_workers")  # misspelt top-level key
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        validate_config(prepare_config(typo))
    half_gpu = load(cloud)
    worker = next(n for n in half_gpu["available_node_types"] if n != "head")
    half_gpu["available_node_types"][worker]["resources"]["GPU"] = 0.5  # must be an integer
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(copy.deepcopy(half_gpu)))


def uncommented_keys(text: str) -> list[str]:
    """Mapping keys with no comment on their line or on the line just above."""
    lines = text.splitlines()
    missing = []

    def walk(node):
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                line = key.start_mark.line
                above = lines[line - 1].strip() if line else ""
                if "#" not in lines[line] and not above.startswith("#"):
                    missing.append(f"line {line + 1}: {key.value}")
                walk(value)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item)

    walk(yaml.compose(text))
    return missing


@pytest.mark.parametrize("cloud", sorted(LAUNCHER_FILES))
def test_every_key_has_a_comment(cloud):
    assert uncommented_keys(LAUNCHER_FILES[cloud].read_text()) == []


def test_the_comment_check_finds_a_bare_key():
    text = "a: 1  # fine\n# fine too\nb:\n  c: 2\n"
    assert uncommented_keys(text) == ["line 4: c"]


@pytest.mark.parametrize("cloud", sorted(LAUNCHER_FILES))
def test_head_does_no_gpu_work(cloud):
    config = load(cloud)
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"] == {"CPU": 0, "GPU": 0}  # no trial, fold or refit lands here
    start = " ".join(config["head_start_ray_commands"])
    assert "--num-cpus=0" in start and "--num-gpus=0" in start
    node = head["node_config"]
    if cloud == "aws":
        assert not re.match(r"(g|p)\d", node["InstanceType"]), node["InstanceType"]
    else:
        assert not re.match(r"(a2|a3|g2)-", node["machineType"]) and "guestAccelerators" not in node
    # and the head is not given the workers' GPUs
    assert not any("--gpus" in option for option in config["docker"].get("head_run_options", []))
    assert not any("--gpus" in option for option in config["docker"]["run_options"])


# Top-level request fields of EC2 RunInstances and of Compute Engine instances.insert that these
# files may use; Ray's schema leaves node_config free-form, so a misspelt field would only fail
# at `ray up`.
EC2_FIELDS = {"InstanceType", "ImageId", "InstanceMarketOptions", "BlockDeviceMappings",
              "SubnetIds", "SecurityGroupIds", "IamInstanceProfile", "KeyName",
              "TagSpecifications", "Placement"}
GCE_FIELDS = {"machineType", "disks", "metadata", "scheduling", "guestAccelerators",
              "networkInterfaces", "serviceAccounts", "labels", "tags"}


def test_aws_workers_are_g5_g6_with_spot():
    types = load("aws")["available_node_types"]
    workers = {name: t for name, t in types.items() if name != "head"}
    families = {t["node_config"]["InstanceType"].split(".")[0] for t in workers.values()}
    assert families == {"g5", "g6"}
    spot = [n for n, t in workers.items()
            if t["node_config"].get("InstanceMarketOptions", {}).get("MarketType") == "spot"]
    assert spot and len(spot) < len(workers)  # spot workers, and an on-demand floor
    assert any(workers[n]["min_workers"] >= 1 for n in set(workers) - set(spot))
    for t in workers.values():
        assert t["resources"]["GPU"] == 1  # g5.xlarge and g6.xlarge have one GPU each
    for t in types.values():
        assert set(t["node_config"]) <= EC2_FIELDS


def test_gcp_workers_are_l4_or_a100():
    types = load("gcp")["available_node_types"]
    workers = {name: t for name, t in types.items() if name != "head"}
    machines = {t["node_config"]["machineType"] for t in workers.values()}
    assert machines == {"g2-standard-8", "a2-highgpu-1g"}  # one L4 / one A100 built in
    for t in workers.values():
        assert t["resources"]["GPU"] == 1
        assert t["node_config"]["scheduling"]["onHostMaintenance"] == "TERMINATE"  # GPU VMs
    assert any(t["node_config"]["scheduling"].get("provisioningModel") == "SPOT"
               for t in workers.values())
    for t in types.values():
        assert set(t["node_config"]) <= GCE_FIELDS


@pytest.mark.parametrize("cloud", sorted(LAUNCHER_FILES))
def test_nodes_run_the_pinned_image_with_token_auth_and_shared_storage(cloud):
    config = load(cloud)
    ray_version = locked_version("ray")
    assert config["docker"]["image"] == f"IMAGE_REGISTRY/tsfmicro:ray{ray_version}-py311"
    assert "head_image" not in config["docker"] and "worker_image" not in config["docker"]
    options = config["docker"]["run_options"]
    assert "--env RAY_AUTH_MODE=token" in options
    token_path = next(o.split("=", 1)[1] for o in options if "RAY_AUTH_TOKEN_PATH=" in o)
    # the token file from `ray get-auth-token --generate` is synced to that path (HOME=/home/ray)
    assert config["file_mounts"] == {"~/.ray/auth_token": "~/.ray/auth_token"}
    assert token_path == "/home/ray/.ray/auth_token"
    volume = next(o for o in options if o.startswith("--volume"))
    host_path, container_path = volume.split()[1].split(":")
    assert container_path == "/mnt/shared"  # the --storage-path of clusters/README.md
    assert any(host_path in c and "mount" in c for c in config["initialization_commands"])
    assert config["docker"]["worker_run_options"] == ["--gpus all"]


def test_the_readme_documents_every_placeholder():
    readme = (REPO / "clusters" / "README.md").read_text()
    for path in LAUNCHER_FILES.values():
        for word in set(re.findall(r"\b[A-Z][A-Z0-9]+(?:_[A-Z0-9]+)+\b", path.read_text())):
            if not word.startswith(("RAY_", "MLFLOW_")):  # environment variables
                assert f"`{word}`" in readme, f"{path.name}: {word} is not explained"


def readme_commands(prefix: str) -> list[str]:
    """The README's shell commands (continuations joined) that start with `prefix`."""
    readme = (REPO / "clusters" / "README.md").read_text()
    found = []
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip().removesuffix("&").strip()
            if line.startswith(prefix):
                found.append(line)
    return found


def test_the_readmes_ray_job_commands_parse_with_rays_cli():
    from ray.dashboard.modules.job.cli import job_cli_group

    commands = readme_commands("ray job ")
    assert {c.split()[2] for c in commands} == {"submit", "logs", "status"}
    for command in commands:
        words = shlex.split(command)
        sub = job_cli_group.commands[words[2]]
        context = sub.make_context(words[2], words[3:])  # raises on an unknown flag
        assert context.params["address"] == "http://127.0.0.1:8265"  # the forwarded port


def test_the_readmes_searches_are_valid_cluster_searches():
    from search.cli import build_search_config
    from tsfmicro.cli import build_parser

    entrypoints = [c.split(" -- ", 1)[1] for c in readme_commands("ray job submit")]
    assert len(entrypoints) == 3  # the launcher's, KubeRay's, and a resume
    for entrypoint in entrypoints:
        words = shlex.split(entrypoint)
        assert words[:4] == ["python", "-m", "tsfmicro.cli", "search"]
        args = build_parser().parse_args(words[3:])
        assert args.storage_path == "/mnt/shared/runs"
        if args.resume:
            continue
        cfg = build_search_config(args)
        assert cfg.ray_address == "auto"
        assert cfg.data.data_dir.startswith("/mnt/shared/")
        assert cfg.data.cache_dir.startswith("/mnt/shared/")
        # four slots per GPU node (--fold-gpus 0.25): a trial fits on one node after a loss
        assert cfg.resources.fold_parallelism * cfg.resources.fold_gpus <= 1


@pytest.mark.parametrize(("cloud", "cpus", "gpus"), [("aws", 32, 8), ("gcp", 72, 8)])
def test_the_readmes_launcher_search_is_planned_for_the_most_workers(cloud, cpus, gpus):
    """The README's launcher search declares the most the autoscaler may start (the sum over
    worker types of max_workers x their CPUs and GPUs, within the cluster's max_workers), and
    plans trials side by side for it, not for the one worker up at the start."""
    from search.capacity import capacity_of, fit_capacity
    from search.cli import build_search_config
    from tsfmicro.cli import build_parser

    config = load(cloud)
    workers = [t for name, t in config["available_node_types"].items()
               if name != config["head_node_type"]]
    assert sum(t["max_workers"] for t in workers) <= config["max_workers"]
    most = [sum(t["max_workers"] * t["resources"][k] for t in workers) for k in ("CPU", "GPU")]
    assert most == [cpus, gpus]
    (launcher,) = [c.split(" -- ", 1)[1] for c in readme_commands("ray job submit")
                   if "127.0.0.1:5000" in c]
    readme = (REPO / "clusters" / "README.md").read_text()
    assert f"--cluster-cpus {cpus} --cluster-gpus {gpus}" in readme.replace("\\\n", " ")
    args = build_parser().parse_args(shlex.split(launcher)[3:])
    args.cluster_cpus, args.cluster_gpus = cpus, gpus  # gcp.yaml: the README names its figures
    cfg = build_search_config(args)
    one_worker = {"CPU": workers[0]["resources"]["CPU"], "GPU": 1.0}
    parallelism, concurrency = fit_capacity(cfg, 26, capacity_of(cfg, one_worker))
    assert concurrency == gpus > 1  # a trial per GPU node, side by side
    assert concurrency * parallelism * cfg.resources.fold_gpus == gpus
    # without the declared size, the one worker up would have run one trial at a time
    bare = cfg.replace(resources=dataclasses.replace(cfg.resources, cluster_cpus=None,
                                                     cluster_gpus=None))
    assert fit_capacity(bare, 26, capacity_of(bare, one_worker))[1] == 1
