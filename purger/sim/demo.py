"""The scenario of ``purger demo``: the simulated world, the controller's settings and the
origin's limits, in one place so that the demo and its test run the same thing; and the
best safe pace of that world, found in hindsight by fixed-rate runs.
"""

from __future__ import annotations

from typing import Final

from purger.health.control import ControlSettings
from purger.names.nameset import NameSet
from purger.planning.plan import Plan
from purger.sim.cdn import SimConfig
from purger.sim.oracle import Limits, Sweep, Verdict, best_safe_rate, judge
from purger.sim.purge import simulate_purge

__all__ = ["CONCURRENCY", "CONTROL", "LIMITS", "SLOWDOWN_AT", "best_safe_pace", "config"]

LIMITS: Final = Limits(p99_limit=0.5, p99_critical=2.0)
CONTROL: Final = ControlSettings(initial_rate=100, feedback_delay=30, tick=5)
CONCURRENCY: Final = 8
#: When the origin loses 40 % of its capacity: about a third into a governed run, so the
#: run both meets the slowdown at full pace and shows it followed afterwards.
SLOWDOWN_AT: Final = 200.0


def config(seed: int) -> SimConfig:
    """At :data:`SLOWDOWN_AT` virtual seconds, the origin loses 40 % of its capacity."""
    return SimConfig(seed=seed, request_rate=20_000.0, capacity_changes=((SLOWDOWN_AT, 600.0),))


def best_safe_pace(plan: Plan, name_set: NameSet, seed: int, *, start: float) -> Sweep:
    """The fastest fixed rate whose true p99 stayed under its limit in >= 95 % of seconds,
    to within 10 %, starting the search at ``start`` (the governed run's mean pace)."""

    def run_at(rate: float) -> Verdict:
        result = simulate_purge(
            plan=plan,
            name_set=name_set,
            config=config(seed),
            control=None,
            rate=rate,
            concurrency=CONCURRENCY,
        )
        return judge(result, LIMITS)

    return best_safe_rate(run_at, start=start, precision=1.1)
