"""The state store: round trips, durability, the lock, resume checks, refusals, no secrets."""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from purger.errors import InputError, LockedError, StateError, StateMismatchError, UsageError
from purger.model import Secret, TargetKind
from purger.planning.plan import Shard
from purger.state.sqlite import (
    Failure,
    RatePoint,
    RunRecord,
    ShardProgress,
    StateStore,
    StateSummary,
)
from purger.state.status import status_document

SHARDS = (
    Shard(0, "", "g", 120, 120.0),
    Shard(1, "g", "p", 80, 95.5),
    Shard(2, "p", None, 40, 40.0),
)
# Exits 0 if it could open the store, 75 (EX_TEMPFAIL) with the message if it was locked out.
CONTENDER = """
import sys
from pathlib import Path
from purger.errors import LockedError
from purger.state.sqlite import StateStore
try:
    StateStore.open(Path(sys.argv[1])).close()
except LockedError as err:
    print(err, file=sys.stderr)
    sys.exit(75)
"""
# Opens the store, commits one update, says so, then sleeps until it is killed.
HOLDER = """
import sys, time
from pathlib import Path
from purger.state.sqlite import ShardProgress, StateStore
store = StateStore.open(Path(sys.argv[1]))
store.commit([ShardProgress(shard_id=0, cursor="m", done_ahead=frozenset({"q"}), targets_done=7)])
print("ready", flush=True)
time.sleep(120)
"""


def make_record(**changes: object) -> RunRecord:
    record = RunRecord(
        fingerprint="3f" * 32,
        provider="fastly",
        provider_options={
            "name": "fastly",
            "service_id": "SU1Z0isxPaozGVKXdv0eY",
            "hard": False,
            "timeout": 10.0,
            "endpoints": ["http://a:6081", "http://b:6081"],
            "edgerc": None,
            "nested": {"é": [1, 2.5, "ü"]},
        },
        key_templates=("project/{name}",),
        url_templates=("https://pypi.org/simple/{name}/", "https://pypi.org/pypi/{name}/json"),
        shards=SHARDS,
        purger_version="0.1.0",
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def store_run(opened: StateStore) -> RunRecord:
    """The stored run, checked to be the default record apart from created_at."""
    loaded = opened.load_run()
    assert loaded is not None
    assert dataclasses.replace(loaded, created_at=None) == make_record()
    return loaded


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "run.sqlite"


@pytest.fixture
def store(path: Path):
    with StateStore.open(path) as opened:
        opened.start_run(make_record())
        yield opened


def start(script: str, path: Path, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", script, str(path)], text=True, cwd=path.parent, **kwargs
    )


def test_fresh_store_is_empty(path):
    """A new file holds no run, no progress and no failures, and counts zero everywhere."""
    with StateStore.open(path) as fresh:
        assert fresh.load_run() is None
        assert fresh.progress() == {}
        assert fresh.failures() == []
        assert fresh.summary() == StateSummary(shards=0, shards_done=0, targets_done=0, failures=0)
    assert path.exists()


def test_run_record_round_trips_with_created_at(store):
    """load_run returns every field given to start_run, plus a UTC created_at set by the store."""
    loaded = store.load_run()
    assert loaded is not None
    assert dataclasses.replace(loaded, created_at=None) == make_record()
    assert loaded.created_at is not None
    created = datetime.fromisoformat(loaded.created_at)
    assert created.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=1)


def test_start_run_makes_one_unstarted_progress_row_per_shard(store):
    """Every shard starts with no cursor, not done, nothing ahead and zero targets."""
    assert store.progress() == {s.id: ShardProgress(shard_id=s.id) for s in SHARDS}
    assert store.summary() == StateSummary(shards=3, shards_done=0, targets_done=0, failures=0)


def test_progress_round_trips(store):
    """A committed update comes back field for field, and other shards are untouched."""
    update = ShardProgress(
        shard_id=1, cursor="h-x", done_ahead=frozenset({"k", "m0", "ñ"}), targets_done=2**40
    )
    store.commit([update, ShardProgress(shard_id=2, cursor=None, done=True, targets_done=40)])
    progress = store.progress()
    assert progress[1] == update
    assert progress[2] == ShardProgress(shard_id=2, done=True, targets_done=40)
    assert progress[0] == ShardProgress(shard_id=0)
    assert store.summary() == StateSummary(
        shards=3, shards_done=1, targets_done=2**40 + 40, failures=0
    )


def test_commit_is_durable_across_close_and_reopen(path, store):
    """What commit wrote is there after the store is closed and opened again."""
    update = ShardProgress(shard_id=0, cursor="c", done_ahead=frozenset({"e"}), targets_done=9)
    failure = Failure(target="project/bad", kind=TargetKind.KEY, shard_id=0, reason="400")
    store.commit([update], [failure])
    store.close()
    with StateStore.open(path) as reopened:
        assert reopened.progress()[0] == update
        assert reopened.failures() == [failure]
        store_run(reopened)


def test_commit_is_all_or_nothing(store):
    """An update naming an unknown shard fails the whole commit: nothing of it is kept."""
    good = ShardProgress(shard_id=0, cursor="d", targets_done=3)
    failure = Failure(target="https://x/", kind=TargetKind.URL, shard_id=0, reason="422")
    with pytest.raises(ValueError, match=r"no shard \[7\]"):
        store.commit([good, ShardProgress(shard_id=7)], [failure])
    assert store.progress()[0] == ShardProgress(shard_id=0)
    assert store.failures() == []
    store.commit([good])  # the store is still usable afterwards
    assert store.progress()[0] == good


def test_store_can_be_used_from_another_thread(store):
    """The writer task calls the store from worker threads, not the one that opened it."""
    update = ShardProgress(shard_id=2, cursor="q", targets_done=1)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            store.commit([update])
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    worker = threading.Thread(target=write)
    worker.start()
    worker.join()
    assert errors == []
    assert store.progress()[2] == update


def test_failures_are_kept_in_order(path, store):
    """Failures come back in the order they were recorded, across commits and a reopen."""
    recorded = [
        Failure(target=f"project/n{i}", kind=kind, shard_id=i % 3, reason=f"HTTP 400 #{i}")
        for i, kind in enumerate([TargetKind.URL, TargetKind.KEY] * 5)
    ]
    for start, stop in [(0, 3), (3, 4), (4, 9), (9, 10)]:
        store.commit([ShardProgress(shard_id=0, cursor=f"n{stop}")], recorded[start:stop])
    assert store.failures() == recorded
    assert store.summary().failures == 10
    store.close()
    with StateStore.open(path) as reopened:
        assert reopened.failures() == recorded


def test_state_file_is_in_wal_mode(path, store):
    """The file is left in WAL mode, so a commit appends to the log instead of rewriting pages."""
    store.close()
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        raw.close()


def test_second_open_in_process_is_locked_naming_pid(path, store):
    """A second open while the first is open raises LockedError naming the file and our pid."""
    with pytest.raises(LockedError) as caught:
        StateStore.open(path)
    message = str(caught.value)
    assert message == f"{path} is in use by another purger run (pid {os.getpid()})"
    store.commit([ShardProgress(shard_id=0, cursor="b")])  # the holder is not disturbed
    assert store.progress()[0].cursor == "b"


def test_second_process_is_locked_out_naming_holder_pid(path, store):
    """Another process cannot open a held store; it is told the holder's pid."""
    child = start(CONTENDER, path, stderr=subprocess.PIPE)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 75, stderr
    assert stderr.strip() == f"{path} is in use by another purger run (pid {os.getpid()})"


def test_lock_is_released_on_close(path, store):
    """After close (called twice, or by leaving the with block) the store opens again."""
    store.close()
    store.close()
    child = start(CONTENDER, path, stderr=subprocess.PIPE)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 0, stderr
    with StateStore.open(path) as again:
        assert again.load_run() is not None
    with StateStore.open(path):
        pass


def test_lock_is_released_when_holder_is_sigkilled(path, store):
    """A holder killed with SIGKILL leaves no lock behind, and its last commit survives."""
    store.close()
    holder = start(HOLDER, path, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "ready\n"
        with pytest.raises(LockedError, match=rf"\(pid {holder.pid}\)$"):
            StateStore.open(path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=60)
    assert holder.returncode == -signal.SIGKILL
    with StateStore.open(path) as after:
        assert after.progress()[0] == ShardProgress(
            shard_id=0, cursor="m", done_ahead=frozenset({"q"}), targets_done=7
        )
        store_run(after)


def test_start_run_twice_is_usage_error(path, store):
    """A store that holds a run refuses another, and keeps the first one."""
    with pytest.raises(UsageError) as caught:
        store.start_run(make_record(fingerprint="00" * 32))
    assert str(caught.value) == (
        f"state {path} already holds a run; use --resume or another --state"
    )
    assert store_run(store).fingerprint == "3f" * 32
    assert len(store.progress()) == len(SHARDS)


def test_check_resume_passes_for_the_same_run(store):
    """The same plan, provider, options and templates resume, whatever the purger version,
    and options given as tuples match the lists they are stored as."""
    options = dict(make_record().provider_options, endpoints=("http://a:6081", "http://b:6081"))
    store.check_resume(make_record(provider_options=options, purger_version="0.2.0"))


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"fingerprint": "ab" * 32}, f"plan fingerprint: state has {'3f' * 32}, this run"),
        ({"provider": "cloudflare"}, "provider: state has fastly, this run cloudflare"),
        ({"provider_options": {**make_record().provider_options, "hard": True}}, "options"),
        ({"key_templates": ("pkg/{name}",)}, "key templates: state has ['project/{name}']"),
        ({"url_templates": ()}, "url templates"),
        ({"shards": (*SHARDS[:2], Shard(2, "p", None, 41, 41.0))}, "shards differ from shard 2"),
    ],
)
def test_check_resume_names_what_differs(store, changes, named):
    """A resume against another plan, provider, options, templates or shards is refused."""
    with pytest.raises(StateMismatchError) as caught:
        store.check_resume(make_record(**changes))
    message = str(caught.value)
    assert named in message
    assert message.startswith(f"state {store.path} belongs to another run: ")
    assert "\n" not in message


def test_check_resume_names_fingerprint_first_and_each_option(store):
    """Several differences are all named, the fingerprint first, options by key."""
    options = {**make_record().provider_options, "hard": True, "service_id": "other"}
    del options["edgerc"]
    record = make_record(fingerprint="ab" * 32, provider="varnish", provider_options=options)
    with pytest.raises(StateMismatchError) as caught:
        store.check_resume(record)
    reasons = str(caught.value).split(": ", 1)[1].split("; ")
    assert reasons[0].startswith("plan fingerprint")
    assert reasons[1].startswith("provider: ")
    assert reasons[2] == "provider options differ: edgerc, hard, service_id"
    assert len(reasons) == 3


def test_check_resume_without_a_run_is_usage_error(path):
    """Resuming a fresh store is a usage error naming the file."""
    with StateStore.open(path) as fresh, pytest.raises(UsageError, match="holds no run to resume"):
        fresh.check_resume(make_record())


@pytest.mark.parametrize(
    "content",
    [
        b"project-a\nproject-b\n",
        bytes(range(256)) * 8,
        b"SQLite format 3\x00" + b"\xff" * 4000,
    ],
    ids=["text", "binary", "corrupt-sqlite"],
)
def test_non_sqlite_file_is_input_error_and_untouched(path, content):
    """A file that is not an SQLite database is refused, named, and left byte for byte."""
    path.write_bytes(content)
    with pytest.raises(InputError, match=rf"^{path}: ") as caught:
        StateStore.open(path)
    assert "Traceback" not in str(caught.value)
    assert path.read_bytes() == content
    assert not Path(f"{path}-wal").exists()
    assert not Path(f"{path}-journal").exists()


def test_other_sqlite_schema_is_input_error_and_untouched(path):
    """An SQLite database of another application is refused and not changed."""
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE users (name TEXT)")
    other.execute("INSERT INTO users VALUES ('alice')")
    other.commit()
    other.close()
    before = path.read_bytes()
    with pytest.raises(InputError, match=rf"^{path}: not a purger state file"):
        StateStore.open(path)
    assert path.read_bytes() == before


def test_other_schema_version_is_input_error_and_untouched(path, store):
    """A purger state of another schema version is refused and not changed."""
    store.close()
    newer = sqlite3.connect(path)
    newer.execute("PRAGMA user_version = 2")
    newer.close()
    before = path.read_bytes()
    with pytest.raises(InputError, match="state schema version 2; this purger reads version 1"):
        StateStore.open(path)
    assert path.read_bytes() == before


def test_an_empty_file_is_refused_untouched(path):
    """A zero-byte file (a truncated state) is not a fresh one: refused, left as it is,
    and no lock file is made beside it."""
    path.touch()
    with pytest.raises(InputError, match="not a purger state file"):
        StateStore.open(path)
    assert path.stat().st_size == 0
    assert not Path(f"{path}.lock").exists()


def test_an_empty_sqlite_database_is_refused_untouched(path):
    """A valid but empty SQLite database that purger did not make is not taken over."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.execute("DROP TABLE t")
    db.close()
    before = path.read_bytes()
    with pytest.raises(InputError, match="not a purger state file"):
        StateStore.open(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "options",
    [
        {"token": Secret("s3cr3t")},
        {"auth": {"token": Secret("s3cr3t")}},
        {"headers": [("Fastly-Key", Secret("s3cr3t"))]},
    ],
    ids=["top", "nested", "in-list"],
)
def test_secret_in_provider_options_is_refused(path, options):
    """A Secret anywhere in provider_options raises TypeError and nothing is stored."""
    with StateStore.open(path) as fresh:
        with pytest.raises(TypeError, match="is a Secret"):
            fresh.start_run(make_record(provider_options=options))
        assert fresh.load_run() is None
    assert b"s3cr3t" not in path.read_bytes()


def test_no_secret_from_the_environment_reaches_the_file(path, monkeypatch):
    """A token that lives only in the environment is nowhere in the file or its WAL."""
    token = "tok-" + secrets.token_hex(16)  # random, so it can only come from the environment
    monkeypatch.setenv("FASTLY_API_TOKEN", token)
    with StateStore.open(path) as fresh:
        fresh.start_run(make_record())
        fresh.commit(
            [ShardProgress(shard_id=1, cursor="h", done_ahead=frozenset({"k"}), targets_done=5)],
            [Failure(target="project/x", kind=TargetKind.KEY, shard_id=1, reason="HTTP 400")],
        )
        wal = Path(f"{path}-wal").read_bytes()
        assert b"project/{name}" in wal + path.read_bytes()  # the record did reach the disk
        assert token.encode() not in wal
        assert token.encode() not in path.read_bytes()
    assert token.encode() not in path.read_bytes()


NAMES = st.text(st.characters(codec="utf-8"), max_size=6)


@st.composite
def commit_sequences(draw: st.DrawFn) -> tuple[int, list[list[ShardProgress]]]:
    shards = draw(st.integers(1, 4))
    update = st.builds(
        ShardProgress,
        shard_id=st.integers(0, shards - 1),
        cursor=st.none() | NAMES,
        done=st.booleans(),
        done_ahead=st.frozensets(NAMES, max_size=4),
        targets_done=st.integers(0, 2**60),  # four shards summed stay within SQLite's int64
    )
    return shards, draw(st.lists(st.lists(update, max_size=4), max_size=6))


@settings(max_examples=40, deadline=None)
@given(commit_sequences())
def test_progress_is_the_last_update_per_shard(case):
    """After any sequence of commits, each shard's progress is its last update, even reopened."""
    shards, commits = case
    expected = {i: ShardProgress(shard_id=i) for i in range(shards)}
    record = make_record(shards=tuple(Shard(i, str(i), None, 1, 1.0) for i in range(shards)))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "state.sqlite"
        with StateStore.open(path) as store:
            store.start_run(record)
            for updates in commits:
                store.commit(updates)
                expected.update((u.shard_id, u) for u in updates)
            assert store.progress() == expected
        with StateStore.open(path) as reopened:
            assert reopened.progress() == expected
            assert reopened.summary().targets_done == sum(p.targets_done for p in expected.values())


def test_a_run_has_a_stable_id(path, store):
    """The id is made when the run starts and stays across reopens."""
    run_id = store.run_id()
    assert run_id is not None
    assert len(run_id) == 12
    store.close()
    with StateStore.open(path) as reopened:
        assert reopened.run_id() == run_id


def test_a_state_from_before_run_ids_gets_a_derived_stable_one(path, store):
    """An older state has no recorded id: one is derived from its run, the same each time."""
    store._db.execute("DELETE FROM status")
    derived = store.run_id()
    assert derived is not None
    assert len(derived) == 12
    assert store.run_id() == derived


def test_rate_history_round_trips_and_is_in_the_status_document(path, store):
    """Rate points are dated by the store, kept in order, unbounded rates as null."""
    store.commit(
        [],
        history=[
            RatePoint(rate=10.0, allowed=20.0, targets=5),
            RatePoint(rate=0.0, allowed=math.inf, targets=5, held=("health", "operator")),
        ],
    )
    history = store.rate_history()
    assert [point for _, point in history] == [
        RatePoint(rate=10.0, allowed=20.0, targets=5),
        RatePoint(rate=0.0, allowed=math.inf, targets=5, held=("health", "operator")),
    ]
    document = status_document(store)
    assert document["run_id"] == store.run_id()
    assert [p["allowed"] for p in document["rate_history"]] == [20.0, None]
    assert document["rate_history"][1]["held"] == ["health", "operator"]


def test_settling_retried_failures_clears_the_purged_and_keeps_the_refused(store):
    """A retry: targets purged now leave the failure list and count in their shard; one
    refused again stays, once, with the new reason."""
    old = [
        Failure(target="k/a", kind=TargetKind.KEY, shard_id=1, reason="400 old"),
        Failure(target="k/b", kind=TargetKind.KEY, shard_id=1, reason="400 old"),
        Failure(target="k/b", kind=TargetKind.KEY, shard_id=1, reason="400 older"),  # twice
        Failure(target="k/c", kind=TargetKind.KEY, shard_id=2, reason="400 old"),
    ]
    store.commit([], old)
    again = [Failure(target="k/b", kind=TargetKind.KEY, shard_id=1, reason="400 new")]
    store.commit([], again, retried=old)
    assert store.failures() == again
    progress = store.progress()
    assert progress[1].targets_done == 1
    assert progress[2].targets_done == 1
    assert status_document(store)["failure_reasons"] == [{"reason": "400 new", "count": 1}]


def test_a_lock_file_the_full_disk_cannot_take_is_one_line_could_not_start(path, monkeypatch):
    """Disk full while writing the pid into the lock file: StateError, not resumable
    (exit 4: nothing was sent), naming the file and the system's reason; no state made."""

    def full(*args: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("purger.state.files.os.pwrite", full)
    with pytest.raises(StateError) as raised:
        StateStore.open(path)
    assert not raised.value.resumable
    assert str(raised.value).startswith(
        f"{path}.lock: cannot write the state (No space left on device); nothing was sent"
    )
    assert not path.exists()


class _FailingDb:
    """A connection whose COMMIT fails as SQLite fails on a full disk or an fsync EIO."""

    def __init__(self, db: sqlite3.Connection, code: int, message: str) -> None:
        self._db = db
        self._code = code
        self._message = message

    @property
    def in_transaction(self) -> bool:
        return self._db.in_transaction

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == "COMMIT":
            error = sqlite3.OperationalError(self._message)
            error.sqlite_errorcode = self._code  # type: ignore[attr-defined]
            raise error
        return self._db.execute(sql, *args)

    def executemany(self, sql: str, *args: object) -> sqlite3.Cursor:
        return self._db.executemany(sql, *args)

    def close(self) -> None:
        self._db.close()


@pytest.mark.parametrize(
    ("code", "message", "why"),
    [
        (13, "database or disk is full", "No space left on device"),  # SQLITE_FULL
        (10 | (4 << 8), "disk I/O error", "Input/output error"),  # SQLITE_IOERR_FSYNC
    ],
)
def test_a_commit_the_disk_refuses_is_a_resumable_one_line_error(path, code, message, why):
    """A commit that cannot be written mid-run: StateError naming the file and the reason,
    resumable (exit 3), and nothing of it kept (all or none)."""
    with StateStore.open(path) as store:
        store.start_run(make_record())
        store._db = _FailingDb(store._db, code, message)  # type: ignore[assignment]
        with pytest.raises(StateError) as raised:
            store.commit([ShardProgress(shard_id=0, cursor="m", targets_done=5)])
        assert raised.value.resumable
        assert str(raised.value) == (
            f"{path}: cannot write the state ({why}); stopped, nothing is lost: "
            f"{'free space' if code == 13 else 'fix the disk'}, then --resume"
        )
        assert store.progress()[0].targets_done == 0


@pytest.mark.parametrize("which", ["state", "lock"])
def test_a_state_or_lock_file_deleted_under_the_run_stops_it(path, which):
    """The state (or its lock) deleted while the run holds it: the next commit refuses,
    resumable, naming the file (a deleted lock would let a second run in)."""
    with StateStore.open(path) as store:
        store.start_run(make_record())
        store.commit([ShardProgress(shard_id=0, cursor="c", targets_done=1)])
        gone = path if which == "state" else Path(f"{path}.lock")
        gone.unlink()
        with pytest.raises(StateError, match="deleted or replaced during the run") as raised:
            store.commit([ShardProgress(shard_id=0, cursor="m", targets_done=5)])
        assert raised.value.resumable
        assert str(raised.value).startswith(str(gone))


def test_a_state_is_never_left_half_made(path, monkeypatch):
    """A state is built beside its path and linked in whole: a failure while making it
    leaves neither the file nor the temporary one behind."""

    def refused(*args: object) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr("purger.state.files.os.fsync", refused)
    with pytest.raises(StateError, match=r"cannot write the state \(Input/output error\)"):
        StateStore.open(path)
    assert sorted(p.name for p in path.parent.iterdir()) == [f"{path.name}.lock"]


MOUNT = shutil.which("mount") or "/bin/mount"
UMOUNT = shutil.which("umount") or "/bin/umount"


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory on a read-only mount (a small tmpfs remounted ro): root included, nothing
    can be created in it. Needs the right to mount (root in the container)."""
    mount = tmp_path / "ro"
    mount.mkdir()
    made = subprocess.run(
        [MOUNT, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        gone = subprocess.run([UMOUNT, str(mount)], capture_output=True, check=False)
        assert gone.returncode == 0, gone.stderr.decode()


def test_status_reads_a_state_on_a_read_only_mount(read_only_dir):
    """A state closed cleanly (no WAL left), then its mount made read-only: it reads."""
    path = read_only_dir / "run.sqlite"
    with StateStore.open(path) as store:
        store.start_run(make_record())
        store.commit([ShardProgress(shard_id=1, cursor="k", targets_done=9)])
    Path(f"{path}.lock").unlink()
    subprocess.run([MOUNT, "-o", "remount,ro", str(read_only_dir)], check=True)
    with StateStore.open_readonly(path) as store:
        assert store.progress()[1].targets_done == 9
        assert status_document(store)["targets_done"] == 9
    assert sorted(p.name for p in read_only_dir.iterdir()) == ["run.sqlite"]


def test_status_reads_a_killed_runs_state_on_a_read_only_mount(read_only_dir):
    """A run SIGKILLed (its WAL and shared-memory files left), then the mount made
    read-only: the read sees what the WAL holds."""
    path = read_only_dir / "run.sqlite"
    with StateStore.open(path) as store:
        store.start_run(make_record())
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
    finally:
        holder.kill()
        holder.communicate()
    assert Path(f"{path}-wal").exists()
    subprocess.run([MOUNT, "-o", "remount,ro", str(read_only_dir)], check=True)
    with StateStore.open_readonly(path) as store:
        assert store.progress()[0].targets_done == 7
