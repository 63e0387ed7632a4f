"""clusters/Dockerfile, checked without a Docker engine: its pins against uv.lock and
scripts/bootstrap.sh, how it installs the project, its build-time Ray check (run here against
this environment's Ray, installed from the same lock), and its build context (.dockerignore)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "clusters" / "Dockerfile"


def locked_version(package: str) -> str:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    return next(p["version"] for p in lock["package"] if p["name"] == package)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped, as
    Docker reads them."""
    out, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or (not line.strip() and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1]
            continue
        current += line
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def dockerfile() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def args() -> dict[str, str]:
    return dict(rest.split("=", 1) for word, rest in dockerfile() if word == "ARG")


def env() -> dict[str, str]:
    pairs = {}
    for word, rest in dockerfile():
        if word == "ENV":
            pairs.update(item.split("=", 1) for item in shlex.split(rest))
    return pairs


def runs() -> list[str]:
    return [rest for word, rest in dockerfile() if word == "RUN"]


def image_tag() -> str:
    python = args()["PYTHON_VERSION"].replace(".", "")
    return f"IMAGE_REGISTRY/tsfmicro:ray{args()['RAY_VERSION']}-py{python}"


def test_the_parser_joins_continuations_and_drops_comments():
    text = "# c\nFROM a\nRUN x \\\n    # inner\n    && y\nENV A=1 \\\n    B=2\n"
    assert instructions(text) == [("FROM", "a"), ("RUN", "x     && y"), ("ENV", "A=1     B=2")]


def test_pins_match_the_lock_and_the_bootstrap():
    assert args()["RAY_VERSION"] == locked_version("ray")
    bootstrap = (REPO / "scripts" / "bootstrap.sh").read_text()
    assert args()["UV_VERSION"] == re.search(r'uv_version="([^"]+)"', bootstrap).group(1)
    python = args()["PYTHON_VERSION"]
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    low, high = re.fullmatch(r">=(\d+\.\d+),<(\d+\.\d+)", requires).groups()
    as_tuple = lambda v: tuple(map(int, v.split(".")))  # noqa: E731
    assert as_tuple(low) <= as_tuple(python) < as_tuple(high)
    (base,) = [rest for word, rest in dockerfile() if word == "FROM"]
    assert base == "python:${PYTHON_VERSION}-slim-bookworm"


def test_every_reference_to_the_image_names_the_pinned_ray():
    clusters = REPO / "clusters"
    files = [clusters / "aws.yaml", clusters / "gcp.yaml",
             *sorted((clusters / "kuberay").glob("*.yaml")), clusters / "README.md"]
    references = {f.name: set(re.findall(r"IMAGE_REGISTRY/tsfmicro:[\w.-]+", f.read_text()))
                  for f in files}
    assert {name: refs for name, refs in references.items() if refs} == {
        name: {image_tag()} for name in
        ("aws.yaml", "gcp.yaml", "raycluster.yaml", "rayjob.yaml", "README.md")}
    assert f"-t {image_tag()}" in DOCKERFILE.read_text()  # the build command in its header


def test_the_project_is_installed_from_the_lock_only():
    installs = [r for r in runs() if re.search(r"\b(uv (sync|pip)|pip install)\b", r)]
    syncs = [r for r in installs if "uv sync" in r]
    assert len(syncs) == 2  # dependencies, then the project itself
    for command in syncs:
        assert "--frozen" in command and "--no-dev" in command and "--extra search" in command
    others = [r for r in installs if "uv sync" not in r]
    # the only other install is uv itself, at the bootstrap's version
    assert len(others) == 1 and 'pip install --no-cache-dir "uv==${UV_VERSION}"' in others[0]
    copied = [rest for word, rest in dockerfile() if word == "COPY"]
    assert any("uv.lock" in c and "pyproject.toml" in c for c in copied)


def test_environment_of_every_node():
    variables = env()
    assert variables["OMP_WAIT_POLICY"] == "PASSIVE"
    assert variables["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"
    assert "NVIDIA_VISIBLE_DEVICES" not in variables  # GPUs come from --gpus / the device plugin
    assert variables["HOME"] == "/home/ray"  # where the launcher mounts ~/.ray/auth_token
    assert variables["PATH"].startswith(variables["UV_PROJECT_ENVIRONMENT"] + "/bin:")
    words = [w for w, _ in dockerfile()]
    assert "ENTRYPOINT" not in words  # the launcher runs `docker run IMAGE bash`
    tools = " ".join(r for r in runs() if "apt-get install" in r)
    for tool in ("rsync", "wget", "procps"):  # launcher, KubeRay probes, ray stop
        assert re.search(rf"\b{tool}\b", tools), tool


def test_no_sudo_and_no_root_at_run_time():
    """The containers run as `ray`, who cannot become root: sudo is not installed and nothing
    grants it (a NOPASSWD:ALL grant would make any code run by a Ray task root)."""
    text = DOCKERFILE.read_text()
    assert not re.search(r"NOPASSWD\s*:\s*ALL", text, re.IGNORECASE)
    assert "sudoers" not in " ".join(runs())
    tools = " ".join(r for r in runs() if "apt-get install" in r)
    assert not re.search(r"\bsudo\b", tools)
    users = [rest for word, rest in dockerfile() if word == "USER"]
    assert users and users[-1] == "ray"  # the last USER is the one containers run as
    # what `ray` writes at run time is its own from the build on
    assert any("chown ray:ray /opt/tsfmicro" in r and "chown ray:ray /opt/venv" in r
               for r in runs())


def ray_check() -> list[str]:
    """The build step that fails when the installed Ray is not RAY_VERSION, as a command."""
    (step,) = [part.strip() for r in runs() for part in r.split("&&") if "ray.__version__" in part]
    words = shlex.split(step)
    assert words[:2] == ["python", "-c"]
    return words


@pytest.mark.parametrize(("pinned", "passes"), [("lock", True), ("0.0.1", False)])
def test_the_build_fails_unless_ray_is_the_pinned_version(pinned, passes):
    """Run the Dockerfile's check against this environment, which uv.lock installed too."""
    import ray

    assert ray.__version__ == locked_version("ray")
    version = locked_version("ray") if pinned == "lock" else pinned
    code = ray_check()[2].replace("${RAY_VERSION}", version)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode == 0) is passes, done.stderr
    if not passes:
        assert f"{version} expected" in done.stderr


def excluded(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (Docker's rules: the last
    matching pattern wins, `!` re-includes, a pattern matching a parent matches its files)."""
    def regex(pattern: str) -> re.Pattern:
        out = ""
        for part in re.split(r"(\*\*/|\*|\?)", pattern):
            out += {"**/": "(.*/)?", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
        return re.compile(out)

    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        compiled = regex(pattern.lstrip("!").strip("/"))
        if any(compiled.fullmatch(p) for p in prefixes):
            result = not negate
    return result


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_build_context_holds_what_the_image_copies_and_nothing_heavy():
    patterns = dockerignore()
    sources = []
    for word, rest in dockerfile():
        if word == "COPY":
            sources += [w for w in shlex.split(rest)[:-1] if not w.startswith("--")]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert not excluded(source, patterns), source
        if (REPO / source).is_dir():
            for file in (REPO / source).rglob("*.py"):
                if "__pycache__" not in file.parts:
                    assert not excluded(str(file.relative_to(REPO)), patterns), file
    for heavy in (".venv/bin/python", ".git/HEAD", "runs/search/x/y.json", "mlflow.db",
                  ".cache/synth/a.jpg", "tsfmicro/__pycache__/x.pyc", "tests/tsfmicro/test_cli.py"):
        assert excluded(heavy, patterns), heavy
