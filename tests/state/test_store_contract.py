"""The store contract, for SQLite and PostgreSQL alike: round trips, durability across a
reopen, all-or-nothing commits, the lock (in and across processes, after a SIGKILL), resume
checks, refused secrets, failures and their settling, run ids, rate history.

Cases copied from ``test_state.py`` (which stays SQLite's own: file format, WAL, refusals
of foreign files), each run against both backends through :func:`open_store`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from purger.errors import LockedError, StateMismatchError, UsageError
from purger.model import Secret, TargetKind
from purger.planning.plan import Shard
from purger.state.protocol import Store
from purger.state.sqlite import Failure, RatePoint, RunRecord, ShardProgress, StateSummary
from tests.state.conftest import Backend

SHARDS = (
    Shard(0, "", "g", 120, 120.0),
    Shard(1, "g", "p", 80, 95.5),
    Shard(2, "p", None, 40, 40.0),
)
_OPEN = """
import sys
from pathlib import Path
from purger.state.stores import open_store
def store():
    return open_store(sys.argv[1], password_file=Path(sys.argv[2]) if sys.argv[2] else None)
"""
# Exits 0 if it could open the store, 75 (EX_TEMPFAIL) with the message if it was locked out.
CONTENDER = (
    _OPEN
    + """
from purger.errors import LockedError
try:
    store().close()
except LockedError as err:
    print(err, file=sys.stderr)
    sys.exit(75)
"""
)
# Opens the store, commits one update, says so, then sleeps until it is killed.
HOLDER = (
    _OPEN
    + """
import time
from purger.state.sqlite import ShardProgress
held = store()
held.commit([ShardProgress(shard_id=0, cursor="m", done_ahead=frozenset({"q"}), targets_done=7)])
print("ready", flush=True)
time.sleep(120)
"""
)
#: Bound on waiting for the server to notice a killed holder's closed connection.
_RELEASE_WAIT = 30.0


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


def stored_run(opened: Store) -> RunRecord:
    """The stored run, checked to be the default record apart from created_at."""
    loaded = opened.load_run()
    assert loaded is not None
    assert dataclasses.replace(loaded, created_at=None) == make_record()
    return loaded


@pytest.fixture
def store(backend: Backend):
    with backend.open() as opened:
        opened.start_run(make_record())
        yield opened


def start(script: str, backend: Backend, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", script, *backend.argv()], text=True, **kwargs
    )


def open_when_released(backend: Backend) -> Store:
    """Open the store, retrying while a dead holder's lock is still being released (the
    server drops it once it reads the closed socket), within a generous bound."""
    deadline = time.monotonic() + _RELEASE_WAIT
    while True:
        try:
            return backend.open()
        except LockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_fresh_store_is_empty(backend):
    """A new store holds no run, no progress, failures, status or history; counts zero."""
    with backend.open() as fresh:
        assert fresh.load_run() is None
        assert fresh.progress() == {}
        assert fresh.failures() == []
        assert fresh.status() == {}
        assert fresh.rate_history() == []
        assert fresh.run_id() is None
        assert fresh.summary() == StateSummary(shards=0, shards_done=0, targets_done=0, failures=0)


def test_run_record_round_trips_with_created_at(store):
    """load_run returns every field given to start_run, plus a UTC created_at set by the store."""
    loaded = stored_run(store)
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


def test_commit_is_durable_across_close_and_reopen(backend, store):
    """What commit wrote is there after the store is closed and opened again."""
    update = ShardProgress(shard_id=0, cursor="c", done_ahead=frozenset({"e"}), targets_done=9)
    failure = Failure(target="project/bad", kind=TargetKind.KEY, shard_id=0, reason="400")
    store.commit([update], [failure], status={"eta_s": "12.5"})
    store.close()
    with backend.open() as reopened:
        assert reopened.progress()[0] == update
        assert reopened.failures() == [failure]
        assert reopened.status()["eta_s"] == "12.5"
        stored_run(reopened)


def test_commit_is_all_or_nothing(store):
    """An update naming an unknown shard fails the whole commit: nothing of it is kept."""
    good = ShardProgress(shard_id=0, cursor="d", targets_done=3)
    failure = Failure(target="https://x/", kind=TargetKind.URL, shard_id=0, reason="422")
    with pytest.raises(ValueError, match=r"no shard \[7\]"):
        store.commit([good, ShardProgress(shard_id=7)], [failure], status={"rate": "1"})
    assert store.progress()[0] == ShardProgress(shard_id=0)
    assert store.failures() == []
    assert "rate" not in store.status()
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


def test_failures_are_kept_in_order(backend, store):
    """Failures come back in the order they were recorded, across commits and a reopen."""
    recorded = [
        Failure(target=f"project/n{i}", kind=kind, shard_id=i % 3, reason=f"HTTP 400 #{i}")
        for i, kind in enumerate([TargetKind.URL, TargetKind.KEY] * 5)
    ]
    for begin, end in [(0, 3), (3, 4), (4, 9), (9, 10)]:
        store.commit([ShardProgress(shard_id=0, cursor=f"n{end}")], recorded[begin:end])
    assert store.failures() == recorded
    assert store.summary().failures == 10
    store.close()
    with backend.open() as reopened:
        assert reopened.failures() == recorded


def test_second_open_in_process_is_locked_naming_pid(backend, store):
    """A second open while the first is open raises LockedError naming the state and our
    pid; the holder is not disturbed."""
    with pytest.raises(LockedError) as caught:
        backend.open()
    assert str(caught.value).startswith(
        f"{backend.where} is in use by another purger run (pid {os.getpid()}"
    )
    store.commit([ShardProgress(shard_id=0, cursor="b")])
    assert store.progress()[0].cursor == "b"


def test_second_process_is_locked_out_naming_holder_pid(backend, store):
    """Another process cannot open a held store; it is told the holder's pid, in one line."""
    child = start(CONTENDER, backend, stderr=subprocess.PIPE)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 75, stderr
    assert stderr.startswith(f"{backend.where} is in use by another purger run (pid {os.getpid()}")
    assert stderr.count("\n") == 1


def test_lock_is_released_on_close(backend, store):
    """After close (called twice, or by leaving the with block) the store opens again."""
    store.close()
    store.close()
    child = start(CONTENDER, backend, stderr=subprocess.PIPE)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 0, stderr
    with backend.open() as again:
        assert again.load_run() is not None
    with backend.open():
        pass


def test_lock_is_released_when_holder_is_sigkilled(backend, store):
    """A holder killed with SIGKILL leaves no lock behind, and its last commit survives."""
    store.close()
    holder = start(HOLDER, backend, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "ready\n"
        with pytest.raises(LockedError, match=rf"\(pid {holder.pid}\b"):
            backend.open()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=60)
    assert holder.returncode == -signal.SIGKILL
    with open_when_released(backend) as after:
        assert after.progress()[0] == ShardProgress(
            shard_id=0, cursor="m", done_ahead=frozenset({"q"}), targets_done=7
        )
        stored_run(after)


def test_start_run_twice_is_usage_error(backend, store):
    """A store that holds a run refuses another, and keeps the first one."""
    with pytest.raises(UsageError) as caught:
        store.start_run(make_record(fingerprint="00" * 32))
    assert str(caught.value).startswith(f"state {backend.where} already holds a run; use --resume")
    assert stored_run(store).fingerprint == "3f" * 32
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
def test_check_resume_names_what_differs(backend, store, changes, named):
    """A resume against another plan, provider, options, templates or shards is refused."""
    with pytest.raises(StateMismatchError) as caught:
        store.check_resume(make_record(**changes))
    message = str(caught.value)
    assert named in message
    assert message.startswith(f"state {backend.where} belongs to another run: ")
    assert "\n" not in message


def test_check_resume_without_a_run_is_usage_error(backend):
    """Resuming a fresh store is a usage error naming the state."""
    with backend.open() as fresh, pytest.raises(UsageError) as caught:
        fresh.check_resume(make_record())
    message = str(caught.value)
    # Each store says it in its own words (a file adds why it may hold no run): both name
    # the state and say there is nothing to resume, on one line.
    assert backend.where in message
    assert "resume" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "options",
    [
        {"token": Secret("s3cr3t")},
        {"auth": {"token": Secret("s3cr3t")}},
        {"headers": [("Fastly-Key", Secret("s3cr3t"))]},
    ],
    ids=["top", "nested", "in-list"],
)
def test_secret_in_provider_options_is_refused(backend, options):
    """A Secret anywhere in provider_options raises TypeError and nothing is stored."""
    with backend.open() as fresh:
        with pytest.raises(TypeError, match="is a Secret"):
            fresh.start_run(make_record(provider_options=options))
        assert fresh.load_run() is None
        assert fresh.progress() == {}


def test_a_run_has_a_stable_id(backend, store):
    """The id is made when the run starts and stays across reopens."""
    run_id = store.run_id()
    assert run_id is not None
    assert len(run_id) == 12
    store.close()
    with backend.open() as reopened:
        assert reopened.run_id() == run_id


def test_rate_history_round_trips(store):
    """Rate points are dated by the store, kept in order, unbounded rates as inf."""
    points = [
        RatePoint(rate=10.0, allowed=20.0, targets=5),
        RatePoint(rate=0.0, allowed=math.inf, targets=5, held=("health", "operator")),
    ]
    store.commit([], history=points[:1])
    store.commit([], history=points[1:])
    history = store.rate_history()
    assert [point for _, point in history] == points
    for at, _ in history:
        assert abs(datetime.now(UTC) - datetime.fromisoformat(at)) < timedelta(minutes=1)


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
    assert store.summary().failures == 1


# Names never hold control characters (names/nameset.py), and PostgreSQL's text cannot
# hold NUL: the cursors and chunk starts a store keeps are drawn without them.
NAMES = st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), max_size=6)


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


def test_progress_is_the_last_update_per_shard(backend, tmp_path):
    """After any sequence of commits, each shard's progress is its last update, even reopened
    (in PostgreSQL each example is a run of its own in the one database)."""

    def fresh(example: int) -> Callable[[], Store]:
        if backend.kind == "sqlite":
            spec = Backend("sqlite", str(tmp_path / f"{example}.sqlite"), None, "")
            return spec.open
        run = f"example-{example}"
        return lambda: backend.open(run=run)

    examples = iter(range(10**6))

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(commit_sequences())
    def check(case: tuple[int, list[list[ShardProgress]]]) -> None:
        shards, commits = case
        opener = fresh(next(examples))
        expected = {i: ShardProgress(shard_id=i) for i in range(shards)}
        record = make_record(shards=tuple(Shard(i, str(i), None, 1, 1.0) for i in range(shards)))
        with opener() as opened:
            opened.start_run(record)
            for updates in commits:
                opened.commit(updates)
                expected.update((u.shard_id, u) for u in updates)
            assert opened.progress() == expected
        with opener() as reopened:
            assert reopened.progress() == expected
            total = sum(p.targets_done for p in expected.values())
            assert reopened.summary().targets_done == total

    check()
