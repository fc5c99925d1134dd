"""Shard leases in the PostgreSQL store: runners (each its own store and connection) claim
disjoint shards, a lapsed lease is taken over from the cursor, and a write fenced by a lost
lease is refused whole; the schema migrates from version 1 keeping a run."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from purger.errors import LeaseLostError, LockedError, UsageError
from purger.model import TargetKind
from purger.planning.plan import Shard
from purger.state.leases import LeasedStore
from purger.state.pgschema import _MIGRATIONS, SCHEMA_VERSION
from purger.state.postgres import PostgresStore
from purger.state.sqlite import Failure, ShardProgress
from tests.state.test_store_contract import make_record

#: Heaviest first: 3, 1, 0, 2, then the rest by id.
SHARDS = (
    Shard(0, "", "d", 10, 30.0),
    Shard(1, "d", "h", 10, 40.0),
    Shard(2, "h", "m", 10, 20.0),
    Shard(3, "m", None, 10, 50.0),
)
#: Bound on waiting for a short lease to lapse on the database's clock.
_LAPSE_WAIT = 30.0


@pytest.fixture
def join(postgres, pg_url):
    """Make runners on one recorded run; all closed at the end."""
    joined: list[LeasedStore] = []

    def make(lease_ttl: float = 60.0) -> LeasedStore:
        store = LeasedStore.join(
            pg_url, run="shared", lease_ttl=lease_ttl, password_file=postgres.password_file
        )
        joined.append(store)
        if store.load_run() is None:
            store.start_run(make_record(shards=SHARDS))
        return store

    yield make
    for store in joined:
        store.close()


def claim_when_lapsed(store: LeasedStore, count: int) -> list:
    """Claim, retrying until another runner's short lease lapses (database clock)."""
    deadline = time.monotonic() + _LAPSE_WAIT
    while not (leases := store.claim(count)):
        assert time.monotonic() < deadline, "the lease never lapsed"
        time.sleep(0.05)
    return leases


def test_runners_claim_disjoint_shards_heaviest_first(join):
    first, second = join(), join()
    assert [lease.shard_id for lease in first.claim(2)] == [1, 3]
    assert [lease.shard_id for lease in second.claim(5)] == [0, 2]
    assert first.claim() == []
    assert second.claim() == []
    assert set(first.held()) == {1, 3}
    assert set(second.held()) == {0, 2}


def test_many_runners_claiming_at_once_never_share_a_shard(postgres, pg_url, join):
    """Six runners, each on its own connection, claim one shard at a time until none is
    left: every shard is claimed exactly once (SKIP LOCKED: no waiting, no double)."""
    owner = join()
    many = record_with(40)
    owner.close()
    runners = [
        LeasedStore.join(pg_url, run="many", password_file=postgres.password_file) for _ in range(6)
    ]
    runners[0].start_run(many)
    claimed: list[list[int]] = [[] for _ in runners]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            while leases := runners[i].claim():
                claimed[i].extend(lease.shard_id for lease in leases)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(runners))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for runner in runners:
        runner.close()
    assert errors == []
    every = sorted(s for shards in claimed for s in shards)
    assert every == list(range(40))


def record_with(count: int):
    shards = tuple(Shard(i, f"{i:03d}", None, 1, float(count - i)) for i in range(count))
    return make_record(shards=shards)


def test_a_held_lease_is_not_taken(join):
    holder, other = join(lease_ttl=60), join()
    assert len(holder.claim(4)) == 4
    assert other.claim(4) == []


def test_a_lapsed_lease_is_taken_over_from_the_cursor_and_fences_the_old_holder(join):
    """The holder stops heartbeating; after its TTL another runner claims the shard at the
    next epoch, from the holder's last commit; the old holder's next write is refused
    whole (its failure is not recorded either) and its heartbeat reports the loss."""
    old = join(lease_ttl=0.2)
    lease = old.claim(4)[3]
    assert lease.shard_id == 3
    saved = ShardProgress(shard_id=3, cursor="p", done_ahead=frozenset({"q"}), targets_done=7)
    old.commit([saved])

    new = join(lease_ttl=60)
    (taken,) = claim_when_lapsed(new, 1)  # the heaviest lapsed shard
    assert taken.shard_id == 3
    assert taken.epoch == lease.epoch + 1
    assert taken.progress == saved

    late = ShardProgress(shard_id=3, cursor="x", targets_done=9)
    failure = Failure(target="k/late", kind=TargetKind.KEY, shard_id=3, reason="400")
    with pytest.raises(LeaseLostError, match=r"lease on shard \[3\] was lost"):
        old.commit([late], [failure])
    assert new.progress()[3] == saved
    assert new.failures() == []
    assert 3 not in old.held()

    new.commit([ShardProgress(shard_id=3, cursor="z", done=True, targets_done=10)])
    assert new.progress()[3].done


def test_heartbeat_reports_leases_lost_and_keeps_the_others(join):
    old = join(lease_ttl=0.2)
    assert len(old.claim(4)) == 4
    new = join()
    assert [lease.shard_id for lease in claim_when_lapsed(new, 1)] == [3]
    assert old.heartbeat() == frozenset({3})
    assert set(old.held()) == {0, 1, 2}
    old.commit([ShardProgress(shard_id=1, cursor="ok")])  # the shards kept stay writable
    assert new.progress()[1].cursor == "ok"


def test_a_lapsed_lease_nobody_took_is_kept_by_the_next_heartbeat(join):
    """Fencing is by epoch: a runner that was late to heartbeat but not replaced goes on."""
    slow = join(lease_ttl=0.05)
    (lease,) = slow.claim()
    time.sleep(0.1)  # past the TTL: the lease lapses; no one else is claiming
    assert slow.heartbeat() == frozenset()
    slow.commit([ShardProgress(shard_id=lease.shard_id, cursor="c")])


def test_released_shards_are_claimable_at_once(join):
    first, second = join(lease_ttl=60), join()
    first.claim(4)
    first.release([3, 1])
    assert [lease.shard_id for lease in second.claim(4)] == [1, 3]
    assert set(first.held()) == {0, 2}


def test_a_write_to_a_shard_never_claimed_is_refused(join):
    runner = join()
    runner.claim()
    with pytest.raises(LeaseLostError, match=r"holds no lease on \[0\]"):
        runner.commit([ShardProgress(shard_id=0, cursor="c")])
    assert runner.progress()[0] == ShardProgress(shard_id=0)


def test_done_shards_are_never_claimed_again(join):
    runner = join()
    for lease in runner.claim(4):
        runner.commit([ShardProgress(shard_id=lease.shard_id, done=True)])
    runner.release(list(runner.held()))
    assert join().claim(4) == []


def test_leased_runners_and_a_lone_store_keep_each_other_out(postgres, pg_url, join):
    join()
    with pytest.raises(LockedError, match=r"\(run shared\) is in use"):
        PostgresStore.open(pg_url, run="shared", password_file=postgres.password_file)
    alone = PostgresStore.open(pg_url, run="alone", password_file=postgres.password_file)
    with alone, pytest.raises(LockedError):
        LeasedStore.join(pg_url, run="alone", password_file=postgres.password_file)


@pytest.mark.parametrize("ttl", [0.0, -1.0, float("inf"), float("nan")])
def test_a_bad_lease_ttl_is_usage_error(pg_url, ttl):
    with pytest.raises(UsageError, match="--lease-ttl"):
        LeasedStore.join(pg_url, lease_ttl=ttl)


def test_a_version_1_schema_is_migrated_keeping_its_run(postgres, pg_url):
    """A database purger's first schema made: opened now, it is migrated in place and its
    run resumes and is claimable."""
    with postgres.connect(pg_url.rsplit("/", 1)[1]) as admin:
        for statement in _MIGRATIONS[0]:
            admin.execute(statement)
        admin.execute("INSERT INTO purger.meta VALUES ('schema_version', '1')")
        admin.execute(
            "INSERT INTO purger.run (name, run_id, fingerprint, provider, provider_options,"
            " key_templates, url_templates, purger_version)"
            " VALUES ('old', 'abcdef012345', 'f', 'null', '{}', '[]', '[]', '0.1')"
        )
        admin.execute(
            "INSERT INTO purger.shard (run, id, range_start, count, weight, cursor,"
            " targets_done) SELECT id, 0, '', 5, 5.0, 'm', 3 FROM purger.run"
        )
    runner = LeasedStore.join(pg_url, run="abcdef012345", password_file=postgres.password_file)
    with runner:
        assert runner.name == "old"
        (lease,) = runner.claim()
        assert lease.progress == ShardProgress(shard_id=0, cursor="m", targets_done=3)
    with postgres.connect(pg_url.rsplit("/", 1)[1]) as admin:
        version = admin.execute("SELECT value FROM purger.meta WHERE key = 'schema_version'")
        assert version.fetchone() == (str(SCHEMA_VERSION),)


def test_runners_starting_the_run_together_record_it_once(postgres, pg_url):
    """Each of four runners tries to record the run at the same moment: one does, the
    others are told it is there (a usage error, not a database error), and it is whole."""
    runners = [
        LeasedStore.join(pg_url, run="race", password_file=postgres.password_file) for _ in range(4)
    ]
    barrier = threading.Barrier(len(runners))
    outcomes: list[str] = []

    def start(runner: LeasedStore) -> None:
        barrier.wait()
        try:
            runner.start_run(make_record(shards=SHARDS))
            outcomes.append("recorded")
        except UsageError as err:
            outcomes.append("there" if "already holds a run" in str(err) else str(err))

    threads = [threading.Thread(target=start, args=(runner,)) for runner in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert sorted(outcomes) == ["recorded", "there", "there", "there"]
        assert len(runners[0].progress()) == len(SHARDS)
    finally:
        for runner in runners:
            runner.close()


# A runner in its own process: claims every shard, commits shard 3's progress, says so,
# then hangs until it is killed.
RUNNER = """
import sys, time
from pathlib import Path
from purger.state.leases import LeasedStore
from purger.state.sqlite import ShardProgress
store = LeasedStore.join(sys.argv[1], run="shared", lease_ttl=1.0, password_file=Path(sys.argv[2]))
store.claim(4)
store.commit([ShardProgress(shard_id=3, cursor="s", done_ahead=frozenset({"u"}), targets_done=4)])
print("ready", flush=True)
time.sleep(120)
"""


def test_a_sigkilled_runner_s_shards_are_continued_by_another(postgres, pg_url, join):
    """SIGKILL a runner holding every shard: once its leases lapse (nobody heartbeats
    them) the survivor gets every shard, shard 3 from the dead runner's cursor."""
    survivor = join()
    child = subprocess.Popen(
        [sys.executable, "-c", RUNNER, pg_url, str(postgres.password_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
    taken: dict[int, ShardProgress] = {}
    deadline = time.monotonic() + _LAPSE_WAIT
    while len(taken) < len(SHARDS):
        assert time.monotonic() < deadline, f"only {sorted(taken)} were taken over"
        taken.update((lease.shard_id, lease.progress) for lease in survivor.claim(4))
        time.sleep(0.05)
    assert taken[3] == ShardProgress(
        shard_id=3, cursor="s", done_ahead=frozenset({"u"}), targets_done=4
    )
    assert all(taken[i] == ShardProgress(shard_id=i) for i in (0, 1, 2))
