"""The best safe pace in hindsight, and how a governed run compares with it.

Ground truth is the simulated origin's own per-second p99 (:class:`~purger.sim.cdn.SimStep`),
never what purger read. A pace is *safe* when that p99 stayed under its limit in at least
``required`` of the run's seconds; the best safe pace is the fastest fixed ``--rate`` that is
safe, found by a geometric bisection over fixed-rate runs (safety falls with the rate, up to
the noise of the random refill delays; the bisection takes the last safe rate it saw).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from purger.sim.cdn import SimStep
from purger.sim.purge import SimulationResult

__all__ = ["Limits", "Sweep", "Verdict", "best_safe_rate", "judge", "longest_over", "under_share"]

#: Share of seconds the p99 must stay under its limit for a pace to count as safe.
REQUIRED_SHARE = 0.95


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    p99_limit: float
    p99_critical: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """One run against the origin's truth."""

    seconds: float
    #: Share of the run's seconds with the true p99 at or under its limit.
    under_share: float
    #: The longest stretch with the true p99 over its critical limit, seconds.
    longest_over_critical: float
    peak_p99: float

    def safe(self, required: float = REQUIRED_SHARE) -> bool:
        return self.under_share >= required


def under_share(history: Sequence[SimStep], limit: float) -> float:
    if not history:
        return 1.0
    return sum(step.p99 <= limit for step in history) / len(history)


def longest_over(history: Sequence[SimStep], critical: float) -> float:
    """Seconds of the longest unbroken stretch over ``critical``."""
    if len(history) < 2:
        return 0.0
    step = history[1].time - history[0].time
    groups = itertools.groupby(s.p99 > critical for s in history)
    return max((len(list(run)) for over, run in groups if over), default=0) * step


def judge(result: SimulationResult, limits: Limits) -> Verdict:
    history = result.history
    return Verdict(
        seconds=result.outcome.statistics.elapsed,
        under_share=under_share(history, limits.p99_limit),
        longest_over_critical=longest_over(history, limits.p99_critical),
        peak_p99=max((s.p99 for s in history), default=0.0),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Sweep:
    """The best safe fixed rate, its run's verdict, and every rate tried."""

    rate: float
    verdict: Verdict
    tried: tuple[tuple[float, Verdict], ...]


def best_safe_rate(
    run_at: Callable[[float], Verdict],
    *,
    start: float,
    precision: float = 1.05,
    required: float = REQUIRED_SHARE,
    floor: float = 1.0,
) -> Sweep:
    """The fastest safe fixed rate to within a factor ``precision``: double (or halve) from
    ``start`` until safety changes, then bisect on a log scale."""
    tried: list[tuple[float, Verdict]] = []

    def safe(rate: float) -> bool:
        verdict = run_at(rate)
        tried.append((rate, verdict))
        return verdict.safe(required)

    if safe(start):
        low, high = start, 2 * start
        while safe(high):
            low, high = high, 2 * high
    else:
        low, high = start / 2, start
        while not safe(low):
            if low <= floor:
                raise ValueError(f"no safe rate above {floor:g} targets/s")
            low, high = low / 2, low
    while high / low > precision:
        middle = math.sqrt(low * high)
        if safe(middle):
            low = middle
        else:
            high = middle
    verdict = next(v for r, v in reversed(tried) if r == low)
    return Sweep(rate=low, verdict=verdict, tried=tuple(sorted(tried, key=lambda t: t[0])))
