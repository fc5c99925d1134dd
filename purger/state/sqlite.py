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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final

from purger.errors import InputError, StateError, StateMismatchError, UsageError
from purger.model import Secret, TargetKind
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

if TYPE_CHECKING:
    from purger.state.protocol import Store

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
    "status_document",
]

SCHEMA_VERSION: Final = 1
#: "purg" in the SQLite header's application_id tells a purger state from other databases.
_APPLICATION_ID: Final = 0x70757267
#: The run's latest figures for an operator's ``status``: ETA, observed rate. Made on open
#: too, for states created before it existed.
_STATUS_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS status (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
)
#: The run's rate over time, a point every few seconds, for ``status`` after the fact (made
#: on open too, like ``status``). ``allowed`` is NULL when unbounded (``--rate inf``).
_HISTORY_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS rate_history (seq INTEGER PRIMARY KEY, at TEXT NOT NULL,"
    " rate REAL NOT NULL, allowed REAL, targets INTEGER NOT NULL, held TEXT NOT NULL)"
)
#: What ``purger verify`` saw, a row per target, node and round (made on open too).
_VERIFY_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS verification (seq INTEGER PRIMARY KEY, at TEXT NOT NULL,"
    " round INTEGER NOT NULL, target TEXT NOT NULL, node TEXT NOT NULL, verdict TEXT NOT NULL,"
    " detail TEXT NOT NULL)"
)
#: Failures ``verify`` records start so; the next verify replaces them.
VERIFY_REASON: Final = "verify: "
#: Failure reasons in a status document, most frequent first.
_SHOWN_REASONS: Final = 10
#: ``status`` key of the run's id: made when the run starts, stable across resumes.
_RUN_ID: Final = "run_id"
_SCHEMA: Final = (
    """CREATE TABLE run (
        id INTEGER PRIMARY KEY CHECK (id = 1), fingerprint TEXT NOT NULL,
        provider TEXT NOT NULL, provider_options TEXT NOT NULL, key_templates TEXT NOT NULL,
        url_templates TEXT NOT NULL, purger_version TEXT NOT NULL, created_at TEXT NOT NULL)""",
    """CREATE TABLE shard (
        id INTEGER PRIMARY KEY, range_start TEXT NOT NULL, range_limit TEXT,
        count INTEGER NOT NULL, weight REAL NOT NULL, cursor TEXT,
        done INTEGER NOT NULL DEFAULT 0, done_ahead TEXT NOT NULL DEFAULT '[]',
        targets_done INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE failure (
        seq INTEGER PRIMARY KEY, target TEXT NOT NULL, kind TEXT NOT NULL,
        shard_id INTEGER NOT NULL, reason TEXT NOT NULL)""",
    f"PRAGMA application_id = {_APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """What a run was started with; a resume must match it (see :meth:`StateStore.check_resume`)."""

    fingerprint: str
    provider: str
    #: JSON-able and never secret; tuples come back from :meth:`StateStore.load_run` as lists.
    provider_options: Mapping[str, object]
    key_templates: tuple[str, ...]
    url_templates: tuple[str, ...]
    shards: tuple[Shard, ...]
    purger_version: str
    #: UTC ISO 8601, set by the store when the run starts; ignored by ``start_run``.
    created_at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardProgress:
    """How far a shard got: everything before ``cursor`` and the chunks in ``done_ahead``."""

    shard_id: int
    #: The first name not yet known to be purged; ``None``: start at the shard's start.
    cursor: str | None = None
    #: Every name of the shard is purged (or failed and recorded).
    done: bool = False
    #: First names of the chunks finished beyond the cursor (chunks finish out of order).
    done_ahead: frozenset[str] = frozenset()
    #: Targets purged so far, cumulative.
    targets_done: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """A target the provider refused for good, kept for the report and a later retry."""

    target: str
    kind: TargetKind
    shard_id: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RatePoint:
    """The run's pace at one moment (the store dates it when it commits it)."""

    #: Targets per second observed, smoothed over about a minute.
    rate: float
    #: The pacer's rate then: the ceiling, or what health allowed under it; inf: unbounded.
    allowed: float
    #: Targets purged so far by this execution.
    targets: int
    #: Who held new calls then (``"health"``, ``"operator"``), or ``()``.
    held: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    """One probe of ``purger verify``: a target through a node in a round (0: the first
    look, 1...: after each re-purge), its class (``fresh``, ``stale``...) and why."""

    round: int
    target: str
    node: str
    verdict: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StateSummary:
    """Counts for a progress line or a resume message, without loading every row."""

    shards: int
    shards_done: int
    targets_done: int
    failures: int


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
                create_whole(path, (*_SCHEMA, _STATUS_TABLE, _HISTORY_TABLE))
                check_magic(path)  # the file now there, ours or made meanwhile
            db = _connect(path)
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
                db, app_id = _read_only(uri)
            except sqlite3.Error as err:
                if not is_disk_trouble(err) or identity(f"{path}-wal") is not None:
                    raise
                # SQLite could not make its shared-memory file beside the state (a read-only
                # directory or mount) and there is no WAL: no run has it open, so it is read
                # as it is on disk.
                db, app_id = _read_only(f"{uri}&immutable=1")
        except sqlite3.Error as err:
            raise InputError(f"cannot read state: {err}", where=str(path)) from None
        if app_id != _APPLICATION_ID:
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
        options = _to_json(record.provider_options, "provider_options")
        keys = _to_json(list(record.key_templates), "key_templates")
        urls = _to_json(list(record.url_templates), "url_templates")
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
        differences = _differences(stored, record)
        if differences:
            raise StateMismatchError(
                f"state {self._path} belongs to another run: {'; '.join(differences)}"
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


def _read_only(uri: str) -> tuple[sqlite3.Connection, int]:
    """A read-only connection to ``uri`` and the file's application id (closed on error)."""
    db = sqlite3.connect(uri, uri=True, check_same_thread=False)
    try:
        (app_id,) = db.execute("PRAGMA application_id").fetchone()
    except BaseException:
        db.close()
        raise
    return db, app_id


def _connect(path: Path) -> sqlite3.Connection:
    """Open the purger state at ``path`` and set it up, writing nothing (not even
    ``journal_mode``) until reads have shown it is a purger state of this schema version."""
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as err:
        if is_disk_trouble(err):
            raise write_trouble(path, err, sent=False) from None
        raise InputError(f"cannot open state: {err}", where=str(path)) from None
    try:
        db.execute("PRAGMA synchronous = FULL")
        (app_id,) = db.execute("PRAGMA application_id").fetchone()
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if app_id != _APPLICATION_ID:
            raise InputError("not a purger state file (another SQLite database)", where=str(path))
        if version != SCHEMA_VERSION:
            raise InputError(
                f"state schema version {version}; this purger reads version {SCHEMA_VERSION}",
                where=str(path),
            )
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(_STATUS_TABLE)
        db.execute(_HISTORY_TABLE)
        db.execute(_VERIFY_TABLE)
    except sqlite3.Error as err:
        db.close()
        if is_disk_trouble(err):
            raise write_trouble(path, err, sent=False) from None
        raise InputError(f"cannot use as a purger state: {err}", where=str(path)) from None
    except BaseException:
        db.close()
        raise
    return db


def _to_json(value: object, where: str) -> str:
    """JSON for the file, refusing any :class:`Secret` however deeply it is nested."""
    _refuse_secrets(value, where)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _refuse_secrets(value: object, where: str) -> None:
    if isinstance(value, Secret):
        raise TypeError(f"{where} is a Secret: secrets are never written to the state file")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_secrets(item, f"{where}.{key}")
    elif isinstance(value, list | tuple | set | frozenset):
        for i, item in enumerate(value):
            _refuse_secrets(item, f"{where}[{i}]")


def _differences(stored: RunRecord, new: RunRecord) -> list[str]:
    """What differs between the stored run and this one, most decisive first."""
    found = []
    if stored.fingerprint != new.fingerprint:
        found.append(
            f"plan fingerprint: state has {stored.fingerprint}, this run {new.fingerprint}"
        )
    if stored.provider != new.provider:
        found.append(f"provider: state has {stored.provider}, this run {new.provider}")
    old, now = stored.provider_options, json.loads(_to_json(new.provider_options, "options"))
    if keys := sorted(k for k in old.keys() | now.keys() if old.get(k, ...) != now.get(k, ...)):
        found.append(f"provider options differ: {', '.join(keys)}")
    for label, was, got in (
        ("key templates", stored.key_templates, new.key_templates),
        ("url templates", stored.url_templates, new.url_templates),
    ):
        if was != got:
            found.append(f"{label}: state has {list(was)}, this run {list(got)}")
    if stored.shards != new.shards:
        pairs = zip(stored.shards, new.shards, strict=False)
        shortest = min(len(stored.shards), len(new.shards))
        first = next((i for i, (a, b) in enumerate(pairs) if a != b), shortest)
        found.append(
            f"shards differ from shard {first} on"
            f" (state has {len(stored.shards)}, this plan {len(new.shards)})"
        )
    return found


def holds_run(path: Path) -> bool:
    """Whether ``path`` is a purger state with a run recorded (``--resume-or-start``);
    ``False`` when there is no file; a file that is not a state is refused."""
    if identity(path) is None:
        return False
    with StateStore.open_readonly(path) as store:
        return store.load_run() is not None


def status_document(store: Store, where: str | None = None) -> dict[str, object]:
    """What ``purger status`` shows: the run and its id, each shard's progress, totals,
    rate and ETA, the rate over time, and the most frequent failure reasons."""
    run = store.load_run()
    progress = store.progress()
    status = store.status()
    summary = store.summary()
    shards = []
    for shard in run.shards if run is not None else ():
        done = progress.get(shard.id)
        shards.append(
            {
                "id": shard.id,
                "start": shard.start,
                "limit": shard.limit,
                "names": shard.count,
                "done": bool(done and done.done),
                "targets_done": done.targets_done if done else 0,
            }
        )
    eta = status.get("eta_s", "")
    reasons: dict[str, int] = {}
    for failure in store.failures():
        reasons[failure.reason] = reasons.get(failure.reason, 0) + 1
    return {
        # A file's path, or a database's redacted URL and run (``where``).
        "state": where if where is not None else str(getattr(store, "path", "")),
        "run_id": store.run_id(),
        "run": None
        if run is None
        else {
            "fingerprint": run.fingerprint,
            "provider": run.provider,
            "key_templates": list(run.key_templates),
            "url_templates": list(run.url_templates),
            "created_at": run.created_at,
        },
        "shards_done": summary.shards_done,
        "shards_total": summary.shards,
        "targets_done": summary.targets_done,
        "failures": summary.failures,
        "rate": float(status["rate"]) if status.get("rate") else None,
        "eta_s": float(eta) if eta else None,
        "shards": shards,
        "rate_history": [
            {
                "at": at,
                "rate": round(point.rate, 3),
                "allowed": None if math.isinf(point.allowed) else round(point.allowed, 3),
                "targets": point.targets,
                "held": list(point.held),
            }
            for at, point in store.rate_history()
        ],
        "failure_reasons": [
            {"reason": reason, "count": count}
            for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
        ][:_SHOWN_REASONS],
    }
