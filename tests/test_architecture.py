"""The layers of docs/architecture.md hold: no import circle, no import from a lower layer into a
higher one, and no Ray, Optuna, MLflow or Streamlit inside the library. Read from the source
with `ast` (nothing is imported), every import counted, those inside functions too."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tsfmicro", "search", "dashboards")

# Layers from the bottom up; a module may import its own layer or lower ones. The most specific
# prefix decides.
LAYERS: list[tuple[str, ...]] = [
    ("tsfmicro", "tsfmicro.errors", "tsfmicro.vocab", "tsfmicro.fileio", "tsfmicro.runinfo"),
    ("tsfmicro.config", "tsfmicro.metrics", "tsfmicro.report", "tsfmicro.honest"),
    ("tsfmicro.faces", "tsfmicro.models"),
    ("tsfmicro.flops", "tsfmicro.training.data", "tsfmicro.training.augment"),
    ("tsfmicro.datasets",),
    ("tsfmicro.training",),
    ("tsfmicro.synth", "tsfmicro.toy", "tsfmicro.inference", "tsfmicro.pairs"),
    ("tsfmicro.commands", "tsfmicro.cli"),
    ("search",),
    ("dashboards",),
]
SERVICE_ONLY = ("ray", "optuna", "mlflow", "streamlit")


def _layer(module: str) -> int:
    best, rank = "", None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, rank = prefix, i
    assert rank is not None, f"{module} is in no layer of tests/test_architecture.py"
    return rank


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules and third-party top-level names `module` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the module; `from mod import name`, the module
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        for name in names:
            # the longest project module the name is (or is inside), else its top level
            parts = name.split(".")
            for n in range(len(parts), 0, -1):
                candidate = ".".join(parts[:n])
                if candidate in known:
                    out.add(candidate)
                    break
            else:
                out.add(parts[0])
    out.discard(module)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {m: _imports(m, p, known) for m, p in modules.items()}


def test_no_upward_import():
    graph = _graph()
    upward = [
        f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
        for m, deps in graph.items()
        for d in deps
        if d in graph and _layer(d) > _layer(m)
    ]
    assert not upward, "\n".join(sorted(upward))


def test_no_import_circle():
    graph = {m: {d for d in deps if d in _modules()} for m, deps in _graph().items()}
    # a package's __init__ re-exporting its own modules is not a circle of code
    for m in graph:
        graph[m] = {d for d in graph[m] if not m.startswith(d + ".")}
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_the_library_imports_no_service_package():
    offenders = [
        f"{m} imports {d}"
        for m, deps in _graph().items()
        if m.split(".")[0] == "tsfmicro"
        for d in deps
        if d in SERVICE_ONLY or d.split(".")[0] in ("search", "dashboards")
    ]
    assert not offenders, "\n".join(sorted(offenders))


def test_the_check_sees_an_upward_import_and_a_circle(tmp_path):
    """The checks can fail: a made-up upward import is found by the same reader."""
    fake = tmp_path / "fake.py"
    fake.write_text("def f():\n    from search.run import run_search\n")
    known = set(_modules())
    assert "search.run" in _imports("tsfmicro.models.fake", fake, known)
    assert _layer("search.run") > _layer("tsfmicro.models.fake")
