"""The outer loop: every tick, read backend health, let the controller decide, and apply its
decision to the pacer (the rate, or a hold). The I/O edge around the pure ``control``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Final, Protocol

from purger.health.control import (
    Action,
    ControlSettings,
    ControlState,
    Decision,
    Observation,
    Reading,
    decide,
    initial_state,
)
from purger.health.signals import Direction, Sample, SignalKind
from purger.pacing.pacer import Clock, Pacer

__all__ = ["PAUSED_BY_HEALTH", "Governor", "HealthSource", "reading_of"]

#: The pacer hold the controller takes and lifts; an operator's is another.
PAUSED_BY_HEALTH: Final = "health"


class HealthSource(Protocol):
    async def read(self) -> Sequence[Sample]: ...


def reading_of(sample: Sample, now: float) -> Reading:
    """What the controller needs of a sample: pressures against the limit and the critical
    limit, and how old the data is (``now`` in the same clock as ``observed_at``)."""
    signal = sample.signal
    critical = None
    if sample.value is not None and signal.critical is not None:
        if signal.direction is Direction.LOWER:
            critical = sample.value / signal.critical
        else:
            critical = signal.critical / sample.value if sample.value > 0 else float("inf")
    return Reading(
        name=signal.name,
        pressure=sample.pressure,
        critical_pressure=critical,
        age=sample.age(now),
        is_error_rate=signal.kind is SignalKind.ERRORS,
    )


class Governor:
    """Paces a run by health: sets ``pacer.targets.rate`` and holds or releases the pacer."""

    def __init__(
        self,
        *,
        health: HealthSource,
        pacer: Pacer,
        settings: ControlSettings,
        clock: Clock,
        wall_clock: Callable[[], float],
        targets_sent: Callable[[], int],
        on_decision: Callable[[Decision], None] = lambda decision: None,
        on_tick: Callable[[Decision], None] = lambda decision: None,
    ) -> None:
        self._health = health
        self._pacer = pacer
        self._settings = settings
        self._clock = clock
        self._wall_clock = wall_clock
        self._targets_sent = targets_sent
        self._on_decision = on_decision  # changes only: a raise, a cut, a pause, a resume
        self._on_tick = on_tick  # every tick, holds included
        self.state: ControlState = initial_state(settings)
        #: The last tick's decision, holds included, and the last that changed something
        #: (with its time on ``clock``): what a live view shows as "now" and "last change".
        self.last: Decision | None = None
        self.last_change: Decision | None = None
        self.last_change_at: float | None = None
        self.samples: Sequence[Sample] = ()
        pacer.targets.rate = self.state.rate

    @property
    def settings(self) -> ControlSettings:
        return self._settings

    def wall_time(self) -> float:
        """Now on the clock that dates samples (their age is measured on it)."""
        return self._wall_clock()

    def set_max_rate(self, rate: float) -> None:
        """An operator moved the rate ceiling: the controller never goes above it, and a
        rate above it comes down at once (a raise waits for the controller's evidence)."""
        rate = max(self._settings.min_rate, rate)
        self._settings = replace(self._settings, max_rate=rate)
        if self.state.rate > rate:
            self.state = replace(self.state, rate=rate)
            self._pacer.targets.rate = rate

    async def run(self) -> None:
        """Tick until cancelled."""
        sent, at = self._targets_sent(), self._clock.now()
        while True:
            await self._clock.sleep(self._settings.tick)
            now_sent, now = self._targets_sent(), self._clock.now()
            achieved = (now_sent - sent) / (now - at) if now > at else 0.0
            sent, at = now_sent, now
            await self.tick(achieved)

    async def tick(self, achieved_rate: float) -> Decision:
        self.samples = await self._health.read()
        wall = self._wall_clock()
        observation = Observation(
            now=self._clock.now(),
            readings=tuple(reading_of(s, wall) for s in self.samples),
            achieved_rate=achieved_rate,
        )
        decision = decide(self.state, observation, self._settings)
        self.state, self.last = decision.state, decision
        self._apply(decision)
        self._on_tick(decision)
        if decision.action is not Action.HOLD:
            self.last_change, self.last_change_at = decision, observation.now
            self._on_decision(decision)
        return decision

    def _apply(self, decision: Decision) -> None:
        self._pacer.targets.rate = decision.rate
        if decision.state.paused:
            self._pacer.hold(PAUSED_BY_HEALTH)
        else:
            self._pacer.release(PAUSED_BY_HEALTH)  # an operator's hold is theirs to lift
