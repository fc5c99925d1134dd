"""The public surface and the layering: what ``purger`` exports, and who imports what."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import purger

PACKAGE = Path(purger.__file__).parent
# Pure cores: the planner and name handling must stay free of I/O frameworks so that they
# can be property-tested and reused (DESIGN.md, "Dependencies point one way").
PURE_MODULES = [
    "batching.py",
    "control.py",
    "errors.py",
    "estimate.py",
    "exposition.py",
    "names.py",
    "plan.py",
    "targets.py",
]
IO_FRAMEWORKS = {"httpx", "anyio", "rich", "typer", "tenacity"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_all_is_sorted_and_every_name_exists():
    """``__all__`` is sorted, has no duplicates, and every entry is importable."""
    assert list(purger.__all__) == sorted(set(purger.__all__))
    for name in purger.__all__:
        assert hasattr(purger, name), name


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_import_no_io_framework(module):
    """The pure cores import neither httpx, anyio, rich, typer nor tenacity, directly or
    through the purger modules they import (the package's own __init__ aside)."""
    seen: set[str] = set()
    todo = [module[:-3]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        roots, internal = imports_of(module_path(name))
        assert roots & IO_FRAMEWORKS == set(), f"{name} imports {roots & IO_FRAMEWORKS}"
        todo.extend(internal)


def module_path(name: str) -> Path:
    """``plan`` -> purger/plan.py; ``providers`` -> purger/providers/__init__.py."""
    base = PACKAGE / name.replace(".", "/")
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """Top-level packages imported by ``path``, and the purger modules it imports at run
    time (imports under ``if TYPE_CHECKING:`` are for annotations only)."""
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
            if name.startswith("purger.") and module_path(name[7:]).exists():
                internal.add(name[7:])
    return roots, internal


def test_only_the_cli_and_report_use_rich():
    """rich renders in the cli package and the rendering modules (report.py, and the live
    view beside it) only."""
    users = {
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "rich" in imported_roots(p)
    }
    assert users
    rendering = {"report.py", "live_view.py"}
    assert all(user.startswith("cli/") or user in rendering for user in users), users
