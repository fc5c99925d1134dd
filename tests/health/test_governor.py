"""The governor: health decisions applied to the pacer, beside an operator's levers."""

from __future__ import annotations

import math

import pytest

from purger.health.control import Action, ControlSettings
from purger.health.governor import PAUSED_BY_HEALTH, Governor
from purger.health.signals import Sample, SignalSpec, SourceKind
from purger.pacing.pacer import AdaptiveLimit, Pacer, TokenBucket
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

P99 = SignalSpec(
    name="p99", source=SourceKind.SCRAPE, url="http://origin/metrics", query="p99",
    limit=0.5, critical=2.0,
)  # fmt: skip
SETTINGS = ControlSettings(
    initial_rate=100, min_rate=5, max_rate=400, feedback_delay=10, tick=5, resume_after=10
)


class Readings:
    """A health source that answers whatever p99 the test sets."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.p99 = 0.1

    async def read(self) -> list[Sample]:
        return [Sample(signal=P99, value=self.p99, observed_at=self.clock.now())]


def governed(clock: FakeClock) -> tuple[Governor, Pacer, Readings]:
    pacer = Pacer(
        clock=clock, targets=TokenBucket(math.inf, 1, clock), limit=AdaptiveLimit(4, clock=clock)
    )
    health = Readings(clock)
    governor = Governor(
        health=health,
        pacer=pacer,
        settings=SETTINGS,
        clock=clock,
        wall_clock=clock.now,
        targets_sent=lambda: 0,
    )
    return governor, pacer, health


async def test_health_resuming_never_lifts_an_operator_pause():
    """Paused by health and by the operator: health recovers, the operator's hold stays."""
    clock = FakeClock()
    governor, pacer, health = governed(clock)
    pacer.hold("operator")
    health.p99 = 3.0  # past critical
    assert (await governor.tick(0.0)).action is Action.PAUSE
    assert set(pacer.holds) == {"operator", PAUSED_BY_HEALTH}
    health.p99 = 0.1
    decision = None
    while governor.state.paused:
        clock.time += SETTINGS.tick
        decision = await governor.tick(0.0)
    assert decision is not None
    assert decision.action is Action.RESUME
    assert pacer.holds == ("operator",)
    assert governor.last_change is decision
    assert governor.last_change_at == clock.now()


async def test_the_operator_ceiling_caps_the_controller_and_never_goes_below_min_rate():
    """Lowering the ceiling brings the rate down at once; the controller then stays under
    it; a ceiling below --min-rate is held at --min-rate."""
    clock = FakeClock()
    governor, pacer, _ = governed(clock)
    governor.set_max_rate(60)
    assert governor.state.rate == 60
    assert pacer.targets.rate == 60
    assert governor.settings.max_rate == 60
    for _ in range(20):  # calm and fully used: the controller would double
        clock.time += SETTINGS.tick
        await governor.tick(achieved_rate=governor.state.rate)
    assert governor.state.rate == 60
    governor.set_max_rate(1)
    assert governor.settings.max_rate == SETTINGS.min_rate
    assert pacer.targets.rate == SETTINGS.min_rate
