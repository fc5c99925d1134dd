"""Choosing the store from ``--state``: a ``postgresql://`` URL is PostgreSQL, anything
else a path to an SQLite file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from purger.errors import UsageError
from purger.state.leases import DEFAULT_LEASE_TTL, LeasedStore
from purger.state.pgconnect import is_postgres_url, redact
from purger.state.postgres import DEFAULT_RUN, PostgresStore
from purger.state.protocol import Store
from purger.state.sqlite import StateStore

__all__ = ["StateRef", "open_store"]


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
    open_store_check(str(spec), run, password_file)
    path = Path(spec)
    return StateStore.open_readonly(path) if readonly else StateStore.open(path)


@dataclass(frozen=True, slots=True, kw_only=True)
class StateRef:
    """Where a run's state lives, as ``--state`` (and ``--run-name``, the password file,
    ``--lease-ttl``) give it: a file, or a run in a database shared by several runners."""

    spec: str
    run: str | None = None
    password_file: Path | None = None
    lease_ttl: float = DEFAULT_LEASE_TTL

    def __post_init__(self) -> None:
        if not self.shared:
            open_store_check(self.spec, self.run, self.password_file)

    @property
    def shared(self) -> bool:
        """A database: runners work on the run together, by shard leases."""
        return is_postgres_url(self.spec)

    @property
    def path(self) -> Path:
        """The SQLite file (meaningless for a database)."""
        return Path(self.spec)

    def __str__(self) -> str:
        if not self.shared:
            return self.spec
        return f"{redact(self.spec)} (run {self.run or DEFAULT_RUN})"

    def as_flags(self) -> str:
        """The options that name this state again (to resume it), password left out."""
        if not self.shared:
            return f"--state {self.spec}"
        return f"--state {redact(self.spec)} --run-name {self.run or DEFAULT_RUN}"

    def open(self, *, readonly: bool = False) -> Store:
        return open_store(
            self.spec, run=self.run, password_file=self.password_file, readonly=readonly
        )

    def join(self) -> LeasedStore:
        """Join the run in the database beside other runners (``shared`` only)."""
        return LeasedStore.join(
            self.spec,
            run=self.run or DEFAULT_RUN,
            lease_ttl=self.lease_ttl,
            password_file=self.password_file,
        )


def open_store_check(spec: str, run: str | None, password_file: Path | None) -> None:
    """Refuse database-only options on a file."""
    if run is not None:
        raise UsageError(f"state {spec}: a run name or id needs a postgresql:// state")
    if password_file is not None:
        raise UsageError(f"state {spec}: a password file is for a postgresql:// state")
