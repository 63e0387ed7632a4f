"""The MLflow model registry: refit the best configuration, register it, keep a champion.

After a search (or with `tsfmicro register`), the best complete trial's
configuration is trained again on every subject, logged as an MLflow model
(models from code: loading runs search/mlflow_model.py, it unpickles nothing),
and registered as `tsfmicro-<dataset>-<protocol>`. The `champion` alias moves
to the new version only when it beats the current champion on the same
protocol (the model name) and the same evaluation mode and objective.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from search.endings import finishing
from search.schema import (
    CHAMPION,
    KIND_REFIT,
    KIND_TRIAL,
    LOSO_PREFIX,
    MODEL_ARTIFACT,
    MODEL_DIR_ARTIFACT,
    OBJECTIVE,
    STATE_COMPLETE,
    Tag,
    VersionTag,
    model_name,
    model_uri,
    run_filter,
    score_metric,
)
from search.tracking import end_run
from tsfmicro.config import DEFAULT_MACHINE, MachineConfig, ModelConfig, TrainConfig
from tsfmicro.metrics import METRICS
from tsfmicro.training.data import PairSet
from tsfmicro.vocab import EVAL_MODES

MODEL_CODE = Path(__file__).with_name("mlflow_model.py")
WHEEL_ARTIFACT = "code_wheel"  # the project's wheel inside the model (search.portable)


def _refit_task(
    data: PairSet,
    m: ModelConfig,
    t: TrainConfig,
    mc: MachineConfig,
    threads: int,
    predict_on: PairSet | None = None,
) -> Any:
    """The refit recipe: train_full on every sample of `data`. Returns the state dict or,
    given `predict_on`, that set's class probabilities (eval mode) and the training seconds."""
    import time

    import numpy as np
    import torch

    from tsfmicro.training.fold import predict_probs, resolve_device, train_full

    torch.set_num_threads(threads)
    started = time.perf_counter()
    model = train_full(data, m, t, mc)
    if predict_on is None:
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    seconds = time.perf_counter() - started
    probs = predict_probs(
        model, predict_on, np.arange(len(predict_on)), resolve_device(mc.device), mc
    )
    return probs, seconds


def refit(
    pairs: PairSet,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    fold_cpus: float,
    fold_gpus: float,
    machine: MachineConfig = DEFAULT_MACHINE,
) -> dict:
    """Train on every sample, as a Ray task with a fold's resources; returns the state dict."""
    import ray

    remote = ray.remote(_refit_task).options(num_cpus=fold_cpus, num_gpus=fold_gpus, name="refit")
    return ray.get(remote.remote(pairs, model_cfg, train_cfg, machine, max(1, int(fold_cpus))))


def refit_predict(
    pairs: PairSet,
    test: PairSet,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    fold_cpus: float,
    fold_gpus: float,
    machine: MachineConfig = DEFAULT_MACHINE,
) -> tuple[Any, float]:
    """refit's recipe on `pairs`, then `test`'s class probabilities (n, K) in eval mode, in
    the same Ray task (a nested search's outer fold); returns (probabilities, seconds of
    training)."""
    import ray

    remote = ray.remote(_refit_task).options(
        num_cpus=fold_cpus, num_gpus=fold_gpus, name="refit_predict"
    )
    threads = max(1, int(fold_cpus))
    return ray.get(remote.remote(pairs, model_cfg, train_cfg, machine, threads, test))


def trial_run_metrics(client: Any, experiment_id: str, search: str, trial_id: str) -> tuple:
    """(run id, metrics) of a trial's parent run."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=run_filter(
            {Tag.SEARCH: search, Tag.TRIAL_ID: trial_id, Tag.KIND: KIND_TRIAL}
        ),
        max_results=1,
    )
    if not runs:
        raise LookupError(f"no MLflow run for trial {trial_id} of search {search}")
    return runs[0].info.run_id, dict(runs[0].data.metrics)


def register_best(
    cfg: Any,
    outcome: Any,
    pairs: PairSet,
    base_model: ModelConfig,
    base_train: TrainConfig,
    say: Any = print,
) -> dict[str, Any]:
    """Refit the search's best trial, log and register it, move the champion if it wins."""
    from search.data import dataset_label
    from search.space import resolve_configs

    dataset, protocol = dataset_label(cfg.data)
    best = outcome.best
    model_cfg, train_cfg = resolve_configs(base_model, base_train, best["params"])
    say(
        f"refitting the best trial {best['trial_id']} ({cfg.eval_mode} {cfg.objective} "
        f"{best['metrics'][OBJECTIVE]:.3f}) on all {len(pairs.subject_ids())} subjects"
    )
    state = refit(
        pairs,
        model_cfg,
        train_cfg,
        cfg.resources.fold_cpus,
        cfg.resources.fold_gpus,
        cfg.machine,
    )
    return publish(
        tracking_uri=cfg.tracking_uri,
        experiment_id=outcome.experiment_id,
        search=cfg.name,
        trial_id=best["trial_id"],
        dataset=dataset,
        protocol=protocol,
        preset=cfg.preset,
        model_cfg=model_cfg,
        train_cfg=train_cfg,
        state=state,
        class_names=pairs.class_names,
        image_size=pairs.image_size,
        eval_mode=cfg.eval_mode,
        objective=cfg.objective,
        cache_face_config=_face_config(pairs.image_size),
        say=say,
    )


def _face_config(size: int) -> Any:
    from tsfmicro.faces import FaceCropConfig

    return FaceCropConfig(size=size)


def publish(
    *,
    tracking_uri: str,
    experiment_id: str,
    search: str,
    trial_id: str,
    dataset: str,
    protocol: str,
    preset: str,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    state: dict,
    class_names: tuple[str, ...],
    image_size: int,
    eval_mode: str,
    objective: str,
    cache_face_config: Any,
    say: Any = print,
) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient

    from tsfmicro.inference import save_model
    from tsfmicro.models import build_model
    from tsfmicro.runinfo import git_commit

    client = MlflowClient(tracking_uri)
    trial_run, loso = trial_run_metrics(client, experiment_id, search, trial_id)
    name = model_name(dataset, protocol)
    model = build_model(model_cfg)
    model.load_state_dict(state)
    names = [score_metric(m, s) for m in EVAL_MODES for s in METRICS]
    scores = {name: loso[name] for name in names if name in loso}
    tags = {
        Tag.SEARCH: search,
        Tag.KIND: KIND_REFIT,
        Tag.TRIAL_ID: trial_id,
        Tag.DATASET: dataset,
        Tag.PROTOCOL: protocol,
        Tag.PRESET: preset,
        Tag.EVAL_MODE: eval_mode,
        Tag.OBJECTIVE: objective,
        Tag.SOURCE_RUN: trial_run,
        Tag.GIT_COMMIT: git_commit() or "unknown",
    }
    run = client.create_run(experiment_id, tags=tags, run_name=f"{search}-refit-{trial_id}")
    run_id = run.info.run_id
    try:
        for key, value in {**model_cfg.to_dict(), **train_cfg.to_dict()}.items():
            client.log_param(run_id, key, str(value))
        for key, value in scores.items():
            client.log_metric(run_id, LOSO_PREFIX + key, value)
        with tempfile.TemporaryDirectory(prefix="tsfmicro-model-") as tmp:
            folder = save_model(
                model,
                Path(tmp) / "tsfmicro_model",
                class_names,
                cache_face_config,
                info={
                    "dataset": dataset,
                    "protocol": protocol,
                    "search": search,
                    "trial_id": trial_id,
                    "loso": scores,
                    "eval_mode": eval_mode,
                    "objective": objective,
                },
            )
            mlflow.set_tracking_uri(tracking_uri)
            with mlflow.start_run(run_id=run_id):
                info = _log_portable_model(folder, Path(tmp), class_names)
        end_run(client, run_id, "FINISHED", state=STATE_COMPLETE)
    except KeyboardInterrupt:  # a stopped search (search.endings): killed, not failed
        end_run(client, run_id, "KILLED", "the search was stopped while its champion was logged")
        raise
    except BaseException as exc:
        end_run(client, run_id, "FAILED", f"refit logging failed: {exc!r}")
        raise
    finishing()  # a signal from here on lets the search finish: no version without its alias
    version = _register(
        client,
        name,
        info.model_uri,
        info.model_id,
        run_id,
        {
            **scores,
            VersionTag.EVAL_MODE: eval_mode,
            VersionTag.OBJECTIVE: objective,
            VersionTag.SEARCH: search,
            VersionTag.TRIAL_ID: trial_id,
            VersionTag.DATASET: dataset,
            VersionTag.PROTOCOL: protocol,
        },
    )
    moved, reason = update_champion(client, name, version, eval_mode, objective)
    # no line here: the caller prints the registered version once (its result)
    return {
        "name": name,
        "version": int(version.version),
        "champion": moved,
        "reason": reason,
        "run_id": run_id,
        "model_uri": info.model_uri,
    }


def _log_portable_model(folder: Path, tmp: Path, class_names: tuple[str, ...]) -> Any:
    """Log the pyfunc in the active run so that it rebuilds its environment anywhere
    (search.portable): the model folder and the project's wheel as artifacts, pinned
    requirements naming the wheel by its place in the model, constraints, a signature and an
    input example of base64 frames; then its MLmodel without paths of this machine."""
    import mlflow
    import pandas as pd

    from search import portable

    wheel = portable.project_wheel(tmp / "wheel")
    constraints = tmp / "constraints.txt"
    constraints.write_text("\n".join(portable.constraints()) + "\n")
    onset, apex = portable.example_images()
    info = mlflow.pyfunc.log_model(
        name=MODEL_ARTIFACT,
        python_model=str(MODEL_CODE),
        artifacts={MODEL_DIR_ARTIFACT: str(folder), WHEEL_ARTIFACT: str(wheel)},
        signature=_signature(class_names),
        input_example=pd.DataFrame({"onset_image": [onset], "apex_image": [apex]}),
        pip_requirements=[
            *portable.requirements(f"./artifacts/{wheel.name}"),
            f"-c {constraints}",
        ],
        # Not the checkout's uv.lock and pyproject.toml, which MLflow copies from the working
        # folder otherwise and then restores with `uv sync` (it fails: no README, no source).
        uv_project_path=str(tmp),
    )
    _drop_machine_paths(info.model_id, tmp / "mlmodel")
    return info


def _drop_machine_paths(model_id: str, tmp: Path) -> None:
    """Rewrite a logged model's MLmodel without the paths MLflow records from this machine:
    the code file's (MLflow loads it by its base name), each artifact's source (its place in
    the model instead) and a local artifact store's location (the model's URI instead)."""
    from mlflow import MlflowClient
    from mlflow.models import Model
    from mlflow.pyfunc import FLAVOR_NAME

    model = Model.load(f"models:/{model_id}")
    flavor = model.flavors[FLAVOR_NAME]
    flavor["model_code_path"] = Path(flavor["model_code_path"]).name
    for artifact in flavor.get("artifacts", {}).values():
        artifact["uri"] = artifact["path"]
    if str(model.artifact_path).startswith(("file:", "/")):
        model.artifact_path = f"models:/{model_id}"
    tmp.mkdir(parents=True, exist_ok=True)
    model.save(tmp / "MLmodel")
    MlflowClient().log_model_artifact(model_id, str(tmp / "MLmodel"))


def _signature(class_names: tuple[str, ...]) -> Any:
    """Input: an onset/apex pair as image paths or base64 image files, or a clip folder (each
    column optional, search/mlflow_model.py says which combinations); output: a probability
    per class and the label."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([
        ColSpec("string", name, required=False)
        for name in ("onset_path", "apex_path", "onset_image", "apex_image", "clip_path")
    ])
    outputs = Schema(
        [*(ColSpec("double", name) for name in class_names), ColSpec("string", "label")]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def _register(
    client: Any, name: str, source: str, model_id: str, run_id: str, tags: dict[str, Any]
) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(
            name,
            description="TSFmicro models found by tsfmicro searches on this protocol; "
            f"the '{CHAMPION}' alias marks the best by the registering search's objective.",
        )
    except MlflowException:
        pass  # already registered
    return client.create_model_version(
        name,
        source=source,
        run_id=run_id,
        model_id=model_id,
        tags={k: str(v) for k, v in tags.items()},
    )


def update_champion(
    client: Any, name: str, version: Any, eval_mode: str, objective: str
) -> tuple[bool, str]:
    """Move the champion alias to `version` if it beats the current champion on the same
    evaluation mode and objective; returns (moved, why)."""
    from mlflow.exceptions import MlflowException

    key = score_metric(eval_mode, objective)
    new = float(version.tags[key])
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    if current is None:
        client.set_registered_model_alias(name, CHAMPION, version.version)
        return True, f"{CHAMPION} set (first model; {key} {new:.4f})"
    if key not in current.tags:
        return False, (
            f"{CHAMPION} kept at version {current.version}: it has no {key} to "
            f"compare with (it was chosen on {current.tags.get(VersionTag.EVAL_MODE, '?')})"
        )
    old = float(current.tags[key])
    if new > old:
        client.set_registered_model_alias(name, CHAMPION, version.version)
        return (
            True,
            f"{CHAMPION} moved from version {current.version} ({key} {old:.4f} -> {new:.4f})",
        )
    return False, f"{CHAMPION} kept at version {current.version} ({key} {old:.4f} >= {new:.4f})"


def parse_model_spec(spec: str) -> tuple[str, str | None, str | None]:
    """(name, alias, version) of `NAME`, `NAME@ALIAS` or `NAME/VERSION`; the last two None
    where not given (NAME alone: the latest version). An empty part, or a version that is not
    a whole number, is a ConfigError that shows the three forms."""
    from tsfmicro.errors import ConfigError

    forms = f"give NAME@ALIAS (e.g. NAME@{CHAMPION}), NAME/VERSION (e.g. NAME/3) or NAME"
    name, at, alias = spec.strip().partition("@")
    name, slash, version = name.partition("/")
    if at and slash:
        raise ConfigError(f"model {spec!r}: an alias and a version at once; {forms}")
    if not name:
        raise ConfigError(f"model {spec!r}: no model name; {forms}")
    if at and not alias.strip():
        raise ConfigError(f"model {spec!r}: the alias after '@' is empty; {forms}")
    if slash and not (version.isdigit() and int(version) >= 1):
        raise ConfigError(f"model {spec!r}: version {version!r} is not a number >= 1; {forms}")
    return name, (alias.strip() if at else None), (version if slash else None)


def pull(tracking_uri: str, spec: str, out_dir: str | Path) -> Path:
    """Download a registered model (`name`, `name@alias` or `name/version`) to `out_dir`;
    returns the folder holding weights.pt and tsfmicro_model.json. The store must exist
    (search.stores: a SQLite path is never created), and `out_dir` is replaced whole: it holds
    the whole model or, after an error, what it held before."""
    from search.stores import require_readable, store_errors
    from tsfmicro.fileio import folder_written_whole

    name, alias, number = parse_model_spec(spec)
    require_readable(tracking_uri)
    with store_errors(tracking_uri):
        version = _find_version(tracking_uri, spec, name, alias, number)
        return _download(tracking_uri, name, version, Path(out_dir), folder_written_whole)


def _find_version(
    tracking_uri: str, spec: str, name: str, alias: str | None, number: str | None
) -> Any:
    """The model version `spec` names; one that does not exist is a ConfigError saying what
    the store has (the registered tsfmicro models, or this model's versions and aliases)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from tsfmicro.errors import ConfigError

    client = MlflowClient(tracking_uri)
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        known = sorted(m.name for m in client.search_registered_models())
        raise ConfigError(
            f"model {spec!r}: no registered model named {name!r} in {tracking_uri} "
            f"(registered: {', '.join(known) or 'none'})"
        )
    if alias is None and number is None:
        return max(versions, key=lambda v: int(v.version))
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, number)
    except MlflowException:
        aliases = client.get_registered_model(name).aliases
        listed = ", ".join(f"{a} (version {v})" for a, v in sorted(aliases.items())) or "none"
        numbers = ", ".join(str(n) for n in sorted(int(v.version) for v in versions))
        what = f"alias {alias!r}" if alias is not None else f"version {number}"
        raise ConfigError(
            f"model {spec!r}: {name} has no {what} (versions: {numbers}; aliases: {listed})"
        ) from None


def _download(tracking_uri: str, name: str, version: Any, out: Path, whole: Any) -> Path:
    """The version's files into a new folder beside `out` that then takes its place."""
    import mlflow

    from tsfmicro.inference import find_model_dir

    mlflow.set_tracking_uri(tracking_uri)
    with whole(out) as temp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri(name, version.version), dst_path=str(temp)
        )
        inner = find_model_dir(local).resolve().relative_to(temp.resolve())
    return out / inner
