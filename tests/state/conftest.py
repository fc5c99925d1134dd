"""The stores under test: SQLite in a temporary file, and PostgreSQL in a throwaway cluster
(``tests/pg.py``) started once per session, a new database per test.

A missing PostgreSQL skips its tests with the apt command that installs it, except when
``PURGER_E2E_REQUIRED=1`` (CI): then they fail, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from purger.state.protocol import Store
from purger.state.stores import open_store
from tests.pg import PgCluster, missing_postgres, run_postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgCluster]:
    reason = missing_postgres()
    if reason is not None:
        if os.environ.get("PURGER_E2E_REQUIRED") == "1":
            pytest.fail(f"PURGER_E2E_REQUIRED=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    with run_postgres() as cluster:
        yield cluster


@pytest.fixture
def pg_url(postgres: PgCluster) -> str:
    """A new empty database (no password in the URL: see ``postgres.password_file``)."""
    return postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")


@dataclass(frozen=True, slots=True)
class Backend:
    """One kind of store, where it lives, and how its messages name it."""

    kind: str
    spec: str
    password_file: Path | None
    #: How messages name this state: the file, or the URL and the run.
    where: str

    def open(self, run: str | None = None) -> Store:
        return open_store(self.spec, run=run, password_file=self.password_file)

    def argv(self) -> list[str]:
        """Arguments for a child process's ``open_store`` (see CONTENDER in the tests)."""
        return [self.spec, str(self.password_file or "")]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        path = tmp_path / "run.sqlite"
        return Backend("sqlite", str(path), None, str(path))
    cluster: PgCluster = request.getfixturevalue("postgres")
    url = request.getfixturevalue("pg_url")
    return Backend("postgres", url, cluster.password_file, f"{url} (run default)")
