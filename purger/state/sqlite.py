"""The durable state store: what a run has purged, so that a crash or a kill loses nothing.

One SQLite file per run (WAL, ``synchronous=FULL``): a :meth:`StateStore.commit` is fsync'd
before it returns. Per shard it keeps a cursor (every name before it is purged) and the first
names of chunks finished beyond it, so a resume redoes at most the chunks in flight. A flock
on ``FILE.lock`` keeps a second run out, and the kernel drops it even when its holder is
SIGKILLed. Only :class:`RunRecord` fields are written, and a :class:`Secret` is refused.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final

from purger.errors import InputError, StateError, StateMismatchError, UsageError
from purger.model import TargetKind
from purger.planning.plan import Shard
from purger.state.files import (
    FileIdentity,
    check_magic,
    create_whole,
    identity,
    is_disk_trouble,
    lock,
    write_trouble,
)
from purger.state.records import (
    VERIFY_REASON,
    Failure,
    RatePoint,
    RunRecord,
    ShardProgress,
    StateSummary,
    Verification,
    differences,
    to_json,
)
from purger.state.sqliteschema import (
    APPLICATION_ID,
    HISTORY_TABLE,
    SCHEMA,
    SCHEMA_VERSION,
    STATUS_TABLE,
    connect,
    read_only,
)

# The record types are re-exported: they lived here before state/records.py, and
# engine/run.py, probing/ and cli/ still import them from here.
if TYPE_CHECKING:
    pass

__all__ = [
    "SCHEMA_VERSION",
    "VERIFY_REASON",
    "Failure",
    "RatePoint",
    "RunRecord",
    "ShardProgress",
    "StateStore",
    "StateSummary",
    "Verification",
    "holds_run",
]

#: ``status`` key of the run's id: made when the run starts, stable across resumes.
_RUN_ID: Final = "run_id"


class StateStore:
    """One run's state in one SQLite file, locked for as long as the store is open."""

    __slots__ = ("_closed", "_db", "_files", "_lock_fd", "_path")

    def __init__(
        self,
        path: Path,
        db: sqlite3.Connection,
        lock_fd: int | None,
        files: tuple[FileIdentity | None, FileIdentity] | None = None,
    ) -> None:
        self._path = path
        self._db = db
        self._lock_fd = lock_fd
        #: The state and lock files as opened: each commit checks they are still at their
        #: paths (a deleted state loses what follows; a deleted lock lets a second run in).
        self._files = files
        self._closed = False

    @classmethod
    def open(cls, path: Path) -> StateStore:
        """Open the state at ``path``, or create it whole, taking its lock
        (:class:`LockedError` if held). A file there that is not a purger state is refused,
        untouched; a disk that refuses a write is :class:`StateError`."""
        check_magic(path)
        lock_fd = lock(path)
        try:
            if identity(path) is None:
                create_whole(path, (*SCHEMA, STATUS_TABLE, HISTORY_TABLE))
                check_magic(path)  # the file now there, ours or made meanwhile
            db = connect(path)
            files = (identity(path), (os.fstat(lock_fd).st_dev, os.fstat(lock_fd).st_ino))
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(path, db, lock_fd, files)

    @classmethod
    def open_readonly(cls, path: Path) -> StateStore:
        """Open an existing state to read it, without its lock, while a run may be writing
        it (``purger status``), with no write access needed. Writing through it fails."""
        if not path.is_file():
            raise InputError("no such state file", where=str(path))
        check_magic(path)
        uri = f"{path.resolve().as_uri()}?mode=ro"
        try:
            try:
                db, app_id = read_only(uri)
            except sqlite3.Error as err:
                if not is_disk_trouble(err) or identity(f"{path}-wal") is not None:
                    raise
                # SQLite could not make its shared-memory file beside the state (a read-only
                # directory or mount) and there is no WAL: no run has it open, so it is read
                # as it is on disk.
                db, app_id = read_only(f"{uri}&immutable=1")
        except sqlite3.Error as err:
            raise InputError(f"cannot read state: {err}", where=str(path)) from None
        if app_id != APPLICATION_ID:
            db.close()
            raise InputError("not a purger state file", where=str(path))
        return cls(path, db, None)

    @property
    def path(self) -> Path:
        return self._path

    def close(self) -> None:
        """Close the database, then release the lock, so the next run finds it checkpointed."""
        if self._closed:
            return
        self._closed = True
        try:
            self._db.close()
        except sqlite3.Error:
            pass  # every commit is durable already; a checkpoint left undone is redone on open
        finally:
            fd, self._lock_fd = self._lock_fd, None
            if fd is not None:
                os.close(fd)  # closing the only descriptor releases the flock

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def load_run(self) -> RunRecord | None:
        """The run this state was started with, or ``None`` for a fresh store."""
        row = self._db.execute(
            "SELECT fingerprint, provider, provider_options, key_templates, url_templates,"
            " purger_version, created_at FROM run"
        ).fetchone()
        if row is None:
            return None
        shards = self._db.execute(
            "SELECT id, range_start, range_limit, count, weight FROM shard ORDER BY id"
        ).fetchall()
        return RunRecord(
            fingerprint=row[0],
            provider=row[1],
            provider_options=json.loads(row[2]),
            key_templates=tuple(json.loads(row[3])),
            url_templates=tuple(json.loads(row[4])),
            shards=tuple(Shard(*shard) for shard in shards),
            purger_version=row[5],
            created_at=row[6],
        )

    def start_run(self, record: RunRecord) -> None:
        """Record a new run and one progress row per shard, in one transaction."""
        options = to_json(record.provider_options, "provider_options")
        keys = to_json(list(record.key_templates), "key_templates")
        urls = to_json(list(record.url_templates), "url_templates")
        created_at = datetime.now(UTC).isoformat(timespec="seconds")
        with self._transaction(sent=False) as db:
            if db.execute("SELECT 1 FROM run").fetchone() is not None:
                raise UsageError(
                    f"state {self._path} already holds a run; use --resume or another --state"
                )
            values = [record.fingerprint, record.provider, options, keys, urls]
            values += [record.purger_version, created_at]
            db.execute("INSERT INTO run VALUES (1, ?, ?, ?, ?, ?, ?, ?)", values)
            db.execute(
                "INSERT OR REPLACE INTO status (key, value) VALUES (?, ?)",
                (_RUN_ID, uuid.uuid4().hex[:12]),
            )
            db.executemany(
                "INSERT INTO shard (id, range_start, range_limit, count, weight)"
                " VALUES (?, ?, ?, ?, ?)",
                [(s.id, s.start, s.limit, s.count, s.weight) for s in record.shards],
            )

    def check_resume(self, record: RunRecord) -> None:
        """Refuse to resume a state made by another plan, provider, options or templates."""
        stored = self.load_run()
        if stored is None:
            raise UsageError(
                f"{self._path} holds no run to resume (the run that made it stopped before it"
                " began; nothing was sent): run without --resume, or with --resume-or-start"
            )
        found = differences(stored, record)
        if found:
            raise StateMismatchError(
                f"state {self._path} belongs to another run: {'; '.join(found)}"
            )

    def progress(self) -> dict[int, ShardProgress]:
        """Every shard's progress, by shard id."""
        query = "SELECT id, cursor, done, done_ahead, targets_done FROM shard ORDER BY id"
        return {
            id_: ShardProgress(
                shard_id=id_,
                cursor=cursor,
                done=bool(done),
                done_ahead=frozenset(json.loads(ahead)),
                targets_done=targets,
            )
            for id_, cursor, done, ahead, targets in self._db.execute(query)
        }

    def commit(
        self,
        updates: Sequence[ShardProgress],
        failures: Sequence[Failure] = (),
        status: Mapping[str, str] | None = None,
        history: Sequence[RatePoint] = (),
        retried: Sequence[Failure] = (),
    ) -> None:
        """Replace each updated shard's progress, append ``failures``, set ``status``
        values (ETA, rate) and append ``history``, durably, all or none.

        ``retried``: failures recorded before and sent again (``run --retry-failed``).
        Their rows go; those among ``failures`` (failed again) come back with the new
        reason, and the others count as purged in their shard."""
        if not updates and not failures and not status and not history and not retried:
            return
        self._check_in_place()
        with self._transaction(sent=True) as db:
            if retried:
                self._settle(db, retried, failures)
            now = datetime.now(UTC).isoformat(timespec="seconds")
            db.executemany(
                "INSERT INTO rate_history (at, rate, allowed, targets, held)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        now,
                        p.rate,
                        None if math.isinf(p.allowed) else p.allowed,
                        p.targets,
                        ",".join(p.held),
                    )
                    for p in history
                ],
            )
            db.executemany(
                "INSERT INTO status (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                list((status or {}).items()),
            )
            rows = [
                (u.cursor, u.done, json.dumps(sorted(u.done_ahead)), u.targets_done, u.shard_id)
                for u in updates
            ]
            changed = db.executemany(
                "UPDATE shard SET cursor = ?, done = ?, done_ahead = ?, targets_done = ?"
                " WHERE id = ?",
                rows,
            ).rowcount
            if changed != len(rows):  # executemany sums the rows each update changed
                missing = sorted({u.shard_id for u in updates} - self.progress().keys())
                raise ValueError(f"state {self._path} has no shard {missing}")
            db.executemany(
                "INSERT INTO failure (target, kind, shard_id, reason) VALUES (?, ?, ?, ?)",
                [(f.target, str(f.kind), f.shard_id, f.reason) for f in failures],
            )

    @staticmethod
    def _settle(
        db: sqlite3.Connection, retried: Sequence[Failure], again: Sequence[Failure]
    ) -> None:
        failed_again = {(str(f.kind), f.target) for f in again}
        db.executemany(
            "DELETE FROM failure WHERE kind = ? AND target = ?",
            list({(str(f.kind), f.target) for f in retried}),
        )
        purged: dict[int, int] = {}
        for failure in {(str(f.kind), f.target): f for f in retried}.values():
            if (str(failure.kind), failure.target) not in failed_again:
                purged[failure.shard_id] = purged.get(failure.shard_id, 0) + 1
        db.executemany(
            "UPDATE shard SET targets_done = targets_done + ? WHERE id = ?",
            [(count, shard_id) for shard_id, count in purged.items()],
        )

    def run_id(self) -> str | None:
        """The run's id (``None`` before a run is recorded). A state made before ids were
        recorded gets one derived from what it holds, the same every time."""
        stored = self.status().get(_RUN_ID)
        if stored:
            return stored
        row = self._db.execute("SELECT fingerprint, created_at FROM run").fetchone()
        if row is None:
            return None
        return uuid.uuid5(uuid.NAMESPACE_URL, f"purger:{row[0]}:{row[1]}").hex[:12]

    def rate_history(self) -> list[tuple[str, RatePoint]]:
        """Every rate point committed, oldest first, each with when it was committed."""
        try:
            rows = self._db.execute(
                "SELECT at, rate, allowed, targets, held FROM rate_history ORDER BY seq"
            ).fetchall()
        except sqlite3.OperationalError:  # a read-only view of a state from before the table
            return []
        return [
            (
                at,
                RatePoint(
                    rate=rate,
                    allowed=math.inf if allowed is None else allowed,
                    targets=targets,
                    held=tuple(h for h in held.split(",") if h),
                ),
            )
            for at, rate, allowed, targets, held in rows
        ]

    def status(self) -> dict[str, str]:
        """The latest ``status`` values committed (ETA, rate, targets)."""
        try:
            return dict(self._db.execute("SELECT key, value FROM status").fetchall())
        except sqlite3.OperationalError:  # a read-only view of a state from before the table
            return {}

    def failures(self) -> list[Failure]:
        """Every recorded failure, in the order recorded."""
        rows = self._db.execute("SELECT target, kind, shard_id, reason FROM failure ORDER BY seq")
        return [
            Failure(target=row[0], kind=TargetKind(row[1]), shard_id=row[2], reason=row[3])
            for row in rows
        ]

    def record_verification(
        self, probes: Sequence[Verification], still_bad: Sequence[Failure]
    ) -> None:
        """Append ``probes``, and make ``still_bad`` the failures a verify leaves (those
        of an earlier verify go: their targets were looked at again), all or none."""
        with self._transaction(sent=True) as db:
            now = datetime.now(UTC).isoformat(timespec="seconds")
            db.executemany(
                "INSERT INTO verification (at, round, target, node, verdict, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(now, p.round, p.target, p.node, p.verdict, p.detail) for p in probes],
            )
            db.execute("DELETE FROM failure WHERE reason LIKE ?", (VERIFY_REASON + "%",))
            db.executemany(
                "INSERT INTO failure (target, kind, shard_id, reason) VALUES (?, ?, ?, ?)",
                [(f.target, str(f.kind), f.shard_id, f.reason) for f in still_bad],
            )

    def verifications(self) -> list[Verification]:
        """Every probe ``verify`` recorded, in order."""
        try:
            rows = self._db.execute(
                "SELECT round, target, node, verdict, detail FROM verification ORDER BY seq"
            ).fetchall()
        except sqlite3.OperationalError:  # a read-only view of a state from before the table
            return []
        return [
            Verification(round=r, target=t, node=n, verdict=v, detail=d) for r, t, n, v, d in rows
        ]

    def summary(self) -> StateSummary:
        """Shard, done-shard, target and failure counts."""
        shards, done, targets, failures = self._db.execute(
            "SELECT count(*), coalesce(sum(done), 0), coalesce(sum(targets_done), 0),"
            " (SELECT count(*) FROM failure) FROM shard"
        ).fetchone()
        return StateSummary(
            shards=shards, shards_done=done, targets_done=targets, failures=failures
        )

    def _check_in_place(self) -> None:
        """Stop (:class:`StateError`, resumable) when the state or the lock file the run
        opened is no longer at its path: deleted or replaced under the run."""
        if self._files is None:
            return
        state, lock_file = self._files
        if identity(self._path) != state:
            raise StateError(
                f"{self._path}: the state file was deleted or replaced during the run; "
                "stopped, sending nothing more (the progress it held went with it)",
                resumable=True,
            )
        if identity(f"{self._path}.lock") != lock_file:
            raise StateError(
                f"{self._path}.lock was deleted or replaced during the run, so a second run "
                "could take the state; stopped, nothing is lost: --resume",
                resumable=True,
            )

    @contextmanager
    def _transaction(self, *, sent: bool) -> Iterator[sqlite3.Connection]:
        """All or nothing, even on KeyboardInterrupt; a database error is
        :class:`StateError`, since a run cannot go on without its state (one line naming
        the file and why; ``sent``: the run has begun, so it stopped, resumable)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as err:
            raise write_trouble(self._path, err, sent=sent) from None


def holds_run(path: Path) -> bool:
    """Whether ``path`` is a purger state with a run recorded (``--resume-or-start``);
    ``False`` when there is no file; a file that is not a state is refused."""
    if identity(path) is None:
        return False
    with StateStore.open_readonly(path) as store:
        return store.load_run() is not None
