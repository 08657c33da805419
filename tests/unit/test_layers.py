"""The shape of the code (docs/architecture.md, "Layers"): services never import the
web layer, no import cycle among the app's modules, no module past 450 lines, no private API of
SQLAlchemy. Read from the source with `ast`, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import app

APP_DIR = Path(app.__file__).resolve().parent
MAX_LINES = 450
PRIVATE_SQLALCHEMY = ("_sa_", ".instance(", "compiled.bind_names")

# Modules other branches of issue 15 split; each mark goes when its split is merged (strict: a
# module that got small enough while still marked fails, so the mark cannot outlive its reason).


def _app_files() -> list[Path]:
    """Every module of the app, Alembic's migrations aside (they are history, not layers)."""
    return sorted(p for p in APP_DIR.rglob("*.py") if "migrations" not in p.parts)


def _module_name(path: Path) -> str:
    parts = path.relative_to(APP_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in _app_files()}


def imports_of(module: str) -> set[str]:
    """The app modules `module` imports anywhere in its body (top level, functions,
    TYPE_CHECKING blocks): `from pkg import mod` counts as importing pkg.mod."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: climb from this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {name for name in found if name in MODULES and name != module}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_sees_a_cycle_through_three_modules_and_none_in_a_chain():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_imports_of_resolves_from_imports_of_submodules_and_lazy_imports():
    # app.web.lifecycle imports service modules with `from app.services.lifecycle import ...`,
    # the CLI (a module or a package) imports its use cases inside the command functions.
    assert "app.services.lifecycle.waiting" in imports_of("app.web.lifecycle")
    cli = set().union(*(imports_of(m) for m in MODULES if m.split(".")[:2] == ["app", "cli"]))
    assert "app.services.lifecycle.offboarding" in cli


def test_services_never_import_the_web_layer():
    leaks = {
        module: sorted(i for i in imports_of(module) if i == "app.web" or i.startswith("app.web."))
        for module in MODULES
        if module.startswith("app.services.")
    }
    assert {m: i for m, i in leaks.items() if i} == {}


def test_the_layers_below_services_never_import_them_nor_the_web():
    below = ("app.aws.", "app.store.", "app.security.")
    above = ("app.services", "app.web", "app.cli", "app.main")
    leaks = {
        module: sorted(i for i in imports_of(module) if i.startswith(above))
        for module in MODULES
        if module.startswith(below)
    }
    assert {m: i for m, i in leaks.items() if i} == {}


def test_no_import_cycle_among_app_modules():
    graph = {module: imports_of(module) for module in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize(
    "path", [pytest.param(p, id=str(p.relative_to(APP_DIR.parent))) for p in _app_files()]
)
def test_module_is_at_most_450_lines(path: Path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines: split it by what a reader looks for"


def test_no_private_sqlalchemy_names_in_app():
    uses = [
        f"{path.relative_to(APP_DIR.parent)}:{number}: {name}"
        for path in _app_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for name in PRIVATE_SQLALCHEMY
        if name in line
    ]
    assert uses == []
