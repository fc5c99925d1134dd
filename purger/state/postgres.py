"""The state store in PostgreSQL: the same contract as :mod:`~purger.state.sqlite`, several
runs in one database, each chosen by its name or its run id.

A commit is one transaction (durable once it returns, as PostgreSQL's default
``synchronous_commit`` makes it). One store at a time holds a run name: a session advisory
lock, which the server drops when the holder's connection ends (a SIGKILLed holder's
socket closes). Behind a pooler this needs session pooling. Driver: psycopg 3, sync; the
engine already commits from a worker thread, so an async driver would buy nothing.
"""

from __future__ import annotations

import json
import math
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self, cast

import psycopg

from purger.errors import InputError, StateMismatchError, UsageError
from purger.model import TargetKind
from purger.planning.plan import Shard
from purger.state.pgconnect import Connected, connect
from purger.state.pgruns import DEFAULT_RUN, lock_run, resolve_run
from purger.state.pgschema import check_version, migrate, schema_version
from purger.state.records import (
    Failure,
    RatePoint,
    RunRecord,
    ShardProgress,
    StateSummary,
    differences,
    to_json,
)

__all__ = ["DEFAULT_RUN", "PostgresStore", "ahead_json", "open_run", "progress_of"]


_Db = psycopg.Connection[tuple[object, ...]]


class PostgresStore:
    """One run's state in a PostgreSQL database, locked for as long as the store is open."""

    __slots__ = ("_closed", "_conn", "_guard", "_name", "_row")

    def __init__(self, conn: Connected, name: str) -> None:
        self._conn = conn
        self._name = name
        self._row: int | None = None  # purger.run.id, once the run is recorded
        # One transaction at a time on the one connection: the writer thread commits while
        # the event loop's thread reads.
        self._guard = threading.RLock()
        self._closed = False

    @classmethod
    def open(
        cls, url: str, *, run: str = DEFAULT_RUN, password_file: Path | None = None
    ) -> PostgresStore:
        """Open (creating or migrating the schema) and lock run ``run`` (a name or a run
        id): :class:`LockedError` naming the holder if another store has it."""
        return cls(*open_run(url, run, password_file, shared=False))

    @classmethod
    def open_readonly(
        cls, url: str, *, run: str = DEFAULT_RUN, password_file: Path | None = None
    ) -> PostgresStore:
        """Read a run while others write it (``purger status``): no lock, no migration,
        and every write refused by the server."""
        conn = connect(url, password_file)
        try:
            try:
                conn.db.execute("SET default_transaction_read_only = on")
                version = schema_version(conn.db, conn.shown)
                if version == 0:
                    raise InputError("no purger state in this database", where=conn.shown)
                check_version(version, conn.shown)
                name = resolve_run(conn.db, run, conn.shown)
            except psycopg.Error as err:
                raise conn.error("read", err) from None
        except BaseException:
            conn.db.close()
            raise
        return cls(conn, name)

    @property
    def url(self) -> str:
        """The database's URL, password redacted."""
        return self._conn.shown

    @property
    def name(self) -> str:
        """The run's name in the database."""
        return self._name

    def close(self) -> None:
        """Close the connection, which releases the run's lock."""
        if not self._closed:
            self._closed = True
            self._conn.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def load_run(self) -> RunRecord | None:
        """The run recorded under this name, or ``None`` before it starts."""
        with self._reading() as db:
            row = db.execute(
                "SELECT id, fingerprint, provider, provider_options, key_templates,"
                " url_templates, purger_version, created_at FROM purger.run WHERE name = %s",
                (self._name,),
            ).fetchone()
            if row is None:
                return None
            shards = db.execute(
                "SELECT id, range_start, range_limit, count, weight FROM purger.shard"
                " WHERE run = %s ORDER BY id",
                (row[0],),
            ).fetchall()
        return RunRecord(
            fingerprint=str(row[1]),
            provider=str(row[2]),
            provider_options=json.loads(str(row[3])),
            key_templates=tuple(json.loads(str(row[4]))),
            url_templates=tuple(json.loads(str(row[5]))),
            shards=tuple(Shard(*shard) for shard in shards),  # type: ignore[arg-type]
            purger_version=str(row[6]),
            created_at=_iso(row[7]),
        )

    def start_run(self, record: RunRecord) -> None:
        """Record a new run under this name and one progress row per shard, atomically."""
        options = to_json(record.provider_options, "provider_options")
        keys = to_json(list(record.key_templates), "key_templates")
        urls = to_json(list(record.url_templates), "url_templates")
        with self._writing() as db:
            # ON CONFLICT: of two leased runners starting the run together, one records it.
            row = db.execute(
                "INSERT INTO purger.run (name, run_id, fingerprint, provider, provider_options,"
                " key_templates, url_templates, purger_version)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING"
                " RETURNING id",
                (
                    self._name,
                    uuid.uuid4().hex[:12],
                    record.fingerprint,
                    record.provider,
                    options,
                    keys,
                    urls,
                    record.purger_version,
                ),
            ).fetchone()
            if row is None:
                raise UsageError(
                    f"state {self._where} already holds a run; use --resume or another run name"
                )
            run = cast(int, row[0])
            with db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO purger.shard (run, id, range_start, range_limit, count, weight)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    [(run, s.id, s.start, s.limit, s.count, s.weight) for s in record.shards],
                )

    def check_resume(self, record: RunRecord) -> None:
        """Refuse to resume a run made by another plan, provider, options or templates."""
        stored = self.load_run()
        if stored is None:
            raise UsageError(f"nothing to resume in {self._where}")
        found = differences(stored, record)
        if found:
            raise StateMismatchError(
                f"state {self._where} belongs to another run: {'; '.join(found)}"
            )

    def progress(self) -> dict[int, ShardProgress]:
        """Every shard's progress, by shard id."""
        with self._reading() as db:
            rows = db.execute(
                "SELECT s.id, s.cursor, s.done, s.done_ahead, s.targets_done FROM purger.shard s"
                " JOIN purger.run r ON r.id = s.run WHERE r.name = %s ORDER BY s.id",
                (self._name,),
            ).fetchall()
        return {cast(int, row[0]): progress_of(*row) for row in rows}

    def commit(
        self,
        updates: Sequence[ShardProgress],
        failures: Sequence[Failure] = (),
        status: Mapping[str, str] | None = None,
        history: Sequence[RatePoint] = (),
        retried: Sequence[Failure] = (),
    ) -> None:
        """As :meth:`purger.state.sqlite.StateStore.commit`: all or none, durably."""
        if not updates and not failures and not status and not history and not retried:
            return
        with self._writing(pipelined=True) as db:
            run = self._run_row(db)
            if retried:
                _settle(db, run, retried, failures)
            if history:
                db.execute(
                    "INSERT INTO purger.rate_history (run, at, rate, allowed, targets, held)"
                    " SELECT %s, now(), r, a, t, h FROM unnest(%s::float8[], %s::float8[],"
                    " %s::int8[], %s::text[]) WITH ORDINALITY AS u(r, a, t, h, n) ORDER BY n",
                    (
                        run,
                        [p.rate for p in history],
                        [None if math.isinf(p.allowed) else p.allowed for p in history],
                        [p.targets for p in history],
                        [",".join(p.held) for p in history],
                    ),
                )
            if status:
                db.execute(
                    "INSERT INTO purger.status (run, key, value)"
                    " SELECT %s, * FROM unnest(%s::text[], %s::text[])"
                    " ON CONFLICT (run, key) DO UPDATE SET value = excluded.value",
                    (run, list(status), list(status.values())),
                )
            if updates:
                self._apply_updates(db, run, updates)
            if failures:
                db.execute(
                    "INSERT INTO purger.failure (run, target, kind, shard_id, reason)"
                    " SELECT %s, t, k, s, r FROM unnest(%s::text[], %s::text[], %s::int4[],"
                    " %s::text[]) WITH ORDINALITY AS u(t, k, s, r, n) ORDER BY n",
                    (
                        run,
                        [f.target for f in failures],
                        [str(f.kind) for f in failures],
                        [f.shard_id for f in failures],
                        [f.reason for f in failures],
                    ),
                )

    def run_id(self) -> str | None:
        """The run's id, made when it starts (``None`` before)."""
        with self._reading() as db:
            row = db.execute(
                "SELECT run_id FROM purger.run WHERE name = %s", (self._name,)
            ).fetchone()
        return None if row is None else str(row[0])

    def rate_history(self) -> list[tuple[str, RatePoint]]:
        """Every rate point committed, oldest first, each with when it was committed."""
        with self._reading() as db:
            rows = db.execute(
                "SELECT h.at, h.rate, h.allowed, h.targets, h.held FROM purger.rate_history h"
                " JOIN purger.run r ON r.id = h.run WHERE r.name = %s ORDER BY h.seq",
                (self._name,),
            ).fetchall()
        return [
            (
                _iso(at),
                RatePoint(
                    rate=cast(float, rate),
                    allowed=math.inf if allowed is None else cast(float, allowed),
                    targets=cast(int, targets),
                    held=tuple(h for h in cast(str, held).split(",") if h),
                ),
            )
            for at, rate, allowed, targets, held in rows
        ]

    def status(self) -> dict[str, str]:
        """The latest ``status`` values committed (ETA, rate, targets)."""
        with self._reading() as db:
            rows = db.execute(
                "SELECT s.key, s.value FROM purger.status s JOIN purger.run r ON r.id = s.run"
                " WHERE r.name = %s",
                (self._name,),
            ).fetchall()
        return {str(key): str(value) for key, value in rows}

    def failures(self) -> list[Failure]:
        """Every recorded failure, in the order recorded."""
        with self._reading() as db:
            rows = db.execute(
                "SELECT f.target, f.kind, f.shard_id, f.reason FROM purger.failure f"
                " JOIN purger.run r ON r.id = f.run WHERE r.name = %s ORDER BY f.seq",
                (self._name,),
            ).fetchall()
        return [
            Failure(
                target=str(target),
                kind=TargetKind(str(kind)),
                shard_id=cast(int, shard),
                reason=str(reason),
            )
            for target, kind, shard, reason in rows
        ]

    def leased(self) -> int:
        """Shards not done that a runner holds now (a live lease): the run is going."""
        with self._reading() as db:
            row = db.execute(
                "SELECT count(*) FROM purger.shard s JOIN purger.run r ON r.id = s.run"
                " WHERE r.name = %s AND NOT s.done AND s.owner IS NOT NULL"
                " AND s.lease_until > now()",
                (self._name,),
            ).fetchone()
        return 0 if row is None else int(cast(int, row[0]))

    def runners(self) -> list[dict[str, object]]:
        """Every runner that joined the run, last heard first: host, pid, last heartbeat
        (and seconds since, by the database's clock) and the shards it holds now."""
        with self._reading() as db:
            rows = db.execute(
                "SELECT u.id, u.host, u.pid, u.heartbeat,"
                " extract(epoch FROM now() - u.heartbeat)::float8,"
                " (SELECT count(*) FROM purger.shard s WHERE s.run = r.id AND s.owner = u.id"
                "  AND NOT s.done AND s.lease_until > now())"
                " FROM purger.runner u JOIN purger.run r ON r.id = u.run WHERE r.name = %s"
                " ORDER BY u.heartbeat DESC, u.id",
                (self._name,),
            ).fetchall()
        return [
            {
                "id": str(id_),
                "host": str(host),
                "pid": cast(int, pid),
                "heartbeat": _iso(beat),
                "seconds_since": round(cast(float, since), 1),
                "shards_held": int(cast(int, held)),
            }
            for id_, host, pid, beat, since, held in rows
        ]

    def summary(self) -> StateSummary:
        """Shard, done-shard, target and failure counts."""
        with self._reading() as db:
            row = db.execute(
                "SELECT count(s.id), count(s.id) FILTER (WHERE s.done),"
                " coalesce(sum(s.targets_done), 0),"
                " (SELECT count(*) FROM purger.failure f WHERE f.run = r.id)"
                " FROM purger.run r LEFT JOIN purger.shard s ON s.run = r.id"
                " WHERE r.name = %s GROUP BY r.id",
                (self._name,),
            ).fetchone()
        if row is None:
            return StateSummary(shards=0, shards_done=0, targets_done=0, failures=0)
        shards, done, targets, failures = (int(cast(int, value)) for value in row)
        return StateSummary(
            shards=shards, shards_done=done, targets_done=targets, failures=failures
        )

    def _apply_updates(self, db: _Db, run: int, updates: Sequence[ShardProgress]) -> None:
        """Write shard progress within a commit (leased runners fence it)."""
        _update_shards(db, run, updates, self._where)

    @property
    def _where(self) -> str:
        return f"{self._conn.shown} (run {self._name})"

    def _run_row(self, db: _Db) -> int:
        if self._row is None:
            row = db.execute("SELECT id FROM purger.run WHERE name = %s", (self._name,))
            found = row.fetchone()
            if found is None:
                raise ValueError(f"state {self._where} holds no run yet")
            self._row = cast(int, found[0])
        return self._row

    @contextmanager
    def _reading(self) -> Iterator[_Db]:
        with self._guard:
            try:
                yield self._conn.db
            except psycopg.Error as err:
                raise self._conn.error("read", err, self._where) from None

    @contextmanager
    def _writing(self, *, pipelined: bool = False) -> Iterator[_Db]:
        """One transaction, all or nothing; a database error is UnavailableError (one
        line, URL redacted): a run cannot go on without its state. ``pipelined``: the
        statements go out together, and only reading a result waits for the server."""
        db = self._conn.db
        with self._guard:
            try:
                with db.pipeline() if pipelined else nullcontext(), db.transaction():
                    yield db
            except psycopg.Error as err:
                raise self._conn.error("write", err, self._where) from None


def open_run(
    url: str, run: str, password_file: Path | None, *, shared: bool
) -> tuple[Connected, str]:
    """Connect, migrate, resolve the run's name and take its lock (shared or not)."""
    conn = connect(url, password_file)
    try:
        try:
            migrate(conn.db, conn.shown)
            name = resolve_run(conn.db, run, conn.shown)
            lock_run(conn, name, shared=shared)
        except psycopg.Error as err:
            raise conn.error("open", err) from None
    except BaseException:
        conn.db.close()
        raise
    return conn, name


def _update_shards(db: _Db, run: int, updates: Sequence[ShardProgress], where: str) -> None:
    latest = {u.shard_id: u for u in updates}  # the last update of a shard wins
    rows = list(latest.values())
    changed = db.execute(
        "UPDATE purger.shard s SET cursor = u.cursor, done = u.done, done_ahead = u.ahead,"
        " targets_done = u.targets FROM unnest(%s::int4[], %s::text[], %s::bool[],"
        " %s::text[], %s::int8[]) AS u(id, cursor, done, ahead, targets)"
        " WHERE s.run = %s AND s.id = u.id RETURNING s.id",
        (
            [u.shard_id for u in rows],
            [u.cursor for u in rows],
            [u.done for u in rows],
            [ahead_json(u) for u in rows],
            [u.targets_done for u in rows],
            run,
        ),
    ).fetchall()  # in a pipeline, the one wait for the server before COMMIT
    if len(changed) != len(rows):
        known = {r[0] for r in db.execute("SELECT id FROM purger.shard WHERE run = %s", (run,))}
        raise ValueError(f"state {where} has no shard {sorted(latest.keys() - known)}")


def _settle(db: _Db, run: int, retried: Sequence[Failure], again: Sequence[Failure]) -> None:
    """Retried failures leave; those purged now count in their shard."""
    failed_again = {(str(f.kind), f.target) for f in again}
    unique = {(str(f.kind), f.target): f for f in retried}
    db.execute(
        "DELETE FROM purger.failure f USING unnest(%s::text[], %s::text[]) AS r(kind, target)"
        " WHERE f.run = %s AND f.kind = r.kind AND f.target = r.target",
        ([kind for kind, _ in unique], [target for _, target in unique], run),
    )
    purged: dict[int, int] = {}
    for key, failure in unique.items():
        if key not in failed_again:
            purged[failure.shard_id] = purged.get(failure.shard_id, 0) + 1
    db.execute(
        "UPDATE purger.shard s SET targets_done = s.targets_done + p.count"
        " FROM unnest(%s::int4[], %s::int8[]) AS p(id, count) WHERE s.run = %s AND s.id = p.id",
        (list(purged), list(purged.values()), run),
    )


def progress_of(
    shard_id: object, cursor: object, done: object, ahead: object, targets: object
) -> ShardProgress:
    """A shard row's progress columns as the engine reads them."""
    return ShardProgress(
        shard_id=cast(int, shard_id),
        cursor=cast(str | None, cursor),
        done=bool(done),
        done_ahead=frozenset(json.loads(cast(str, ahead))),
        targets_done=cast(int, targets),
    )


def ahead_json(update: ShardProgress) -> str:
    """``done_ahead`` as stored: a sorted JSON list."""
    return json.dumps(sorted(update.done_ahead))


def _iso(value: object) -> str:
    """A timestamptz as SQLite's store writes it: UTC ISO 8601 to the second."""
    assert isinstance(value, datetime)  # noqa: S101 - timestamptz columns
    return value.astimezone(UTC).isoformat(timespec="seconds")
