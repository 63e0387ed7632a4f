"""A registered model runs anywhere (issue 20, item 1): it carries the project's wheel, pinned
requirements resolvable from the package index, a signature and an input example of base64
frames, and no path of the machine that logged it; the real `mlflow models predict` and
`mlflow models serve` rebuild its environment with `--env-manager uv` and answer.

The slow tests build that environment the way a user's machine does (uv resolves from the
package index and installs from uv's cache, warm on a machine that ran scripts/bootstrap.sh)
and record how long it took in $TSFMICRO_TEST_ARTIFACTS/model-env-times.json."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
import zipfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from search import portable

from services import BIN, free_port, served, service_env

ROOT = Path(__file__).resolve().parents[2]
MODEL = "tsfmicro-synthetic-3class"
CLASSES = ("negative", "positive", "surprise")


def uv_dir() -> Path:
    """The folder of the uv that MLflow calls: on PATH, or the one scripts/bootstrap.sh
    installs into .tools/."""
    found = shutil.which("uv") or (ROOT / ".tools" / "bin" / "uv")
    assert Path(found).is_file(), "uv is needed: scripts/bootstrap.sh installs it in .tools/"
    return Path(found).parent


def mlflow_env(tmp: Path, uri: str, **extra: str) -> dict[str, str]:
    return service_env(
        PATH=f"{uv_dir()}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}",
        MLFLOW_TRACKING_URI=uri, MLFLOW_ENV_ROOT=str(tmp / "envs"), **extra)


# ---- the wheel and the requirements (fast) ------------------------------------------------


def test_the_wheel_holds_the_packages_and_a_version_naming_the_code(tmp_path):
    wheel = portable.project_wheel(tmp_path)
    again = portable.project_wheel(tmp_path / "again")
    assert wheel.read_bytes() == again.read_bytes()  # the same code gives the same wheel
    base, _, digest = portable.code_version().partition("+")
    assert base == version("tsfmicro").split("+")[0] and len(digest) == 12
    assert wheel.name == f"tsfmicro-{base}+{digest}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("tsfmicro/inference.py", "search/mlflow_model.py", "search/schema.py",
                   "dashboards/tables.py"):
        assert module in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    info = f"tsfmicro-{base}+{digest}.dist-info"
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert f"Version: {base}+{digest}\n" in metadata
    assert "Requires-Dist: torch" in metadata
    record = zipfile.ZipFile(wheel).read(f"{info}/RECORD").decode().splitlines()
    assert len(record) == len(names) and all(",sha256=" in r for r in record[:-1])


def test_requirements_pin_what_this_environment_runs():
    lines = portable.requirements("./artifacts/x.whl")
    assert lines[0] == "./artifacts/x.whl"
    pins = dict(line.split("==") for line in lines[1:])
    for name in ("torch", "torchvision", "facenet-pytorch", "numpy", "mlflow"):
        assert pins[name] == version(name)
    assert "ray" not in pins and "optuna" not in pins and "streamlit" not in pins
    constraints = dict(line.split("==") for line in portable.constraints())
    assert {**constraints, **pins} == constraints  # every pin is among the constraints
    assert constraints["pillow"] == version("pillow")  # pulled in, not named by us
    assert "tsfmicro" not in constraints


def test_the_example_frames_are_images_of_one_size():
    from tsfmicro.fileio import decode_frame

    onset, apex = (decode_frame(base64.b64decode(x), "example")[0]
                   for x in portable.example_images())
    assert onset.shape == apex.shape and onset.shape[1] == portable.EXAMPLE_SIDE
    assert not np.array_equal(onset, apex)


# ---- a registered tiny model ------------------------------------------------------------


@pytest.fixture(scope="module")
def registered(tmp_path_factory) -> dict:
    """A micro model with random weights, published as a search publishes its champion, in a
    SQLite store of its own; the model's files downloaded to `local`."""
    import mlflow
    import torch
    from mlflow import MlflowClient

    from search.registry import publish
    from search.schema import KIND_TRIAL, OBJECTIVE, Tag
    from tsfmicro.config import TrainConfig, preset
    from tsfmicro.faces import FaceCropConfig
    from tsfmicro.models import build_model

    folder = tmp_path_factory.mktemp("portable")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("portable",
                                          artifact_location=(folder / "artifacts").as_uri())
    run = client.create_run(experiment, tags={Tag.SEARCH: "s", Tag.TRIAL_ID: "t1",
                                              Tag.KIND: KIND_TRIAL})
    for key, value in {"final_acc": 0.5, "final_uf1": 0.4, "final_uar": 0.45,
                       OBJECTIVE: 0.4}.items():
        client.log_metric(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id)
    cfg = preset("micro", num_classes=len(CLASSES))
    torch.manual_seed(0)
    result = publish(
        tracking_uri=uri, experiment_id=experiment, search="s", trial_id="t1",
        dataset="synthetic", protocol="3class", preset="micro", model_cfg=cfg,
        train_cfg=TrainConfig(), state=build_model(cfg).state_dict(), class_names=CLASSES,
        image_size=cfg.image_size, eval_mode="final", objective="uf1",
        cache_face_config=FaceCropConfig(size=cfg.image_size), say=lambda *a: None)
    mlflow.set_tracking_uri(uri)
    local = Path(mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{MODEL}@champion", dst_path=str(folder / "local")))
    return {"uri": uri, "folder": folder, "local": local, "result": result,
            "client": client}


def machine_paths(folder: Path) -> tuple[str, ...]:
    return ("/work/", str(ROOT), str(folder), "/tmp/", "/root/", str(Path.home()) + "/")


@pytest.mark.slow
def test_a_registered_model_names_no_machine_path(registered):
    local, folder = registered["local"], registered["folder"]
    names = {p.name for p in local.iterdir()}
    assert {"MLmodel", "requirements.txt", "constraints.txt", "python_env.yaml",
            "input_example.json", "serving_input_example.json", "mlflow_model.py"} <= names
    assert not {"uv.lock", "pyproject.toml"} & names  # not the checkout's project files
    texts = {p.name: p.read_text() for p in local.iterdir() if p.is_file()}
    texts["tsfmicro_model.json"] = (local / "artifacts/tsfmicro_model/tsfmicro_model.json"
                                    ).read_text()
    run = registered["client"].get_run(registered["result"]["run_id"])
    texts["params"] = json.dumps(run.data.params)
    for name, text in texts.items():
        for path in machine_paths(folder):
            assert path not in text, f"{name} names {path}"
    requirements = texts["requirements.txt"].splitlines()
    wheel = requirements[0]  # the code when the model was logged (the tree may change since)
    assert re.fullmatch(r"\./artifacts/tsfmicro-\d+\.\d+\.\d+\+[0-9a-f]{12}-py3-none-any\.whl",
                        wheel) and (local / wheel).is_file()
    assert all("==" in r for r in requirements[1:-1]) and requirements[-1] == "-c constraints.txt"
    assert f"torch=={version('torch')}" in requirements
    from mlflow.models import Model

    model = Model.load(str(local))
    assert [c.name for c in model.signature.outputs.inputs] == [*CLASSES, "label"]
    assert {"onset_image", "apex_image", "onset_path", "apex_path", "clip_path"} == set(
        model.signature.inputs.input_names())


@pytest.mark.slow
def test_the_model_takes_paths_images_and_clips_and_names_a_bad_row(registered, tmp_path):
    """In this environment, the pyfunc on each kind of input: the same frames give the same
    probabilities as base64 images, as paths and as a clip of two frames."""
    import mlflow
    import pandas as pd

    model = mlflow.pyfunc.load_model(str(registered["local"]))
    example = json.loads((registered["local"] / "input_example.json").read_text())
    images = pd.DataFrame(example["data"], columns=example["columns"])
    for name, column in (("onset_1.jpg", "onset_image"), ("apex_2.jpg", "apex_image")):
        (tmp_path / "clip").mkdir(exist_ok=True)
        (tmp_path / "clip" / name).write_bytes(base64.b64decode(images[column].iloc[0]))
    paths = pd.DataFrame({"onset_path": [str(tmp_path / "clip/onset_1.jpg")],
                          "apex_path": [str(tmp_path / "clip/apex_2.jpg")]})
    clip = pd.DataFrame({"clip_path": [str(tmp_path / "clip")]})
    answers = [model.predict(frame) for frame in (images, paths, clip)]
    for answer in answers:
        assert answer["label"].iloc[0] in CLASSES
        np.testing.assert_allclose(answer[list(CLASSES)].to_numpy(),
                                   answers[0][list(CLASSES)].to_numpy(), atol=1e-6)
    from tsfmicro.errors import InputError

    with pytest.raises(InputError, match="row 1: give onset_path and apex_path.*given: apex"):
        model.predict(pd.concat([paths, pd.DataFrame({"apex_path": ["b.jpg"]})],
                                ignore_index=True))
    with pytest.raises(InputError, match="row 0: onset_image is not base64"):
        model.predict(images.assign(onset_image="not base64!"))


def test_the_network_loads_in_two_lines(tmp_path):
    """docs/search.md's two lines give the network with its weights."""
    import torch

    from tsfmicro.config import preset
    from tsfmicro.faces import FaceCropConfig
    from tsfmicro.inference import load_network, load_state, save_model
    from tsfmicro.models import build_model

    cfg = preset("micro", num_classes=3)
    torch.manual_seed(1)
    model = build_model(cfg)
    save_model(model, tmp_path / "m" / "artifacts" / "tsfmicro_model", CLASSES,
               FaceCropConfig(size=cfg.image_size))
    net = load_network(tmp_path / "m")  # a pulled model's folder: the model folder is below
    state, loaded_cfg = load_state(tmp_path / "m")
    assert loaded_cfg == cfg and not net.training
    for key, value in model.state_dict().items():
        assert torch.equal(net.state_dict()[key], value) and torch.equal(state[key], value)


# ---- the real mlflow CLI with an environment manager (slow: it builds environments) --------


def _times_file() -> Path:
    folder = Path(os.environ.get("TSFMICRO_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "model-env-times.json"


def _record(**seconds: float) -> None:
    path = _times_file()
    times = json.loads(path.read_text()) if path.is_file() else {}
    times.update({k: round(v, 1) for k, v in seconds.items()})
    path.write_text(json.dumps(times, indent=2) + "\n")


def mlflow_cli(args: list[str], env: dict, cwd: Path, timeout: float = 600) -> float:
    started = time.perf_counter()
    done = subprocess.run([str(BIN / "mlflow"), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return time.perf_counter() - started


def _check_predictions(predictions: list[dict], expected: np.ndarray) -> None:
    assert len(predictions) == len(expected)
    for row, probs in zip(predictions, expected, strict=True):
        assert row["label"] in CLASSES
        np.testing.assert_allclose([row[c] for c in CLASSES], probs, atol=1e-5)


@pytest.fixture(scope="module")
def expected(registered) -> np.ndarray:
    """This environment's probabilities for the model's input example."""
    import mlflow
    import pandas as pd

    example = json.loads((registered["local"] / "input_example.json").read_text())
    model = mlflow.pyfunc.load_model(str(registered["local"]))
    answer = model.predict(pd.DataFrame(example["data"], columns=example["columns"]))
    return answer[list(CLASSES)].to_numpy()


@pytest.mark.slow
def test_mlflow_models_predict_rebuilds_the_environment_with_uv(registered, expected, tmp_path):
    """`mlflow models predict --env-manager uv` on the model's own serving input example,
    from a folder that holds nothing of the project: the environment comes from the model."""
    request = tmp_path / "input.json"
    shutil.copy(registered["local"] / "serving_input_example.json", request)
    env = mlflow_env(tmp_path, registered["uri"])
    seconds = mlflow_cli(["models", "predict", "-m", f"models:/{MODEL}@champion",
                          "--env-manager", "uv", "-i", str(request), "-t", "json",
                          "-o", str(tmp_path / "out.json")], env, tmp_path)
    _check_predictions(json.loads((tmp_path / "out.json").read_text())["predictions"], expected)
    _record(predict_uv_seconds=seconds)


@pytest.mark.slow
def test_mlflow_models_serve_answers_from_the_rebuilt_environment(registered, expected,
                                                                  tmp_path):
    """`mlflow models prepare-env --env-manager uv` builds the environment (timed: a new
    environment from uv's cache); then the dashboard registry page's own `mlflow models serve
    --env-manager uv` and `curl` lines, run by bash as shown, start a server in it that answers
    with the in-process probabilities for the model's input example."""
    env = mlflow_env(tmp_path, registered["uri"])
    prepare = ["models", "prepare-env", "-m", f"models:/{MODEL}@champion", "--env-manager", "uv"]
    built_seconds = mlflow_cli(prepare, env, tmp_path)
    (built,) = (tmp_path / "envs").iterdir()
    freeze = subprocess.run([str(built / "bin" / "python"), "-c",
                             "import importlib.metadata as m;"
                             "print(m.version('tsfmicro'), m.version('torch'))"],
                            capture_output=True, text=True, check=True, timeout=300).stdout
    wheel = (registered["local"] / "requirements.txt").read_text().splitlines()[0]
    logged = wheel.split("/tsfmicro-")[1].split("-py3")[0]
    assert freeze.split() == [logged, version("torch")]  # the model's wheel, the pinned torch
    # The serve and curl lines the dashboard's registry page shows for this version, run by
    # bash as shown (a free port; the example's onset and apex written as the image files).
    import base64

    from dashboards.tables import SERVE_PORT, load_code

    number = registered["client"].get_model_version_by_alias(MODEL, "champion").version
    serve, request = load_code(MODEL, number, registered["uri"])["serve"].split("\ncurl ")
    example = json.loads((registered["local"] / "input_example.json").read_text())
    row = dict(zip(example["columns"], example["data"][0], strict=True))
    for name in ("onset", "apex"):
        (tmp_path / f"{name}.jpg").write_bytes(base64.b64decode(row[f"{name}_image"]))
    port = free_port()
    serve = serve.replace(f"--port {SERVE_PORT}", f"--port {port}")
    request = "curl " + request.replace(f"127.0.0.1:{SERVE_PORT}", f"127.0.0.1:{port}")
    started = time.perf_counter()
    settings = [f"{k}={env[k]}" for k in ("PATH", "MLFLOW_ENV_ROOT")]
    with served(["bash", "-c", f"{' '.join(settings)} exec env {serve}"],
                tmp_path / "serve.log", f"http://127.0.0.1:{port}/ping", cwd=tmp_path):
        up = time.perf_counter() - started
        answer = subprocess.run(["bash", "-c", request], capture_output=True, text=True,
                                timeout=120, check=True, cwd=tmp_path).stdout
    _check_predictions(json.loads(answer)["predictions"], expected[:1])
    _record(prepare_env_uv_seconds=built_seconds, serve_uv_ready_seconds=up)
