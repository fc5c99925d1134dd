"""The best safe pace in hindsight: the sweep and the verdict on the origin's own p99."""

from __future__ import annotations

import pytest

from purger.sim.cdn import SimStep
from purger.sim.oracle import Verdict, best_safe_rate, longest_over, under_share


def step(time: float, p99: float) -> SimStep:
    return SimStep(
        time=time,
        capacity=1000,
        load=500,
        utilization=0.5,
        p99=p99,
        error_rate=0.0,
        purged_targets=0,
    )


def verdict(under: float) -> Verdict:
    return Verdict(seconds=100.0, under_share=under, longest_over_critical=0.0, peak_p99=0.1)


def test_under_share_and_the_longest_stretch_over_critical():
    """Seconds at or under the limit count as under; the longest unbroken stretch over the
    critical limit is measured in steps."""
    history = [step(t, p) for t, p in enumerate([0.1, 0.6, 3.0, 3.0, 0.2, 3.0, 0.5])]
    assert under_share(history, 0.5) == pytest.approx(3 / 7)
    assert longest_over(history, 2.0) == 2.0
    assert longest_over(history[:2], 2.0) == 0.0


@pytest.mark.parametrize(("limit", "start"), [(300.0, 50.0), (300.0, 1000.0), (7.0, 100.0)])
def test_the_sweep_finds_the_fastest_safe_rate_within_its_precision(limit, start):
    """Safe up to ``limit``: the sweep ends within 5 % under it, from above or below, and
    the verdict it returns is the one of that rate's run."""
    tried = []

    def run_at(rate: float) -> Verdict:
        tried.append(rate)
        return verdict(1.0 if rate <= limit else 0.5)

    sweep = best_safe_rate(run_at, start=start)
    assert limit / 1.05 <= sweep.rate <= limit
    assert sweep.verdict.safe()
    assert sorted(tried) == [rate for rate, _ in sweep.tried]


def test_no_safe_rate_at_all_is_an_error():
    with pytest.raises(ValueError, match="no safe rate"):
        best_safe_rate(lambda rate: verdict(0.0), start=10.0)
