"""The throwaway cluster's preconditions: what a machine without PostgreSQL is told."""

from __future__ import annotations

import pytest

from tests import pg


def test_without_binaries_the_hint_is_the_apt_command(monkeypatch):
    monkeypatch.setattr(pg, "find_postgres", lambda: None)
    assert pg.missing_postgres() == (
        "initdb/postgres not found; install with: apt-get install postgresql"
    )


def test_as_root_without_a_postgres_user_says_so(monkeypatch, tmp_path):
    def no_such_user(name: str) -> None:
        raise KeyError(name)

    monkeypatch.setattr(pg, "find_postgres", lambda: tmp_path)
    monkeypatch.setattr(pg.os, "geteuid", lambda: 0)
    monkeypatch.setattr(pg.pwd, "getpwnam", no_such_user)
    assert pg.missing_postgres() == "running as root and no 'postgres' user to run PostgreSQL as"


@pytest.mark.skipif(pg.find_postgres() is None, reason="no PostgreSQL binaries here")
def test_the_binaries_found_include_postgres():
    found = pg.find_postgres()
    assert found is not None
    assert (found / "initdb").exists()
    assert (found / "postgres").exists()
