"""Several ``purger run`` processes on one plan, sharing its state in PostgreSQL: three
runners start together, one is SIGKILLed mid-run, a fourth joins late. Every key is purged,
the keys purged twice fit in the batches the killed runner had in flight, and its shards
are taken over by the others once its leases lapse (lease TTL + one heartbeat tick).

PostgreSQL is a throwaway cluster (``tests/pg.py``), the API a loopback cache that records
every key and the time of every call (``tests/e2e/recording.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.recording import RecordingCache
from tests.pg import PgCluster, missing_postgres, run_postgres

pytestmark = pytest.mark.e2e

NAMES = 30_000
SHARDS = 6
WORKERS = 2  # a runner's workers: three runners hold every shard at once
CONCURRENCY = 2
MAX_KEYS_PER_BATCH = 256  # the varnish provider's cap
LEASE_TTL = 5.0
TICK = LEASE_TTL / 3  # a runner's heartbeat and poll period
#: Slack for a loaded machine on top of TTL + tick: process start-up is not in it, only a
#: claim's round trip and the scheduler.
SLACK = 2.0


@pytest.fixture(scope="module")
def postgres() -> Iterator[PgCluster]:
    reason = missing_postgres()
    if reason is not None:
        if os.environ.get("PURGER_E2E_REQUIRED") == "1":
            pytest.fail(f"PURGER_E2E_REQUIRED=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    with run_postgres() as cluster:
        yield cluster


def runner(names: Path, url: str, cluster: PgCluster, cache: RecordingCache) -> list[str]:
    return [
        sys.executable, "-m", "purger", "run", str(names),
        "--provider", "varnish", "--endpoint", cache.url,
        "--key-template", "project/{name}",
        "--state", url, "--run-name", "nightly",
        "--state-password-file", str(cluster.password_file),
        "--lease-ttl", str(LEASE_TTL),
        "--rate", "1000", "--concurrency", str(CONCURRENCY),
        "--workers", str(WORKERS), "--shards", str(SHARDS),
        "--yes", "--resume-or-start",
    ]  # fmt: skip


def held_by(cluster: PgCluster, database: str, pid: int) -> dict[int, str | None]:
    """Shards not done, by id, with their owner, of those the runner ``pid`` holds or held."""
    with cluster.connect(database) as db:
        rows = db.execute(
            "SELECT id, owner FROM purger.shard WHERE NOT done AND owner LIKE %s",
            (f"%:{pid}:%",),
        ).fetchall()
    return {int(str(shard)): None if owner is None else str(owner) for shard, owner in rows}


def owners(cluster: PgCluster, database: str, shards: list[int]) -> dict[int, str | None]:
    """Each shard's owner now, ``None`` once done (nobody needs to hold it)."""
    with cluster.connect(database) as db:
        rows = db.execute(
            "SELECT id, CASE WHEN done THEN NULL ELSE owner END FROM purger.shard"
            " WHERE id = ANY(%s)",
            (shards,),
        ).fetchall()
    return {int(str(shard)): None if owner is None else str(owner) for shard, owner in rows}


def test_runners_share_a_plan_survive_a_sigkill_and_take_a_late_joiner(
    tmp_path, postgres, recording_cache
):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"pkg{i:05d}" for i in range(NAMES)) + "\n")
    url = postgres.create_database("runners")
    command = runner(names, url, postgres, recording_cache)
    first = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)
    ]
    victim, survivors = first[0], first[1:]
    deadline = time.monotonic() + 60
    while recording_cache.total() < NAMES // 10:
        assert victim.poll() is None, victim.communicate()[1].decode()
        assert time.monotonic() < deadline, "not a tenth purged within 60 s"
        time.sleep(0.05)
    held = held_by(postgres, "runners", victim.pid)
    assert held, "the victim holds no shard: the runners did not share the plan"
    status = subprocess.run(
        [sys.executable, "-m", "purger", "status", "--state", url, "--run-name", "nightly",
         "--state-password-file", str(postgres.password_file), "--json"],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    document = json.loads(status.stdout)
    assert document["status"] == "running"
    pids = {runner["pid"] for runner in document["runners"] if runner["shards_held"]}
    assert victim.pid in pids
    victim.kill()
    killed_at = time.monotonic()
    victim.communicate(timeout=30)
    late = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    # The victim's shards: free once its leases lapse, claimed at the next poll.
    taken_over = None
    deadline = killed_at + LEASE_TTL + TICK + SLACK + 30  # a bound for the loop only
    while time.monotonic() < deadline:
        now = owners(postgres, "runners", list(held))
        if all(owner is None or f":{victim.pid}:" not in owner for owner in now.values()):
            taken_over = time.monotonic() - killed_at
            break
        time.sleep(0.1)
    assert taken_over is not None, "the killed runner's shards were never taken over"
    assert taken_over <= LEASE_TTL + TICK + SLACK, f"taken over after {taken_over:.1f} s"

    for process in [*survivors, late]:
        _, stderr = process.communicate(timeout=180)
        assert process.returncode == 0, stderr.decode()

    expected = {f"project/pkg{i:05d}" for i in range(NAMES)}
    assert set(recording_cache.purged) == expected  # nothing missed, nothing extra
    twice = sum(count - 1 for count in recording_cache.purged.values())
    # The victim's calls sent or answered and not yet committed: at most its concurrency.
    bound = CONCURRENCY * MAX_KEYS_PER_BATCH
    assert twice <= bound, f"{twice} keys purged twice (bound {bound})"
    assert recording_cache.calls, "the cache recorded no call"
    assert victim.returncode == -signal.SIGKILL
