"""The package's modules import each other in layers, top to bottom, with no circle.

CLI and server on top; store, search, integrity and sync; the backends; models, fields and
the other leaves at the bottom. An import inside a function counts too: a late import hides a
circle from Python, not from a reader.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ctx_models"

# Each layer may import only from the layers after it (and from itself). The package's
# __init__ is its front door: it re-exports from every layer and is imported by none.
LAYERS = (
    ("ctx_models.cli", "ctx_models.__main__", "ctx_models.server", "ctx_models.demo"),
    (
        "ctx_models.sync",
        "ctx_models.transfer",
        "ctx_models.store",
        "ctx_models.integrity",
        "ctx_models.config",
    ),
    ("ctx_models.search",),
    ("ctx_models.schema",),
    ("ctx_models.backends",),
)


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(package: Path = PACKAGE, root: Path = ROOT) -> dict[str, Path]:
    return {_module_name(path, root): path for path in package.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every ctx_models module ``name`` imports, anywhere in its code."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if candidate in known:
                    found.add(candidate)
                elif target in known:
                    found.add(target)
    found.discard(name)
    return found


def _graph(package: Path = PACKAGE, root: Path = ROOT) -> dict[str, set[str]]:
    modules = _modules(package, root)
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def _layer(name: str) -> int | None:
    for number, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return number
    return None


def test_no_import_circle() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layers_import_downwards_only() -> None:
    upward = []
    for name, imported in _graph().items():
        if name == "ctx_models":
            continue
        mine = _layer(name)
        for other in imported:
            theirs = _layer(other)
            if mine is not None and theirs is not None and theirs < mine:
                upward.append(f"{name} imports {other}")
            elif mine is None and theirs is not None:
                upward.append(f"{name} (a leaf module) imports {other}")
    assert upward == []


@pytest.mark.parametrize("leaf", ["ctx_models.models", "ctx_models.fields", "ctx_models.errors"])
def test_leaves_import_no_layer(leaf: str) -> None:
    assert not {m for m in _graph()[leaf] if _layer(m) is not None}


# --------------------------------------------------------------------------- scripts/

# The benchmarks, as bench.py imports them (scripts/ on sys.path): bench, benchmarks.core, ...
SCRIPTS = ROOT / "scripts"
# Lines a benchmark module may hold. A fixed budget, not "the largest library module", so
# splitting a library module never fails this test. The largest command (backends.py, 774
# lines) fits; the old bench.py (1,064 lines: entry, helpers and five commands) did not.
BENCHMARK_MODULE_LINES = 800
ENTRY_POINT_LINES = 100  # bench.py only parses the command line and dispatches


def test_the_benchmarks_have_no_import_circle() -> None:
    graph = _graph(SCRIPTS, SCRIPTS)
    assert "benchmarks.core" in graph and "benchmarks.core" in graph["benchmarks.quality"]
    assert _cycles(graph) == []


def test_the_benchmark_core_imports_no_other_benchmark_module() -> None:
    assert _graph(SCRIPTS, SCRIPTS)["benchmarks.core"] == set()


def test_benchmark_modules_stay_small() -> None:
    sizes = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in _modules(SCRIPTS, SCRIPTS).items()
    }
    assert sizes["bench"] <= ENTRY_POINT_LINES, sizes["bench"]
    assert {name: n for name, n in sizes.items() if n > BENCHMARK_MODULE_LINES} == {}


def test_the_readme_layout_names_every_module() -> None:
    # The tree in README.rst's Layout section is how a reader finds a module: a new one
    # must be listed. The demo package is described as a whole.
    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    start = text.index("\nLayout\n")
    layout = text[start : text.index("\nBenchmarks\n", start)]
    listed = set(re.findall(r"\b(\w+\.py)\b", layout))
    unlisted = [
        str(path.relative_to(ROOT))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name not in ("__init__.py", "__main__.py")
        and "demo" not in path.relative_to(PACKAGE).parts
        and path.name not in listed
    ]
    assert unlisted == [], f"add these to README.rst's Layout: {unlisted}"
