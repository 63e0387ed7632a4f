"""What a registered model carries so that it runs anywhere: the project's code as a wheel,
pinned requirements, and an input example with its frames inside.

`mlflow models predict|serve --env-manager uv|virtualenv` rebuilds a model's environment from
its requirements.txt alone. A registered tsfmicro model therefore holds:

- the project's wheel (`project_wheel`): the installed `tsfmicro`, `search` and `dashboards`
  packages as they are (an editable checkout or an installed wheel alike), with the installed
  distribution's metadata. Its version carries a digest of the packaged files
  (`0.1.0+<12 hex>`), so models of different code never share one MLflow environment (MLflow
  names an environment by its requirements' text);
- requirements (`requirements`): that wheel by a path relative to the model folder, and the
  library's dependencies and mlflow pinned to the versions this environment runs, resolvable
  from the package index; `constraints` pins every package they pull in here, so a rebuilt
  environment gets the same versions (on another platform, packages not needed there are
  simply not installed);
- an input example (`example_images`): a portrait shipped inside matplotlib as two base64
  image files, so the example holds no path of this machine and no training data.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import zipfile
from pathlib import Path

DISTRIBUTION = "tsfmicro"
PACKAGES = ("tsfmicro", "search", "dashboards")  # pyproject's [tool.hatch.build.targets.wheel]
WHEEL_TAG = "py3-none-any"
# The pyfunc loads search/mlflow_model.py, which needs the library and mlflow (not Ray/Optuna).
RUNTIME_EXTRAS: tuple[str, ...] = ()
RUNTIME_EXTRA_PACKAGES = ("mlflow",)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed: the same files give the same wheel


def _package_files(package: str) -> list[tuple[str, Path]]:
    """(path inside the wheel, file) of every file of an installed top-level package, byte
    code left out, in a fixed order."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(f"package {package!r} is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    files = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files.append((f"{package}/{path.relative_to(root).as_posix()}", path))
    return files


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def code_version() -> str:
    """The installed distribution's version with a digest of the packaged files as its local
    label, e.g. `0.1.0+3f2a9c01b7de`."""
    base = importlib.metadata.version(DISTRIBUTION).split("+")[0]
    digest = hashlib.sha256()
    for name, path in (f for p in PACKAGES for f in _package_files(p)):
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{base}+{digest.hexdigest()[:12]}"


def project_wheel(out_dir: str | Path) -> Path:
    """Write the project's wheel, built from the installed packages and the installed
    distribution's metadata, into `out_dir`; returns its path."""
    dist = importlib.metadata.distribution(DISTRIBUTION)
    version = code_version()
    metadata = "".join(
        f"Version: {version}\n" if line.startswith("Version:") else line
        for line in (dist.read_text("METADATA") or "").splitlines(keepends=True)
    )
    info = f"{DISTRIBUTION}-{version}.dist-info"
    members: list[tuple[str, bytes]] = [
        (name, path.read_bytes()) for p in PACKAGES for name, path in _package_files(p)
    ]
    members.append((f"{info}/METADATA", metadata.encode()))
    members.append((
        f"{info}/WHEEL",
        f"Wheel-Version: 1.0\nGenerator: search.portable\nRoot-Is-Purelib: true\n"
        f"Tag: {WHEEL_TAG}\n".encode(),
    ))
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
        members.append((f"{info}/entry_points.txt", entry_points.encode()))
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in members)
    members.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))
    out = Path(out_dir) / f"{DISTRIBUTION}-{version}-{WHEEL_TAG}.whl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in members:
            entry = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            entry.external_attr = 0o644 << 16
            wheel.writestr(entry, data, compress_type=zipfile.ZIP_DEFLATED)
    return out


def _installed(name: str) -> importlib.metadata.Distribution:
    return importlib.metadata.distribution(name)


def _runtime_roots() -> list[tuple[str, tuple[str, ...]]]:
    """(name, extras) of what the model needs beside its own wheel: the library's
    dependencies (no extra) and RUNTIME_EXTRA_PACKAGES."""
    from packaging.requirements import Requirement

    roots = []
    for line in _installed(DISTRIBUTION).requires or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            roots.append((req.name, tuple(sorted(req.extras))))
    roots.extend((name, ()) for name in RUNTIME_EXTRA_PACKAGES)
    return roots


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def requirements(wheel_path: str) -> list[str]:
    """requirements.txt of the model: the wheel at `wheel_path` (relative to the model folder)
    and every runtime root pinned to its installed version, e.g. `torch==2.15.0`."""
    pins = sorted({f"{_canonical(n)}=={_installed(n).version}" for n, _ in _runtime_roots()})
    return [wheel_path, *pins]


def constraints() -> list[str]:
    """`name==version` of every package the runtime roots pull in here (markers evaluated
    for this platform), the roots included; the model's own distribution left out."""
    from packaging.requirements import Requirement

    pinned: dict[str, str] = {}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    todo = list(_runtime_roots())
    while todo:
        name, extras = todo.pop()
        key = (_canonical(name), extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = _installed(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional dependency not installed here
        pinned[_canonical(name)] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            wanted = req.marker is None or any(
                req.marker.evaluate({"extra": extra}) for extra in ("", *extras)
            )
            if wanted:
                todo.append((req.name, tuple(sorted(req.extras))))
    pinned.pop(DISTRIBUTION, None)
    return [f"{name}=={version}" for name, version in sorted(pinned.items())]


EXAMPLE_SIDE = 160  # the example frames' width in pixels (MTCNN finds the face at this size)


def example_images() -> tuple[str, str]:
    """(onset, apex) base64 JPEG frames for the input example: the Grace Hopper portrait that
    ships with matplotlib, scaled to EXAMPLE_SIDE wide; the apex shifted by one pixel."""
    import cv2
    import matplotlib
    import numpy as np

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    height = round(image.shape[0] * EXAMPLE_SIDE / image.shape[1])
    onset = cv2.resize(image, (EXAMPLE_SIDE, height), interpolation=cv2.INTER_AREA)
    apex = np.roll(onset, 1, axis=0)
    encoded = []
    for frame in (onset, apex):
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError("cannot encode the example frame as JPEG")
        encoded.append(base64.b64encode(data.tobytes()).decode("ascii"))
    return encoded[0], encoded[1]
