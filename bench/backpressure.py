"""One backpressure scenario on real parts, shared by ``tests/e2e/test_backpressure_real.py``
and ``bench/real_backpressure_bench.py``.

An origin of small capacity behind Varnish, every name warm in the cache (so, before the
purge, client traffic is all hits and the origin idles), Zipf client traffic through
Varnish, and a hard purge of every name: each purged name that clients ask for again is a
fetch, so a purge that goes too fast queues fetches at the origin and its p99 climbs. The
p99 is read by purger from a real Prometheus scraping the origin every second.

The p99 query reads 0 when the origin fetched nothing in the window (``histogram_quantile``
of no observations is NaN, and an idle origin is a healthy one)::

    (histogram_quantile(0.99, sum(rate(..._bucket[5s])) by (le)) >= 0) or vector(0)
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from bench.cluster import Cluster
from bench.traffic import Popularity, run_traffic
from bench.wrk import Request, send_each

__all__ = [
    "Outcome",
    "Sample",
    "Scenario",
    "fetch_signal",
    "p99_query",
    "prepare",
    "purge_under_traffic",
]


def p99_query(window: str = "5s") -> str:
    quantile = (
        "histogram_quantile(0.99, sum(rate(origin_request_duration_seconds_bucket"
        f"[{window}])) by (le))"
    )
    return f"({quantile} >= 0) or vector(0)"


FETCHES_QUERY = "sum(rate(origin_project_requests_total[5s])) or vector(0)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    names: int = 5_000
    zipf_s: float = 1.0
    #: Client GETs per second through Varnish.
    traffic: float = 300.0
    #: The origin during the purge: requests at once x seconds each.
    slots: int = 1
    service_time: float = 0.01
    limit: float = 0.1
    critical: float = 0.5
    prefix: str = "bp"
    seed: int = 1

    @property
    def origin_capacity(self) -> float:
        """Fetches per second the origin can answer at most."""
        return self.slots / self.service_time

    def shares(self) -> list[tuple[str, float]]:
        """Each name and its share of the traffic: Zipf dealt to the names in a seeded random
        order, since popularity has nothing to do with the order of names (as on PyPI), so
        no shard is all head."""
        weights = [1.0 / (rank**self.zipf_s) for rank in range(1, self.names + 1)]
        random.Random(self.seed).shuffle(weights)
        total = sum(weights)
        return [(f"{self.prefix}{i:06d}", w / total) for i, w in enumerate(weights)]

    def popularity(self) -> Popularity:
        names, shares = zip(*self.shares(), strict=True)
        return Popularity.of(names, shares)

    def most_popular(self, count: int) -> list[str]:
        return [name for name, _ in sorted(self.shares(), key=lambda pair: -pair[1])[:count]]

    def write_names(self, path: Path) -> Path:
        """A TSV of the names with their share of the traffic (the ``traffic`` column)."""
        lines = ["name\ttraffic", *(f"{name}\t{share:.9g}" for name, share in self.shares())]
        path.write_text("\n".join(lines) + "\n")
        return path

    def signal(self, prometheus_url: str) -> str:
        return (
            f"name=origin p99,source=prometheus,url={prometheus_url},limit={self.limit},"
            f"critical={self.critical},kind=latency,query={p99_query()}"
        )


def fetch_signal(prometheus_url: str, limit: float) -> str:
    """The origin's fetch rate as a saturation signal: its pressure is proportional to the
    load, where a p99's jumps from one histogram bucket to the next are not."""
    return (
        f"name=origin fetches,source=prometheus,url={prometheus_url},limit={limit:.1f},"
        f"kind=saturation,query={FETCHES_QUERY}"
    )


def prepare(cluster: Cluster, scenario: Scenario) -> None:
    """Every name cached, then the origin made small, then a quiet window so that the p99
    of the warming is out of Prometheus' 5 s window."""
    names = scenario.popularity().names
    cluster.origin.set_capacity(64)
    cluster.origin.set_service_time(0.0)
    send_each(cluster.varnish.url, [Request("GET", f"/pypi/{n}/json") for n in names], timeout=120)
    cluster.origin.set_capacity(scenario.slots)
    cluster.origin.set_service_time(scenario.service_time)
    time.sleep(6.0)


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # seconds since the purge started
    p99: float
    fetches: float  # origin fetches per second


@dataclass(slots=True)
class Outcome:
    exit_code: int
    seconds: float
    samples: list[Sample] = field(default_factory=list)
    stderr: str = ""

    @property
    def decisions(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("control:")]

    def share_under(self, limit: float) -> float:
        if not self.samples:
            return 0.0
        return sum(1 for s in self.samples if s.p99 <= limit) / len(self.samples)


def _sample(cluster: Cluster, stop: threading.Event, started: float, into: list[Sample]) -> None:
    prometheus = cluster.prometheus
    if prometheus is None:
        raise RuntimeError("the scenario needs Prometheus")
    while not stop.wait(1.0):
        p99 = prometheus.query(p99_query())
        fetches = prometheus.query(FETCHES_QUERY)
        if p99 and fetches:
            into.append(Sample(time.monotonic() - started, p99[0][1], fetches[0][1]))


def purge_under_traffic(
    cluster: Cluster,
    scenario: Scenario,
    names_file: Path,
    state: Path,
    *,
    flags: Sequence[str],
    settle: float = 5.0,
    tail: float = 10.0,
    timeout: float = 600.0,
) -> Outcome:
    """``purger run`` (hard purge of every name's key, ``flags`` added) while traffic runs
    from ``settle`` seconds before it to ``tail`` seconds after it; Prometheus sampled every
    second from the purge's start to the end of the tail."""
    command = [
        sys.executable, "-m", "purger", "run", str(names_file), "--provider", "varnish",
        "--endpoint", cluster.varnish.url, "--key-template", "project/{name}", "--hard",
        "--state", str(state), "--yes", *flags,
    ]  # fmt: skip
    popularity = scenario.popularity()
    finished = threading.Event()

    async def traffic() -> None:
        async with anyio.create_task_group() as group:

            async def until_finished() -> None:
                await anyio.to_thread.run_sync(finished.wait)
                await anyio.sleep(tail)
                group.cancel_scope.cancel()

            group.start_soon(until_finished)
            await run_traffic(
                cluster.varnish.url, popularity, per_second=scenario.traffic,
                count=int(scenario.traffic * timeout), duration=timeout, concurrency=24,
            )  # fmt: skip

    driver = threading.Thread(target=anyio.run, args=(traffic,), daemon=True)
    driver.start()
    time.sleep(settle)
    samples: list[Sample] = []
    stop = threading.Event()
    started = time.monotonic()
    sampler = threading.Thread(target=_sample, args=(cluster, stop, started, samples), daemon=True)
    sampler.start()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    finally:
        seconds = time.monotonic() - started
        finished.set()
        driver.join(timeout=tail + 30)
        stop.set()
        sampler.join(timeout=10)
    return Outcome(done.returncode, seconds, samples, done.stderr)
