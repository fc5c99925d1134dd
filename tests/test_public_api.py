"""The public surface and the layering: what ``purger`` exports, and who imports what."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import purger

PACKAGE = Path(purger.__file__).parent
# Pure cores: the planner and name handling must stay free of I/O frameworks so that they
# can be property-tested and reused (DESIGN.md, "Dependencies point one way").
PURE_MODULES = ["plan.py", "names.py", "errors.py"]
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
    """plan, names and errors import neither httpx, anyio, rich, typer nor tenacity."""
    assert imported_roots(PACKAGE / module) & IO_FRAMEWORKS == set()


def test_only_cli_and_report_use_rich():
    """rich renders in cli.py and report.py only."""
    users = {p.name for p in PACKAGE.rglob("*.py") if "rich" in imported_roots(p)}
    assert users <= {"cli.py", "report.py"}
