"""The origin's health as purger reads it through a real Prometheus: the origin made to
struggle (``/admin/capacity``), client traffic from ``bench/traffic.py``, and ``purger
probe`` querying Prometheus, which scrapes the origin every second.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import anyio
import pytest

from bench.cluster import Cluster
from bench.traffic import TrafficReport, run_traffic, synthetic_popularity

pytestmark = pytest.mark.e2e

LIMIT = 0.25
#: p99 of the fetches of the last 5 s: it falls again once the slow fetches are past.
P99_QUERY = (
    "histogram_quantile(0.99, sum(rate(origin_request_duration_seconds_bucket[5s])) by (le))"
)
WINDOW = 5.0


def probe(cache: Cluster) -> tuple[int, dict[str, object]]:
    """``purger probe --json`` of the origin's p99 through Prometheus: exit code, reading."""
    assert cache.prometheus is not None
    signal = (
        f"name=origin p99,source=prometheus,url={cache.prometheus.url},limit={LIMIT},"
        f"kind=latency,query={P99_QUERY}"
    )
    done = subprocess.run(
        [sys.executable, "-m", "purger", "probe", "--signal", signal, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode in (0, 1), done.stderr
    [reading] = json.loads(done.stdout)
    return done.returncode, reading


def traffic(cache: Cluster, prefix: str, seconds: float) -> TrafficReport:
    """Zipf traffic through Varnish over 50,000 names of its own, 100 GETs/s."""
    popularity = synthetic_popularity(50_000, prefix=prefix)

    async def send() -> TrafficReport:
        return await run_traffic(
            cache.varnish.url,
            popularity,
            per_second=100,
            count=int(100 * seconds),
            duration=seconds + 5,
            concurrency=20,
        )

    return anyio.run(send)


def test_probe_sees_the_origin_struggle_and_recover_through_prometheus(monitored_cache):
    """purger probe sees the origin's p99 over its limit when starved, under it when restored."""
    cache = monitored_cache
    assert cache.prometheus is not None
    cache.origin.set_capacity(1)
    cache.origin.set_service_time(0.02)

    slow = traffic(cache, "slow", seconds=3)
    assert slow.sent == 300
    assert slow.errors == 0
    assert 0 < slow.hit_ratio < 1  # Zipf: popular names repeat, and are then hits
    time.sleep(1.5)  # one more scrape
    code, reading = probe(cache)
    assert code == 1, reading
    assert isinstance(reading["value"], float)
    assert reading["value"] > LIMIT
    [(_, gauge)] = cache.prometheus.query("origin_request_latency_p99_seconds")
    assert gauge > LIMIT  # the origin's own p99 gauge agrees

    cache.origin.set_capacity(64)
    cache.origin.set_service_time(0.0)
    fast = traffic(cache, "fast", seconds=WINDOW + 2)  # the slow fetches leave the window
    assert fast.errors == 0
    time.sleep(1.5)
    code, reading = probe(cache)
    assert code == 0, reading
    assert isinstance(reading["value"], float)
    assert reading["value"] < LIMIT
