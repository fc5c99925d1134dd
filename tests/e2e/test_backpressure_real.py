"""Backpressure on real parts: a hard purge of 5,000 warm names through Varnish while Zipf
client traffic refills the cache from an origin made small (one fetch at a time, 10 ms
each), paced by the origin's p99 and fetch rate, which purger reads from a real Prometheus.

The same purge without the signal is run too, on the same cache warmed again: it must hurt
the origin (or the scenario proves nothing), and the governed one must not.
"""

from __future__ import annotations

import pytest

from bench.backpressure import Scenario, fetch_signal, prepare, purge_under_traffic

pytestmark = pytest.mark.e2e

SCENARIO = Scenario(names=5_000, traffic=300.0, slots=1, service_time=0.01)
GOVERNED = ["--tick", "1", "--feedback-delay", "15", "--initial-rate", "100", "--min-rate", "5"]


def test_health_driven_backpressure_keeps_the_origin_p99_under_its_limit(monitored_cache, tmp_path):
    cache = monitored_cache
    assert cache.prometheus is not None
    names = SCENARIO.write_names(tmp_path / "names.tsv")
    # The p99 the issue asks about, and the fetch rate at half of what the origin can do: its
    # pressure grows with the load, so the slow start eases off before the p99 jumps.
    spare = 0.5 * SCENARIO.origin_capacity
    signal = ["--signal", SCENARIO.signal(cache.prometheus.url)]
    signal += ["--signal", fetch_signal(cache.prometheus.url, spare)]

    prepare(cache, SCENARIO)
    before = cache.origin.project_counts()
    governed = purge_under_traffic(
        cache,
        SCENARIO,
        names,
        tmp_path / "governed.sqlite",
        flags=["--rate", "2000", *GOVERNED, *signal],
    )
    assert governed.exit_code == 0, governed.stderr[-2000:]
    assert len(governed.samples) >= 20
    assert governed.share_under(SCENARIO.limit) >= 0.9, governed.samples
    assert any("slow start" in line for line in governed.decisions)  # health let it speed up
    # The purge purged: the most popular names were fetched again by the traffic.
    after = cache.origin.project_counts()
    head = SCENARIO.most_popular(20)
    assert all(after.get(n, 0) > before.get(n, 0) for n in head)

    prepare(cache, SCENARIO)
    ungoverned = purge_under_traffic(
        cache, SCENARIO, names, tmp_path / "ungoverned.sqlite", flags=["--rate", "2000"]
    )
    assert ungoverned.exit_code == 0, ungoverned.stderr[-2000:]
    assert ungoverned.share_under(SCENARIO.limit) < 0.5, ungoverned.samples
    assert governed.seconds > 3 * ungoverned.seconds
