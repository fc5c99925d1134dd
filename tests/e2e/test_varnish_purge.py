"""The real ``purger run`` against a real Varnish with xkey before a real origin.

Every test warms the cache with names of its own (one origin fetch each), purges them with
``python -m purger run``, and reads the cache back: the origin's per-project counters (from
its /metrics) say how often each object was fetched, Varnish's X-Cache header how each GET
was served. GETs go through wrk (bench/wrk.py): 20,000 in about a second on hits, where an
httpx loop needs 16-20 s on this machine.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from bench.cluster import Cluster
from bench.wrk import EachResult, Request, send_each

pytestmark = pytest.mark.e2e

NAMES = 20_000
#: URL purges are one call each, about 500/s from one purger process on this machine.
URL_NAMES = 5_000
CLIENT_HOST = "pypi.test"  # the Host clients send, and so the one the cache is keyed on
#: After a soft purge each GET starts a background fetch: GETs faster than the origin's
#: ~2,000 fetches/s pile thousands of them up at once (a thread each in the origin).
REFRESH_PER_SECOND = 1_500


def write_names(tmp_path: Path, prefix: str, count: int) -> tuple[Path, list[str]]:
    names = [f"{prefix}-{i:05d}" for i in range(count)]
    path = tmp_path / "names.txt"
    path.write_text("\n".join(names) + "\n")
    return path, names


def get_all(
    cache: Cluster,
    names: Sequence[str],
    host: str | None = None,
    per_second: float | None = None,
) -> EachResult:
    """One GET of each name's JSON through Varnish, as fast as it goes or ``per_second``."""
    requests = [Request("GET", f"/pypi/{name}/json") for name in names]
    return send_each(cache.varnish.url, requests, host=host, per_second=per_second, timeout=90)


def fetches(cache: Cluster, names: Sequence[str]) -> Counter[int]:
    """How many names the origin served how often: ``Counter({2: 20000})``."""
    counts = cache.origin.project_counts()
    return Counter(counts.get(name, 0) for name in names)


def purger_run(cache: Cluster, names: Path, state: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "purger",
        "run",
        str(names),
        "--provider",
        "varnish",
        "--endpoint",
        cache.varnish.url,
        "--state",
        str(state),
        "--yes",
        *args,
    ]


def run_purger(cache: Cluster, names: Path, state: Path, *args: str) -> str:
    """Run ``purger run`` to the end; its stderr. Fails the test unless it exits 0."""
    done = subprocess.run(
        purger_run(cache, names, state, *args), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def warm(cache: Cluster, names: Sequence[str], host: str | None = None) -> None:
    first = get_all(cache, names, host)
    assert first.tally == {"MISS/1/200": len(names)}, "the names were cached already"
    assert fetches(cache, names) == Counter({1: len(names)})


def test_hard_key_purge_refetches_every_object_exactly_once(cache, tmp_path):
    """Hard-purging 20,000 keys evicts every object; each is fetched again exactly once."""
    path, names = write_names(tmp_path, "hard", NAMES)
    warm(cache, names)

    args = ("--key-template", "project/{name}", "--hard", "--rate", "inf")
    stderr = run_purger(cache, path, tmp_path / "state.sqlite", *args)
    assert f"done: {NAMES:,} targets purged" in stderr
    assert "purged no object" not in stderr

    again = get_all(cache, names)
    assert again.tally == {"MISS/2/200": NAMES}  # every GET went to the origin...
    assert fetches(cache, names) == Counter({2: NAMES})  # ...exactly once per object


def test_soft_key_purge_serves_stale_while_refetching_each_once(cache, tmp_path):
    """After a soft purge each object is served stale once while refetched exactly once."""
    path, names = write_names(tmp_path, "soft", NAMES)
    warm(cache, names)

    args = ("--key-template", "project/{name}", "--rate", "inf")  # soft: the default
    stderr = run_purger(cache, path, tmp_path / "state.sqlite", *args)
    assert f"done: {NAMES:,} targets purged" in stderr

    stale = get_all(cache, names, per_second=REFRESH_PER_SECOND)
    assert stale.tally == {"STALE/1/200": NAMES}  # the old copy (origin fetch 1), at once
    deadline = time.monotonic() + 30  # background fetches are asynchronous (P11)
    while fetches(cache, names) != Counter({2: NAMES}) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert fetches(cache, names) == Counter({2: NAMES})

    fresh = get_all(cache, names)
    assert fresh.tally == {"HIT/2/200": NAMES}  # the refetched copy, from cache
    assert fetches(cache, names) == Counter({2: NAMES})


def test_url_purge_with_the_clients_host_refetches_every_object_once(cache, tmp_path):
    """URL purges with the clients' Host evict every object; each is refetched exactly once."""
    path, names = write_names(tmp_path, "url", URL_NAMES)
    warm(cache, names, host=CLIENT_HOST)

    args = ("--url-template", f"http://{CLIENT_HOST}/pypi/{{name}}/json", "--rate", "inf")
    stderr = run_purger(cache, path, tmp_path / "state.sqlite", *args)
    assert f"done: {URL_NAMES:,} targets purged" in stderr

    again = get_all(cache, names, host=CLIENT_HOST)
    assert again.tally == {"MISS/2/200": URL_NAMES}
    assert fetches(cache, names) == Counter({2: URL_NAMES})


def test_url_purge_with_another_host_purges_nothing(cache, tmp_path):
    """A URL purge with another Host purges nothing (the cache is keyed on URL and Host),
    and purger warns that no call purged anything."""
    path, names = write_names(tmp_path, "host", 1_000)
    warm(cache, names, host=CLIENT_HOST)

    args = ("--url-template", "http://other.test/pypi/{name}/json", "--rate", "inf")
    stderr = run_purger(cache, path, tmp_path / "state.sqlite", *args)  # Varnish said "0"
    assert "varnish purged no object in any of the 1,000 calls" in stderr  # and purger says so

    still = get_all(cache, names, host=CLIENT_HOST)
    assert still.tally == {"HIT/1/200": len(names)}
    assert fetches(cache, names) == Counter({1: len(names)})
    # The same PURGE with the clients' Host finds the object: the Host was the difference.
    url = f"{cache.varnish.url}/pypi/{names[0]}/json"
    other = httpx.request("PURGE", url, headers={"Host": "other.test"})
    right = httpx.request("PURGE", url, headers={"Host": CLIENT_HOST})
    assert (other.headers["X-Purged-Count"], right.headers["X-Purged-Count"]) == ("0", "1")


def test_sigkill_mid_run_then_resume_misses_nothing(cache, tmp_path):
    """SIGKILLed mid-run, then resumed: every object is evicted exactly once, none missed."""
    path, names = write_names(tmp_path, "kill", NAMES)
    warm(cache, names)
    state = tmp_path / "state.sqlite"
    args = ["--key-template", "project/{name}", "--hard"]
    evicted_before = cache.varnish.counters()["MAIN.n_expired"]  # xkey hard purges count here

    def evicted() -> int:
        return cache.varnish.counters()["MAIN.n_expired"] - evicted_before

    # 4,000 keys/s: 5 s for all; killed after about a second, once Varnish saw purges.
    process = subprocess.Popen(
        purger_run(cache, path, state, *args, "--rate", "4000"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    started = time.monotonic()
    try:
        while process.poll() is None and (evicted() == 0 or time.monotonic() - started < 1.0):
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before the kill: make it slower"
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    assert 0 < evicted() < NAMES, "the kill did not land mid-way"

    stderr = run_purger(cache, path, state, *args, "--rate", "inf", "--resume")
    assert "resuming" in stderr

    again = get_all(cache, names)
    assert again.tally == {"MISS/2/200": NAMES}
    assert fetches(cache, names) == Counter({2: NAMES})
    assert evicted() == NAMES  # all evicted (a key purged again finds nothing left to evict)
