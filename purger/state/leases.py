"""Shard leases: several runners on one run in PostgreSQL, as job systems share work
(shared/reference/runners.md).

A runner claims shards with ``SELECT ... FOR UPDATE SKIP LOCKED`` (two runners never get
the same one and never wait on each other), holds them by :meth:`LeasedStore.heartbeat`
for ``lease_ttl`` seconds at a time, and every progress write is fenced: it applies only
while the shard's owner and epoch are still this runner's, else the whole commit is
refused (:class:`LeaseLostError`). A runner that stops heartbeating (SIGKILL, network cut)
loses its shards after the TTL; the next claim bumps the epoch and continues each one from
its cursor. Times are the database's clock, never the runners'.
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast

import psycopg

from purger.errors import LeaseLostError, UsageError
from purger.state.pgconnect import Connected
from purger.state.pgruns import DEFAULT_RUN
from purger.state.postgres import PostgresStore, ahead_json, open_run, progress_of
from purger.state.records import ShardProgress

__all__ = ["DEFAULT_LEASE_TTL", "LeasedStore", "ShardLease"]

#: Seconds a runner holds a shard without a heartbeat (``--lease-ttl``).
DEFAULT_LEASE_TTL: Final = 30.0
_Db = psycopg.Connection[tuple[object, ...]]
_CLAIM: Final = """
    WITH free AS (
        SELECT id FROM purger.shard
        WHERE run = %(run)s AND NOT done AND (owner IS NULL OR lease_until < now())
        ORDER BY weight DESC, id LIMIT %(count)s FOR UPDATE SKIP LOCKED)
    UPDATE purger.shard s SET owner = %(owner)s, epoch = s.epoch + 1,
        lease_until = now() + make_interval(secs => %(ttl)s)
    FROM free WHERE s.run = %(run)s AND s.id = free.id
    RETURNING s.id, s.epoch, s.cursor, s.done, s.done_ahead, s.targets_done"""
_FENCED_UPDATE: Final = """
    UPDATE purger.shard s SET cursor = u.cursor, done = u.done, done_ahead = u.ahead,
        targets_done = u.targets
    FROM unnest(%s::int4[], %s::text[], %s::bool[], %s::text[], %s::int8[], %s::int8[])
        AS u(id, cursor, done, ahead, targets, epoch)
    WHERE s.run = %s AND s.id = u.id AND s.owner = %s AND s.epoch = u.epoch
    RETURNING s.id"""


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardLease:
    """A shard this runner now holds, at ``epoch``, and where it stands."""

    shard_id: int
    epoch: int
    progress: ShardProgress


class LeasedStore(PostgresStore):
    """A run's state shared by several runners, each holding the shards it claimed."""

    __slots__ = ("_epochs", "_runner", "_ttl")

    def __init__(self, conn: Connected, name: str, runner: str, ttl: float) -> None:
        super().__init__(conn, name)
        self._runner = runner
        self._ttl = ttl
        self._epochs: dict[int, int] = {}  # shard id -> epoch of our lease

    @classmethod
    def join(
        cls,
        url: str,
        *,
        run: str = DEFAULT_RUN,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        password_file: Path | None = None,
    ) -> LeasedStore:
        """Join run ``run`` beside other leased runners (a lone :meth:`open` keeps them
        out, and they it). The run itself is recorded by the first, with ``start_run``."""
        if not (math.isfinite(lease_ttl) and lease_ttl > 0):
            raise UsageError(f"--lease-ttl must be a positive number of seconds, not {lease_ttl}")
        conn, name = open_run(url, run, password_file, shared=True)
        runner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        return cls(conn, name, runner, lease_ttl)

    @property
    def runner(self) -> str:
        """This runner's id (host, pid and a random part), the owner of its shards."""
        return self._runner

    @property
    def lease_ttl(self) -> float:
        """Seconds a lease lasts without a heartbeat."""
        return self._ttl

    def held(self) -> dict[int, int]:
        """The shards this runner believes it holds, with their epochs."""
        with self._guard:
            return dict(self._epochs)

    def claim(self, count: int = 1) -> list[ShardLease]:
        """Up to ``count`` shards not done and free (never claimed, released, or their
        lease expired), heaviest first; none if every one is held or done."""
        with self._writing() as db:
            run = self._run_row(db)
            rows = db.execute(
                _CLAIM,
                {"run": run, "count": count, "owner": self._runner, "ttl": self._ttl},
            ).fetchall()
            self._beat(db, run)
        leases = []
        for id_, epoch, *rest in sorted(rows, key=lambda row: cast(int, row[0])):
            self._epochs[cast(int, id_)] = cast(int, epoch)
            leases.append(
                ShardLease(
                    shard_id=cast(int, id_),
                    epoch=cast(int, epoch),
                    progress=progress_of(id_, *rest),
                )
            )
        return leases

    def heartbeat(self) -> frozenset[int]:
        """Extend every lease still ours (owner and epoch unchanged, even if it lapsed and
        nobody took it); return the shards lost to another runner, now forgotten."""
        with self._writing() as db:
            run = self._run_row(db)
            held = dict(self._epochs)
            kept = db.execute(
                "UPDATE purger.shard s SET lease_until = now() + make_interval(secs => %s)"
                " FROM unnest(%s::int4[], %s::int8[]) AS h(id, epoch)"
                " WHERE s.run = %s AND s.id = h.id AND s.owner = %s AND s.epoch = h.epoch"
                " RETURNING s.id",
                (self._ttl, list(held), list(held.values()), run, self._runner),
            ).fetchall()
            self._beat(db, run)
        lost = frozenset(held) - {cast(int, row[0]) for row in kept}
        self._forget(lost)
        return lost

    def release(self, shard_ids: Sequence[int]) -> None:
        """Give shards back (a stop): another runner may claim them at once."""
        with self._writing() as db:
            run = self._run_row(db)
            mine = {i: self._epochs[i] for i in shard_ids if i in self._epochs}
            db.execute(
                "UPDATE purger.shard s SET owner = NULL, lease_until = NULL"
                " FROM unnest(%s::int4[], %s::int8[]) AS h(id, epoch)"
                " WHERE s.run = %s AND s.id = h.id AND s.owner = %s AND s.epoch = h.epoch",
                (list(mine), list(mine.values()), run, self._runner),
            )
        self._forget(mine)

    def _apply_updates(self, db: _Db, run: int, updates: Sequence[ShardProgress]) -> None:
        """Progress of held shards only, each at its epoch: one lost, and nothing of the
        commit is written."""
        latest = {u.shard_id: u for u in updates}
        if missing := sorted(latest.keys() - self._epochs.keys()):
            raise LeaseLostError(f"state {self._where}: this runner holds no lease on {missing}")
        rows = list(latest.values())
        written = db.execute(
            _FENCED_UPDATE,
            (
                [u.shard_id for u in rows],
                [u.cursor for u in rows],
                [u.done for u in rows],
                [ahead_json(u) for u in rows],
                [u.targets_done for u in rows],
                [self._epochs[u.shard_id] for u in rows],
                run,
                self._runner,
            ),
        ).fetchall()
        if lost := sorted(latest.keys() - {cast(int, row[0]) for row in written}):
            self._forget(lost)
            raise LeaseLostError(
                f"state {self._where}: the lease on shard {lost} was lost to another runner;"
                " nothing of this commit was written"
            )

    def _beat(self, db: _Db, run: int) -> None:
        """This runner's row: alive now (``purger status`` lists runners by it)."""
        db.execute(
            "INSERT INTO purger.runner (run, id, host, pid, heartbeat)"
            " VALUES (%s, %s, %s, %s, now()) ON CONFLICT (run, id) DO UPDATE"
            " SET heartbeat = excluded.heartbeat",
            (run, self._runner, socket.gethostname(), os.getpid()),
        )

    def _forget(self, shard_ids: Iterable[int]) -> None:
        for shard_id in shard_ids:
            self._epochs.pop(shard_id, None)
