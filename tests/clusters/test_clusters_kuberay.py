"""The Kubernetes manifests of clusters/kuberay/, validated offline.

- RayCluster and RayJob: against the openAPIV3Schema of the KubeRay v1.7.0 CRDs kept in
  clusters/schemas/ (jsonschema), plus the unknown fields that the API server's strict field
  validation would reject (a plain JSON-schema check lets them through); their pod templates
  also as core PodTemplates with kubernetes-validate (strict).
- Namespace, PersistentVolumeClaim, Deployment, Service: kubernetes-validate, strict.
- What they must say: the pinned Ray, token auth in every Ray container, a GPU worker group, the
  shared volume under --storage-path, the MLflow Service reachable by the names it allows.
"""

from __future__ import annotations

import functools
import http.client
import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from services import BIN, free_port, service_env, wait_for_http

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "clusters" / "kuberay"
KUBERAY = "kuberay-v1.7.0"
CRDS = REPO / "clusters" / "schemas" / KUBERAY
KUBERNETES_VERSIONS = ("1.30", "1.37")  # the oldest and newest that these manifests target
NAMESPACE = "tsfmicro"
TOKEN_SECRET = ("tsfmicro-ray-token", "auth_token")


def locked_version(package: str) -> str:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    return next(p["version"] for p in lock["package"] if p["name"] == package)


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def every_document() -> list[tuple[str, dict]]:
    return [(path.name, doc) for path in sorted(MANIFESTS.glob("*.yaml"))
            for doc in documents(path.name)]


def one(name: str, kind: str) -> dict:
    (doc,) = [d for d in documents(name) if d["kind"] == kind]
    return doc


@functools.cache
def crd_schema(kind: str, version: str) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are 1-2 MB of YAML
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=loader)
        if crd["spec"]["names"]["kind"] == kind:
            return next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"]
                        if v["name"] == version)
    raise LookupError(f"no CRD for {kind} in {CRDS}")


def unknown_fields(value, schema: dict, path: str = "") -> list[str]:
    """Fields the schema does not declare where it declares its fields (what the API server
    prunes, or rejects under strict field validation)."""
    found = []
    if isinstance(value, dict):
        props = schema.get("properties")
        if props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
            extra = schema.get("additionalProperties")
            for key, item in value.items():
                if key in props:
                    found += unknown_fields(item, props[key], f"{path}.{key}")
                elif isinstance(extra, dict):
                    found += unknown_fields(item, extra, f"{path}.{key}")
                elif not extra:
                    found.append(f"{path}.{key}")
        elif isinstance(schema.get("additionalProperties"), dict):
            for key, item in value.items():
                found += unknown_fields(item, schema["additionalProperties"], f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{path}[{i}]")
    return found


def crd_errors(doc: dict) -> list[str]:
    schema = crd_schema(doc["kind"], doc["apiVersion"].split("/")[1])
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    errors += [f"unknown field {p}" for p in unknown_fields(doc, schema)]
    # metadata is checked by the API server itself, not by the CRD schema
    errors += [f"unknown field .metadata.{k}" for k in set(doc["metadata"])
               - {"name", "namespace", "labels", "annotations"}]
    return errors


def k8s_errors(doc: dict) -> list[str]:
    errors = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(map(str, e.path))
            errors.append(f"Kubernetes {version}: {where}: {e.message.splitlines()[0]}")
    return errors


def pod_templates(doc: dict) -> dict[str, dict]:
    """Every pod template of a RayCluster or RayJob, by where it is."""
    spec = doc["spec"]
    templates = {}
    if doc["kind"] == "RayJob":
        if "submitterPodTemplate" in spec:
            templates["submitter"] = spec["submitterPodTemplate"]
        spec = spec["rayClusterSpec"]
    templates["head"] = spec["headGroupSpec"]["template"]
    for group in spec["workerGroupSpecs"]:
        templates[f"worker group {group['groupName']}"] = group["template"]
    return templates


RAY_MANIFESTS = [("raycluster.yaml", "RayCluster"), ("rayjob.yaml", "RayJob")]


# ---- the validators, and that they do catch mistakes ----------------------------------------

def test_in_repo_crds_are_the_shared_kuberay_release():
    shared = Path(os.environ.get("TSFMICRO_SHARED", REPO.parent / "shared"))
    folder = shared / "schemas" / KUBERAY
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (the shared reference folder is not part of the "
                    "repository; set TSFMICRO_SHARED to compare against it)")
    for name in ("ray.io_rayclusters.yaml", "ray.io_rayjobs.yaml"):
        assert (CRDS / name).read_bytes() == (folder / name).read_bytes()


@pytest.mark.parametrize(("name", "kind"), RAY_MANIFESTS)
def test_ray_manifest_validates_against_the_kuberay_crd(name, kind):
    doc = one(name, kind)
    assert doc["apiVersion"] == "ray.io/v1"
    assert crd_errors(doc) == []


@pytest.mark.parametrize(("name", "kind"), RAY_MANIFESTS)
def test_pod_templates_validate_as_kubernetes_pod_templates(name, kind):
    for where, template in pod_templates(one(name, kind)).items():
        wrapped = {"apiVersion": "v1", "kind": "PodTemplate",
                   "metadata": {"name": "check", "namespace": NAMESPACE}, "template": template}
        assert k8s_errors(wrapped) == [], where


@pytest.mark.parametrize(("name", "kind"), [
    ("storage.yaml", "Namespace"), ("storage.yaml", "PersistentVolumeClaim"),
    ("mlflow.yaml", "PersistentVolumeClaim"), ("mlflow.yaml", "Deployment"),
    ("mlflow.yaml", "Service"),
])
def test_core_manifest_validates_with_kubernetes_validate(name, kind):
    assert k8s_errors(one(name, kind)) == []


def test_every_manifest_is_checked():
    kinds = sorted(doc["kind"] for _, doc in every_document())
    assert kinds == sorted(["Namespace", "PersistentVolumeClaim", "PersistentVolumeClaim",
                            "Deployment", "Service", "RayCluster", "RayJob"])


def test_the_validators_catch_mistakes():
    cluster = one("raycluster.yaml", "RayCluster")
    typo = yaml.safe_load(yaml.safe_dump(cluster))
    group = typo["spec"]["workerGroupSpecs"][0]
    group["rayStartParam"] = group.pop("rayStartParams")  # unknown field
    assert crd_errors(typo) == ["unknown field .spec.workerGroupSpecs[0].rayStartParam"]
    wrong_type = yaml.safe_load(yaml.safe_dump(cluster))
    wrong_type["spec"]["workerGroupSpecs"][0]["replicas"] = "two"
    assert any("replicas" in e for e in crd_errors(wrong_type))
    deployment = one("mlflow.yaml", "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["envv"] = []
    assert k8s_errors(deployment)


# ---- what the manifests must say -------------------------------------------------------------

def test_every_object_lives_in_one_namespace():
    for name, doc in every_document():
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACE
        else:
            assert doc["metadata"]["namespace"] == NAMESPACE, name


def test_ray_and_mlflow_versions_match_the_lock():
    ray_version, mlflow_version = locked_version("ray"), locked_version("mlflow")
    image = f"IMAGE_REGISTRY/tsfmicro:ray{ray_version}-py311"
    for name, kind in RAY_MANIFESTS:
        doc = one(name, kind)
        spec = doc["spec"]["rayClusterSpec"] if kind == "RayJob" else doc["spec"]
        assert spec["rayVersion"] == ray_version
        for where, template in pod_templates(doc).items():
            for container in template["spec"]["containers"]:
                assert container["image"] == image, (name, where)
    (server,) = one("mlflow.yaml", "Deployment")["spec"]["template"]["spec"]["containers"]
    # the server runs the MLflow the clients (the search driver, tsfmicro pull) are pinned to
    assert server["image"] == f"ghcr.io/mlflow/mlflow:v{mlflow_version}-full"


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize(("name", "kind"), RAY_MANIFESTS)
def test_every_ray_container_uses_token_auth_from_the_secret(name, kind):
    doc = one(name, kind)
    spec = doc["spec"]["rayClusterSpec"] if kind == "RayJob" else doc["spec"]
    containers = [(where, c) for where, t in pod_templates(doc).items()
                  for c in t["spec"]["containers"]]
    containers.append(("autoscaler", spec["autoscalerOptions"]))
    assert spec["enableInTreeAutoscaling"] is True
    for where, container in containers:
        env = env_of(container)
        assert env["RAY_AUTH_MODE"].get("value") == "token", where
        ref = env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == TOKEN_SECRET, where
    assert "authOptions" not in spec  # one mechanism only: the operator would add a second


@pytest.mark.parametrize(("name", "kind"), RAY_MANIFESTS)
def test_head_does_no_work_and_workers_have_gpus(name, kind):
    doc = one(name, kind)
    spec = doc["spec"]["rayClusterSpec"] if kind == "RayJob" else doc["spec"]
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert head["rayStartParams"]["num-gpus"] == "0"
    for container in head["template"]["spec"]["containers"]:
        assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    gpu_groups = [g for g in spec["workerGroupSpecs"]
                  if int(g["template"]["spec"]["containers"][0]["resources"]["limits"]
                         .get("nvidia.com/gpu", 0)) >= 1]
    assert gpu_groups
    for group in gpu_groups:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def mounts(template: dict) -> dict[str, str]:
    """{mount path: claim name} of the persistent volume claims a pod template mounts."""
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
              for v in template["spec"].get("volumes", []) if "persistentVolumeClaim" in v}
    return {m["mountPath"]: claims[m["name"]]
            for c in template["spec"]["containers"] for m in c.get("volumeMounts", [])
            if m["name"] in claims}


def search_args(entrypoint: str):
    """The parsed `tsfmicro search` flags of a job entrypoint (the CLI's own parser)."""
    from tsfmicro.cli import build_parser

    words = shlex.split(entrypoint)
    assert words[:4] == ["python", "-m", "tsfmicro.cli", "search"], words[:4]
    return build_parser().parse_args(words[3:])


def test_ray_pods_share_one_readwritemany_volume_under_the_storage_path():
    (claim,) = [d for d in documents("storage.yaml") if d["kind"] == "PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for name, kind in RAY_MANIFESTS:
        doc = one(name, kind)
        templates = {w: t for w, t in pod_templates(doc).items() if w != "submitter"}
        for where, template in templates.items():
            assert mounts(template) == {"/mnt/shared": claim["metadata"]["name"]}, where
    args = search_args(one("rayjob.yaml", "RayJob")["spec"]["entrypoint"])
    for path in (args.storage_path, args.data_dir, args.cache_dir):
        assert path.startswith("/mnt/shared/"), path


def test_rayjob_runs_the_raycluster_spec():
    assert (one("rayjob.yaml", "RayJob")["spec"]["rayClusterSpec"]
            == one("raycluster.yaml", "RayCluster")["spec"])


def test_rayjob_entrypoint_is_a_search_sized_to_survive_a_lost_pod():
    from search.cli import build_search_config

    job = one("rayjob.yaml", "RayJob")
    args = search_args(job["spec"]["entrypoint"])
    cfg = build_search_config(args)  # the search's own validation
    # a stopped job's driver has the time to end cleanly (test_search_cluster.py does it)
    runtime_env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    assert runtime_env["env_vars"]["RAY_JOB_STOP_WAIT_TIME_S"] == "120"
    assert cfg.ray_address == "auto"
    assert cfg.tracking_uri == service_url()
    # one trial's folds fit on the GPU pods left after losing one (clusters/README.md)
    group = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    slots = min(int(limits["cpu"]) // cfg.resources.fold_cpus,
                int(limits["nvidia.com/gpu"]) / cfg.resources.fold_gpus)
    assert cfg.resources.fold_parallelism <= slots * (group["replicas"] - 1)
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    submitter = job["spec"]["submitterPodTemplate"]["spec"]
    assert submitter["restartPolicy"] == "Never"



def test_searches_are_planned_for_the_worker_groups_most_with_no_pod_up():
    """The head holds no CPUs and the GPU group scales to 0: the RayJob's search and the
    README's KubeRay one declare the group's most (maxReplicas x each pod's CPUs and GPUs),
    and with nothing up plan trials side by side that fill it (search.capacity)."""
    from search.capacity import capacity_of, fit_capacity
    from search.cli import build_search_config
    from tsfmicro.cli import build_parser

    spec = one("raycluster.yaml", "RayCluster")["spec"]
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    (group,) = spec["workerGroupSpecs"]
    assert group["minReplicas"] == 0
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    most = (group["maxReplicas"] * int(limits["cpu"]),
            group["maxReplicas"] * int(limits["nvidia.com/gpu"]))
    readme = (REPO / "clusters" / "README.md").read_text()
    submitted = [line.split(" -- ", 1)[1] for line in readme.replace("\\\n", " ").splitlines()
                 if line.startswith("ray job submit") and "mlflow.tsfmicro.svc" in line]
    entrypoints = [one("rayjob.yaml", "RayJob")["spec"]["entrypoint"], *submitted]
    assert len(entrypoints) == 2
    for entrypoint in entrypoints:
        cfg = build_search_config(build_parser().parse_args(shlex.split(entrypoint)[3:]))
        r = cfg.resources
        assert (r.cluster_cpus, r.cluster_gpus) == most, entrypoint
        cap = capacity_of(cfg, {})  # no pod up
        parallelism, concurrency = fit_capacity(cfg, 26, cap)  # CASME II: 26 subjects
        assert concurrency == group["maxReplicas"] > 1  # one trial per pod, side by side
        assert concurrency * parallelism * r.fold_gpus == most[1]

# ---- the tracking server --------------------------------------------------------------------

def service_url() -> str:
    service = one("mlflow.yaml", "Service")
    port = service["spec"]["ports"][0]["port"]
    return f"http://{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{port}"


def server_container() -> dict:
    (container,) = one("mlflow.yaml", "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def server_options() -> dict[str, str]:
    options = {}
    for arg in server_container()["args"]:
        key, _, value = arg.partition("=")
        options[key] = value
    return options


def allowed_hosts() -> list[str]:
    return [h.strip() for h in server_options()["--allowed-hosts"].split(",")]


def test_mlflow_service_selects_the_server_and_every_ray_pod_can_name_it():
    deployment, service = one("mlflow.yaml", "Deployment"), one("mlflow.yaml", "Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    port_names = {p["name"]: p["containerPort"] for p in server_container()["ports"]}
    (port,) = service["spec"]["ports"]
    assert port_names[port["targetPort"]] == int(server_options()["--port"])
    url = service_url()
    host = url.removeprefix("http://")
    name = service["metadata"]["name"]
    for alias in (name, f"{name}.{NAMESPACE}", f"{name}.{NAMESPACE}.svc", host.split(":")[0]):
        assert f"{alias}:{port['port']}" in allowed_hosts()
    # every Ray container is told where the server is, by a name the server accepts
    for name_, kind in RAY_MANIFESTS:
        for where, template in pod_templates(one(name_, kind)).items():
            if where != "submitter":
                for container in template["spec"]["containers"]:
                    assert env_of(container)["MLFLOW_TRACKING_URI"]["value"] == url, where


def test_mlflow_server_arguments_parse_with_the_pinned_mlflow():
    from mlflow.cli import server

    container = server_container()
    assert container["command"] == ["mlflow", "server"]
    context = server.make_context("server", list(container["args"]))
    params = context.params
    assert params["app_name"] == "basic-auth"  # authentication: MLflow's basic-auth app
    assert params["host"] == "0.0.0.0"
    destination = params["artifacts_destination"]
    volume_mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert destination in volume_mounts  # the artifact store is the mounted claim
    env = env_of(container)
    # the database backend comes from a Secret (a Postgres URI); so do the admin's credentials
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"]
    for name in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD",
                 "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert "secretKeyRef" in env[name]["valueFrom"], name
    config_dir = os.path.dirname(env["MLFLOW_AUTH_CONFIG_PATH"]["value"])
    assert config_dir in volume_mounts


def test_basic_auth_template_loads_as_mlflow_auth_settings(monkeypatch):
    import importlib.util

    import mlflow

    # mlflow.server.auth's package imports Flask-WTF (in the server image, not in uv.lock):
    # load only its settings reader, the code the server runs on this file
    path = Path(mlflow.__file__).parent / "server" / "auth" / "config.py"
    spec = importlib.util.spec_from_file_location("mlflow_auth_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    read_auth_config = module.read_auth_config

    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(MANIFESTS / "basic_auth.ini"))
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "x" * 16)
    config = read_auth_config()
    assert config.database_uri.startswith("postgresql+psycopg2://")
    assert config.default_permission == "READ"
    assert config.authorization_function.endswith(":authenticate_request_basic_auth")


@pytest.mark.slow
def test_a_tracking_server_with_these_allowed_hosts_answers_its_service_names_only(tmp_path):
    """A real `mlflow server` (the pinned MLflow; SQLite instead of Postgres, and without the
    basic-auth app, whose Flask-WTF the project does not install) with the manifest's
    --allowed-hosts: the names the Ray pods and port-forwards use get answers, others 403."""
    port = free_port()
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'db.sqlite'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1",
         "--allowed-hosts", server_options()["--allowed-hosts"]],
        env=service_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def status(host: str) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/api/2.0/mlflow/experiments/search?max_results=1",
                           headers={"Host": host})
        return connection.getresponse().status

    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", 90, server)
        service = one("mlflow.yaml", "Service")
        name, svc_port = service["metadata"]["name"], service["spec"]["ports"][0]["port"]
        for host in (f"{name}:{svc_port}", f"{name}.{NAMESPACE}.svc.cluster.local:{svc_port}",
                     service_url().removeprefix("http://"), "localhost:5000", "127.0.0.1:5000"):
            assert status(host) == 200, host
        for host in ("attacker.example:5000", f"{name}.other-namespace.svc:{svc_port}"):
            assert status(host) == 403, host
    finally:
        os.killpg(server.pid, 15)
        server.wait(20)
        log.close()


# ---- secrets and placeholders ---------------------------------------------------------------

def referenced_secrets() -> dict[str, set[str]]:
    """{secret name: keys} that the manifests read (env references and secret volumes)."""
    refs: dict[str, set[str]] = {}

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("secretKeyRef")
            if ref:
                refs.setdefault(ref["name"], set()).add(ref["key"])
            if "secret" in node and "secretName" in node["secret"]:
                refs.setdefault(node["secret"]["secretName"], set())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for _, doc in every_document():
        walk(doc)
    return refs


def test_every_secret_read_is_created_in_the_readme():
    readme = (REPO / "clusters" / "README.md").read_text().replace("\\\n", " ")
    created = {}
    for command in re.findall(r"create secret generic (\S+)([^\n]*)", readme):
        name, rest = command
        created[name] = set(re.findall(r"--from-(?:literal|file)=([\w.-]+)=", rest))
    refs = referenced_secrets()
    assert set(refs) == {"tsfmicro-ray-token", "tsfmicro-mlflow-db", "tsfmicro-mlflow-admin",
                         "tsfmicro-mlflow-client", "tsfmicro-mlflow-auth-config"}
    for name, keys in refs.items():
        assert name in created, name
        assert keys <= created[name], (name, keys - created[name])
    assert created["tsfmicro-mlflow-auth-config"] == {"basic_auth.ini"}


PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")


def test_no_secret_is_committed():
    for path in [*MANIFESTS.iterdir(), REPO / "clusters" / "aws.yaml",
                 REPO / "clusters" / "gcp.yaml", REPO / "clusters" / "Dockerfile"]:
        text = path.read_text()
        assert not re.search(r"AKIA[0-9A-Z]{16}|-----BEGIN|\"private_key\"", text), path
        assert not re.search(r"^kind: Secret$", text, re.M), path  # Secrets are made by hand
        # credentials inside URIs are placeholders
        for user, password in re.findall(r"://([^:/@\s]+):([^@\s]+)@", text):
            assert PLACEHOLDER.fullmatch(user) and PLACEHOLDER.fullmatch(password), path
        # a password, secret or token written out is a Secret's name, a path or a placeholder
        for key, value in re.findall(r"((?:password|secret|token)\w*)[ \t]*[:=][ \t]*([^\s#]+)",
                                     text, re.I):
            assert (value.startswith(("tsfmicro-", "/")) or PLACEHOLDER.fullmatch(value)), \
                (path.name, key, value)
    for name, doc in every_document():  # sensitive environment variables come from Secrets
        for container in containers(doc):
            for var in container.get("env", []):
                if re.search(r"PASSWORD|TOKEN$|SECRET", var["name"]):
                    assert "valueFrom" in var, (name, var["name"])


def containers(doc: dict) -> list[dict]:
    """The containers of a Deployment, RayCluster or RayJob (autoscaler options included)."""
    if doc["kind"] == "Deployment":
        return doc["spec"]["template"]["spec"]["containers"]
    if doc["kind"] not in ("RayCluster", "RayJob"):
        return []
    spec = doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]
    found = [c for t in pod_templates(doc).values() for c in t["spec"]["containers"]]
    return found + [spec.get("autoscalerOptions", {})]


def test_the_readme_documents_every_placeholder():
    readme = (REPO / "clusters" / "README.md").read_text()
    for path in MANIFESTS.iterdir():
        for word in set(re.findall(r"\b[A-Z][A-Z0-9]+(?:_[A-Z0-9]+)+\b", path.read_text())):
            if not word.startswith(("RAY_", "MLFLOW_")):  # environment variables
                assert f"`{word}`" in readme, f"{path.name}: {word} is not explained"
