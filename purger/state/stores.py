"""Choosing the store from ``--state``: a ``postgresql://`` URL is PostgreSQL, anything
else a path to an SQLite file."""

from __future__ import annotations

from pathlib import Path

from purger.errors import UsageError
from purger.state.pgconnect import is_postgres_url
from purger.state.postgres import DEFAULT_RUN, PostgresStore
from purger.state.protocol import Store
from purger.state.sqlite import StateStore

__all__ = ["open_store"]


def open_store(
    spec: str | Path,
    *,
    run: str | None = None,
    password_file: Path | None = None,
    readonly: bool = False,
) -> Store:
    """Open (or, ``readonly``, only read) the state ``spec`` names. ``run`` (a name or run
    id) and ``password_file`` are for a database; a file holds one run and no password."""
    if isinstance(spec, str) and is_postgres_url(spec):
        name = DEFAULT_RUN if run is None else run
        if readonly:
            return PostgresStore.open_readonly(spec, run=name, password_file=password_file)
        return PostgresStore.open(spec, run=name, password_file=password_file)
    if run is not None:
        raise UsageError(f"state {spec}: a run name or id needs a postgresql:// state")
    if password_file is not None:
        raise UsageError(f"state {spec}: a password file is for a postgresql:// state")
    path = Path(spec)
    return StateStore.open_readonly(path) if readonly else StateStore.open(path)
