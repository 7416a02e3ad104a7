"""ki2api's import graph, read statically: no cycle anywhere, the accounts package layered one way.

Every import counts, wherever it is written: at the top, inside a function, or under `if TYPE_CHECKING:`.
A type-only import still says that one module needs the other to be understood, so layering that holds only
at run time is not layering; and a function-local import is how a cycle hides, so it counts too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ki2api

PACKAGE = ki2api.__name__
ROOT = Path(ki2api.__file__).resolve().parent
# The accounts package from the bottom up: a module may import from its own layer or a lower one, never a
# higher one (and, by the cycle check, never in a circle within a layer).
ACCOUNT_LAYERS: dict[str, list[str]] = {
    "base": ["files", "protocols", "identity", "credential", "config", "cooldown", "entitlement", "store", "oidc",
             "social", "importers", "pending"],
    "state": ["file_state", "redis_link"],
    "redis tokens": ["redis_tokens"],
    "redis state": ["redis_state"],
    "login": ["token_store", "refresh", "token_manager"],
    "roster": ["roster"],
    "pool parts": ["quarantine", "model_refusals", "spending"],
    "pool": ["pool"],
    "reports": ["polling", "status", "credits", "catalog"],
    "build": ["build", "live"],
}
BUILD = f"{PACKAGE}.accounts.build"


def module_name(path: Path) -> str:
    """The dotted name of a module file under ROOT (a package's __init__ is the package)."""
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` names (relative imports resolved against `importer`)."""
    if node.level == 0:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(importer: str, is_package: bool, tree: ast.AST, known: set[str]) -> set[str]:
    """The package's modules that `tree` imports, anywhere in it.

    `from pkg import name` is an edge to pkg.name if that is a module, else to pkg. Importing a.b.c also
    runs a/__init__ and a/b/__init__, so those are edges too, except for the importer's own packages: Python
    runs them before the importer, which is no dependency of the importer on them.
    """
    found: set[str] = set()
    own = _ancestors(importer)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(importer, is_package, node)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `import ki2api.x.y` where y is a name: the nearest module
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
                found.update(_ancestors(name) - own)
    found.discard(importer)
    return found


def _ancestors(name: str) -> set[str]:
    """The packages above a module: a.b.c -> {a, a.b}."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    found = modules()
    known = set(found)
    graph = {}
    for name, path in found.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = _targets(name, path.name == "__init__.py", tree, known)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None if the graph has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def defines_create_app(path: Path) -> bool:
    """True for the app factory's module, wherever it lives."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(isinstance(node, ast.FunctionDef) and node.name == "create_app" for node in tree.body)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_sees_imports_of_every_kind():
    source = ("from __future__ import annotations\nfrom typing import TYPE_CHECKING\nfrom .b import x\n"
              "if TYPE_CHECKING:\n    from ..c import y\ndef f():\n    from . import d\n    import ki2api.e.f\n")
    known = {"ki2api", "ki2api.a", "ki2api.a.m", "ki2api.a.b", "ki2api.c", "ki2api.a.d", "ki2api.e", "ki2api.e.f"}
    found = _targets("ki2api.a.m", False, ast.parse(source), known)
    assert found == {"ki2api.a.b", "ki2api.c", "ki2api.a.d", "ki2api.e", "ki2api.e.f"}
    assert _targets("ki2api.a.m", False, ast.parse("from .. import Services\n"), known) == {"ki2api"}


def test_find_cycle_names_the_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_graph_covers_the_accounts_package(graph):
    assert f"{PACKAGE}.accounts.token_store" in graph[f"{PACKAGE}.accounts.token_manager"]
    assert f"{PACKAGE}.accounts.pool" in graph[BUILD]


def test_no_import_cycle_among_ki2api_modules(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_every_accounts_module_has_a_layer():
    listed = [name for layer in ACCOUNT_LAYERS.values() for name in layer]
    present = {name.rpartition(".")[2] for name in modules() if name.startswith(f"{PACKAGE}.accounts.")}
    assert len(listed) == len(set(listed))
    assert present == set(listed), "put new accounts modules into ACCOUNT_LAYERS"


def test_accounts_modules_import_only_downward(graph):
    layer_of = {f"{PACKAGE}.accounts.{name}": index for index, layer in enumerate(ACCOUNT_LAYERS.values())
                for name in layer}
    upward = sorted(f"{importer} -> {target}" for importer, index in layer_of.items()
                    for target in graph[importer] if layer_of.get(target, -1) > index)
    assert upward == []


def test_only_the_app_factory_imports_the_pool_builder(graph):
    factories = {name for name, path in modules().items() if defines_create_app(path)}
    importers = {name for name, targets in graph.items() if BUILD in targets}
    assert factories and importers <= factories, f"{sorted(importers - factories)} import {BUILD}"
