"""The PostgreSQL state's tables, in schema ``purger``: created and migrated by purger, one
version at a time, under a lock so that runners starting together migrate once; a schema
newer than this purger knows is refused."""

from __future__ import annotations

from typing import Final

import psycopg

from purger.errors import InputError

__all__ = ["LOCK_CLASS", "SCHEMA_VERSION", "migrate", "schema_version"]

SCHEMA_VERSION: Final = 2
#: "purg": the first key of purger's advisory locks (the second: a run name's hash; 0 and
#: 1 are taken below), so that they do not collide with another application's.
LOCK_CLASS: Final = 0x70757267
_MIGRATION_LOCK: Final = 0
#: Statements taking the schema from version N to N+1, at index N.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        "CREATE SCHEMA IF NOT EXISTS purger",
        "CREATE TABLE purger.meta (key text PRIMARY KEY, value text NOT NULL)",
        """CREATE TABLE purger.run (
            id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, run_id text NOT NULL UNIQUE,
            fingerprint text NOT NULL, provider text NOT NULL, provider_options text NOT NULL,
            key_templates text NOT NULL, url_templates text NOT NULL,
            purger_version text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())""",
        """CREATE TABLE purger.shard (
            run bigint NOT NULL REFERENCES purger.run ON DELETE CASCADE, id integer NOT NULL,
            range_start text NOT NULL, range_limit text, count bigint NOT NULL,
            weight double precision NOT NULL, cursor text, done boolean NOT NULL DEFAULT false,
            done_ahead text NOT NULL DEFAULT '[]', targets_done bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (run, id))""",
        """CREATE TABLE purger.failure (
            seq bigserial PRIMARY KEY,
            run bigint NOT NULL REFERENCES purger.run ON DELETE CASCADE,
            target text NOT NULL, kind text NOT NULL, shard_id integer NOT NULL,
            reason text NOT NULL)""",
        "CREATE INDEX failure_target ON purger.failure (run, kind, target)",
        """CREATE TABLE purger.status (
            run bigint NOT NULL REFERENCES purger.run ON DELETE CASCADE, key text NOT NULL,
            value text NOT NULL, PRIMARY KEY (run, key))""",
        """CREATE TABLE purger.rate_history (
            seq bigserial PRIMARY KEY,
            run bigint NOT NULL REFERENCES purger.run ON DELETE CASCADE,
            at timestamptz NOT NULL, rate double precision NOT NULL,
            allowed double precision, targets bigint NOT NULL, held text NOT NULL)""",
        # Who holds a run name's lock, for the message of the one locked out.
        """CREATE TABLE purger.holder (
            name text PRIMARY KEY, host text NOT NULL, pid integer NOT NULL,
            since timestamptz NOT NULL DEFAULT now())""",
    ),
    (
        # Shard leases (purger/state/leases.py): who holds a shard, until when, and the
        # epoch (fencing token) every write of the holder must still match.
        "ALTER TABLE purger.shard ADD COLUMN owner text,"
        " ADD COLUMN epoch bigint NOT NULL DEFAULT 0, ADD COLUMN lease_until timestamptz",
        """CREATE TABLE purger.runner (
            run bigint NOT NULL REFERENCES purger.run ON DELETE CASCADE, id text NOT NULL,
            host text NOT NULL, pid integer NOT NULL, heartbeat timestamptz NOT NULL,
            PRIMARY KEY (run, id))""",
    ),
)


def schema_version(db: psycopg.Connection[tuple[object, ...]], shown: str) -> int:
    """The version of the purger schema in this database; 0 when there is none. A schema
    ``purger`` that holds other tables is not ours: refused."""
    row = db.execute("SELECT to_regclass('purger.meta') IS NOT NULL").fetchone()
    if row is not None and row[0]:
        found = db.execute("SELECT value FROM purger.meta WHERE key = 'schema_version'")
        version = found.fetchone()
        if version is None or not str(version[0]).isdigit():
            raise InputError("not a purger state (purger.meta holds no version)", where=shown)
        return int(str(version[0]))
    tables = db.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'purger'").fetchone()
    if tables is not None and tables[0]:
        raise InputError("not a purger state (schema purger holds other tables)", where=shown)
    return 0


def check_version(version: int, shown: str) -> None:
    if version > SCHEMA_VERSION:
        raise InputError(
            f"state schema version {version}; this purger reads version {SCHEMA_VERSION}"
            " (upgrade purger)",
            where=shown,
        )


def migrate(db: psycopg.Connection[tuple[object, ...]], shown: str) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION`, all steps in one transaction."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, _MIGRATION_LOCK))
        version = schema_version(db, shown)
        check_version(version, shown)
        for step in range(version, SCHEMA_VERSION):
            for statement in _MIGRATIONS[step]:
                db.execute(statement)
        if version != SCHEMA_VERSION:
            db.execute(
                "INSERT INTO purger.meta (key, value) VALUES ('schema_version', %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )
