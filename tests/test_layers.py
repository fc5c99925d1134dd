"""The layering: dependencies point one way between subpackages, the pure cores import no
I/O framework, and only the rendering packages use rich (DESIGN.md, "Dependencies point
one way"). Read from the source with ``ast``, so a new arrow running back up fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import purger

PACKAGE = Path(purger.__file__).parent
BASE = {"errors", "model"}
# What each subpackage may import besides itself and the base modules. Read downwards: a
# package may use what is listed, never what lists it.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "model": {"errors"},
    "names": set(),
    "pacing": set(),
    "providers": set(),
    "health": {"pacing"},
    "planning": {"names", "health.control"},
    "state": {"planning", "names"},
    "config": {"names", "providers", "health"},
    "engine": {"planning", "names", "pacing", "health", "state", "providers"},
    "observability": {"engine", "planning", "names", "pacing", "health", "state", "providers"},
    "sim": {"engine", "planning", "names", "pacing", "health", "state", "providers"},
    "probing": {"engine", "planning", "names", "pacing", "health", "state", "providers"},
    "launch": {
        "sim",
        "engine",
        "config",
        "planning",
        "names",
        "pacing",
        "health",
        "state",
        "providers",
    },
    "ui": {
        "launch",
        "sim",
        "engine",
        "config",
        "planning",
        "names",
        "pacing",
        "health",
        "state",
        "providers",
    },
}
# Pure cores: property-tested and reused, so free of I/O frameworks, directly or through
# the purger modules they import.
PURE_MODULES = [
    "errors",
    "model",
    "names.nameset",
    "planning.plan",
    "planning.targets",
    "planning.estimate",
    "health.control",
    "health.exposition",
    "health.answers",
    "engine.batching",
    "probing.classify",
    "probing.targets",
    "probing.tally",
]
IO_FRAMEWORKS = {"httpx", "anyio", "rich", "typer", "tenacity"}


def module_path(name: str) -> Path:
    """``planning.plan`` -> purger/planning/plan.py; ``providers`` -> its __init__.py."""
    base = PACKAGE / name.replace(".", "/")
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """Top-level packages imported by ``path`` at run time, and the purger modules among
    them (imports under ``if TYPE_CHECKING:`` are for annotations only)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and getattr(block.test, "id", None) == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    roots: set[str] = set()
    internal: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            roots.add(name.split(".")[0])
            if name.startswith("purger."):
                internal.add(name.removeprefix("purger."))
    return roots, internal


def package_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE).with_suffix("")
    return relative.parts[0]


def allows(package: str, target: str) -> bool:
    top = target.split(".")[0]
    if top == package or top in BASE:
        return True
    allowed = ALLOWED[package]
    return top in allowed or any(target == a or target.startswith(a + ".") for a in allowed)


def test_every_subpackage_has_a_place_and_says_what_it_owns():
    """A new subpackage must be placed in the layering and say in its docstring what it
    owns and what it may import."""
    for init in PACKAGE.glob("*/__init__.py"):
        name = init.parent.name
        if name in {"cli", "data"}:
            continue
        assert name in ALLOWED, f"{name}/ is not placed in tests/test_layers.py"
        docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import" in docstring, f"{name}/__init__.py does not say what it may import"


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE or p.stem in BASE),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_dependencies_point_one_way(path):
    """No module imports a package above its own (cli may import anything)."""
    package = package_of(path)
    if package == "cli":
        return
    _, internal = imports_of(path)
    backwards = sorted(t for t in internal if not allows(package, t))
    assert not backwards, f"{package} may not import {backwards}"


def test_the_layering_check_catches_an_arrow_running_back_up():
    """The check itself: an engine module importing the ui, or planning importing the
    engine, is refused; the allowed arrows pass."""
    assert not allows("engine", "ui.report")
    assert not allows("planning", "engine.run")
    assert not allows("planning", "health.signals")
    assert allows("planning", "health.control")
    assert allows("engine", "state.sqlite")


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_import_no_io_framework(module):
    """The pure cores import neither httpx, anyio, rich, typer nor tenacity, directly or
    through the purger modules they import (package __init__ files aside)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_path(name)
        if not path.exists():  # a name imported from a package's __init__
            continue
        roots, internal = imports_of(path)
        assert roots & IO_FRAMEWORKS == set(), f"{name} imports {roots & IO_FRAMEWORKS}"
        todo.extend(internal)


def test_only_the_cli_and_ui_use_rich():
    """rich renders in the cli and ui packages only."""
    users = {
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "rich" in imports_of(p)[0]
    }
    assert users
    assert all(user.startswith(("cli/", "ui/")) for user in users), users


# Sizes: a module past MAX_MODULE_LINES or a function body past MAX_BODY_LINES has more than
# one job; split it by job (docs/architecture.md). The targets are ~450 and ~80; these are
# the hard stops. Typer signatures do not count: a body starts at its first statement.
MAX_MODULE_LINES = 500
MAX_BODY_LINES = 100


def oversized(path: Path, source: str) -> list[str]:
    """What in ``source`` passes the limits: the module itself, or a function's body."""
    found = []
    if (lines := source.count("\n")) > MAX_MODULE_LINES:
        found.append(f"{path}: {lines} lines (max {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
            body = node.end_lineno - node.body[0].lineno + 1
            if body > MAX_BODY_LINES:
                found.append(f"{path}:{node.lineno} {node.name}: body {body} lines")
    return found


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_or_function_is_oversized(path):
    """No module over 500 lines, no function body over 100 (signatures aside)."""
    assert oversized(path.relative_to(PACKAGE), path.read_text()) == []


def test_the_size_check_catches_a_long_module_and_a_long_body():
    """The check itself: 501 lines or a 101-line body is refused; a long signature with a
    short body, and exactly the limits, pass."""
    assert oversized(Path("m.py"), "x = 1\n" * 501) == ["m.py: 501 lines (max 500)"]
    assert oversized(Path("m.py"), "x = 1\n" * 500) == []
    long_body = "def f():\n" + "    x = 1\n" * 101
    assert oversized(Path("m.py"), long_body) == ["m.py:1 f: body 101 lines"]
    at_limit = "def f(\n" + "    a: int = 1,\n" * 300 + "):\n" + "    x = 1\n" * 100
    assert oversized(Path("m.py"), at_limit) == []
