"""The controller: from backend health to the purge rate. Pure: ``decide(state, observation,
settings) -> Decision``, no I/O and no clock of its own, so it is stepped in tests and
simulations exactly as in a run.

The plant has dead time: a purge hurts the origin only when users request the purged
objects again, and the metrics that show it arrive later still. So (algorithms.md, A.12):

- pressure = the largest value/limit over all signals; a signal that is missing, failed or
  older than ``stale_after`` is *unknown*, and unknown is never healthy: the rate never
  rises on it, and after ``grace`` seconds of it the run pauses;
- pressure >= 1: cut the rate (x ``cut``, x ``error_cut`` when the worst signal counts
  errors, and x 1/pressure when that is deeper, down to x0.25), at most once per
  ``feedback_delay``, and remember the rate that hurt;
- pressure <= ``headroom`` for ``raise_after`` ticks, a full feedback delay since the last
  change, and the allowed rate was really used: raise it. Before the first cut it doubles
  (slow start), or grows by sqrt(headroom/pressure) when that is less, not to overshoot.
  After a cut it climbs back to just under the rate that hurt and stays there (no
  sawtooth); it probes above it only after ``probe_after`` quiet feedback delays, and
  drops the old ceiling when the origin is far from busy (a recovery);
- between ``headroom`` and 1: hold (the deadband);
- critical pressure pauses the run and cuts the rate it will resume at; it resumes once
  every signal has been healthy for ``resume_after`` seconds. Missing data for ``grace``
  seconds pauses too, keeping the rate. Operators may slow or pause at any time; nothing
  here lifts a pause the health caused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from purger.errors import UsageError

#: However far over the limit, one cut never takes more than this off the rate.
_DEEPEST_CUT = 0.25

__all__ = [
    "Action",
    "ControlSettings",
    "ControlState",
    "Decision",
    "Observation",
    "Reading",
    "decide",
    "initial_state",
    "phase",
    "predicted",
]


class Action(StrEnum):
    HOLD = "hold"
    RAISE = "raise"
    CUT = "cut"
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlSettings:
    """Seconds, rates in targets per second, pressures as fractions of a signal's limit."""

    initial_rate: float = 50.0
    min_rate: float = 1.0
    max_rate: float = math.inf
    #: The time from a purge to its effect on the metrics: refill delay plus metrics lag.
    feedback_delay: float = 60.0
    tick: float = 5.0
    cut: float = 0.7
    error_cut: float = 0.5
    headroom: float = 0.7
    raise_after: int = 3
    #: After a cut, stay just under the rate that hurt: this fraction of it.
    ceiling_margin: float = 0.9
    #: Feedback delays of quiet at the ceiling before trying above it.
    probe_after: float = 8.0
    probe_step: float = 0.1
    #: Far below the limits (this pressure) for ``raise_after`` ticks: forget the ceiling.
    idle_pressure: float = 0.5
    stale_after: float | None = None  # default: two ticks
    grace: float = 30.0
    resume_after: float = 30.0
    #: Raise only when the run achieved at least this share of the allowed rate.
    used_share: float = 0.5
    #: The share of a raised rate the run must reach before its feedback delay counts.
    reach_share: float = 0.9

    def __post_init__(self) -> None:
        checks = [
            ("initial_rate", self.initial_rate > 0),
            ("min_rate", self.min_rate > 0),
            ("max_rate", self.max_rate >= self.min_rate),
            ("feedback_delay", self.feedback_delay > 0),
            ("tick", self.tick > 0),
            ("cut", 0 < self.cut < 1),
            ("error_cut", 0 < self.error_cut < 1),
            ("headroom", 0 < self.headroom < 1),
        ]
        for name, ok in checks:
            if not ok:
                raise UsageError(f"control.{name}: out of range")

    @property
    def staleness(self) -> float:
        return self.stale_after if self.stale_after is not None else 2 * self.tick


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """One signal as the controller sees it: pressure (value/limit) or ``None`` when unknown."""

    name: str
    pressure: float | None
    #: value / critical limit; >= 1 pauses. ``None``: no critical limit, or unknown.
    critical_pressure: float | None = None
    age: float | None = None
    is_error_rate: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    now: float
    readings: tuple[Reading, ...]
    #: Targets per second actually sent over the last tick.
    achieved_rate: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlState:
    rate: float
    paused: bool = False
    slow_start: bool = True
    #: Just under the rate that last hurt; ``None`` before the first cut or after a recovery.
    ceiling: float | None = None
    last_change: float = -math.inf
    #: Cuts are spaced by the feedback delay on their own clock: a raise or a resume since
    #: the last cut does not make new evidence of overload wait.
    last_cut: float = -math.inf
    #: The rate before the last cut, which a worse reading within the delay cuts from.
    cut_from: float = 0.0
    calm_ticks: int = 0
    idle_ticks: int = 0
    unknown_since: float | None = None
    healthy_since: float | None = None
    #: When the run first sent at ``reach_share`` of the rate since the last raise: the
    #: feedback delay a raise waits counts from there (a raised rate takes a while to be
    #: reached, and its refill only starts then).
    reached: float | None = None
    #: (time, pressure) of the fresh readings over the last feedback delay: the trend.
    recent: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    state: ControlState
    action: Action
    reason: str
    pressure: float | None

    @property
    def rate(self) -> float:
        return self.state.rate


def initial_state(settings: ControlSettings) -> ControlState:
    return ControlState(rate=_clamp(settings.initial_rate, settings))


def phase(state: ControlState) -> str:
    """The controller's state in words, for an operator: paused, slow start (doubling until
    the first sign of overload), recovering (climbing back to the last good rate), steady."""
    if state.paused:
        return "paused"
    if state.slow_start:
        return "slow start"
    if state.ceiling is not None and state.rate < state.ceiling:
        return "recovering"
    return "steady"


def _clamp(rate: float, settings: ControlSettings) -> float:
    return min(settings.max_rate, max(settings.min_rate, rate))


def _split(readings: Sequence[Reading], stale_after: float) -> tuple[list[Reading], list[Reading]]:
    """Fresh readings, and those that are missing, failed or too old (unknown)."""
    fresh, unknown = [], []
    for reading in readings:
        known = reading.pressure is not None and not math.isnan(reading.pressure)
        if known and reading.age is not None and reading.age <= stale_after:
            fresh.append(reading)
        else:
            unknown.append(reading)
    return fresh, unknown


def decide(state: ControlState, observation: Observation, settings: ControlSettings) -> Decision:
    """One tick: the new state, what changed and why."""
    now = observation.now
    fresh, unknown = _split(observation.readings, settings.staleness)
    worst = max(fresh, key=lambda r: r.pressure or 0.0, default=None)
    pressure = worst.pressure if worst is not None else None
    unknown_since = (
        (state.unknown_since if state.unknown_since is not None else now) if unknown else None
    )
    state = replace(state, unknown_since=unknown_since)
    if pressure is not None and not unknown:
        state = replace(state, recent=_remember(state.recent, now, pressure, settings))
    if state.reached is None and observation.achieved_rate >= settings.reach_share * state.rate:
        state = replace(state, reached=now)

    critical = [r for r in fresh if r.critical_pressure is not None and r.critical_pressure >= 1]
    if critical:
        names = ", ".join(r.name for r in critical)
        return _pause(state, now, f"{names} past the critical limit", pressure, worst, settings)
    if unknown and unknown_since is not None and now - unknown_since >= settings.grace:
        names = ", ".join(r.name for r in unknown)
        why = f"no fresh reading of {names} for {now - unknown_since:.0f} s"
        return _pause(state, now, why, pressure, None, settings)

    if state.paused:
        return _while_paused(state, now, pressure, unknown, settings)

    ahead = predicted(state.recent, now, pressure, settings) if pressure is not None else None
    if pressure is not None and pressure >= 1 and worst is not None and ahead is not None:
        # As deep as the excess a delay ahead: the refill already under way still lands.
        return _cut(state, now, replace(worst, pressure=ahead), settings)

    if unknown:
        names = ", ".join(r.name for r in unknown)
        held = replace(state, calm_ticks=0, idle_ticks=0)
        return Decision(
            state=held, action=Action.HOLD, reason=f"no fresh reading of {names}", pressure=pressure
        )

    if pressure is None:  # no signals at all: nothing to react to
        return Decision(state=state, action=Action.HOLD, reason="no health signals", pressure=None)

    ahead = predicted(state.recent, now, pressure, settings)
    if ahead >= 1 and pressure > settings.headroom and worst is not None:
        return _cut(state, now, replace(worst, pressure=ahead), settings, early=True)
    if ahead > settings.headroom:
        held = replace(state, calm_ticks=0, idle_ticks=0)
        why = "pressure in the deadband" if pressure > settings.headroom else "pressure rising"
        return Decision(state=held, action=Action.HOLD, reason=why, pressure=pressure)
    return _maybe_raise(state, now, ahead, observation.achieved_rate, settings)


def _growth(ahead: float, settings: ControlSettings) -> float:
    """x2 while the pressure ahead is under half the headroom; nearer, the square root of
    the room left (latency grows faster than linearly with load near capacity)."""
    if ahead <= settings.headroom / 2:
        return 2.0
    return min(2.0, max(1.05, math.sqrt(settings.headroom / ahead)))


def _remember(
    recent: tuple[tuple[float, float], ...], now: float, pressure: float, settings: ControlSettings
) -> tuple[tuple[float, float], ...]:
    kept = tuple((at, p) for at, p in recent if now - at <= settings.feedback_delay and at < now)
    return (*kept, (now, pressure))


def predicted(
    recent: Sequence[tuple[float, float]], now: float, pressure: float, settings: ControlSettings
) -> float:
    """The pressure one feedback delay ahead if the rate stays: the level of the last half
    delay plus its rise over the half before (the refill of recent purges is still
    landing). Means, not single readings, so that noise neither raises nor cuts; never
    below the pressure now, and never counting on a fall."""
    half = settings.feedback_delay / 2
    late = [p for at, p in recent if now - at < half] or [pressure]
    early = [p for at, p in recent if half <= now - at <= settings.feedback_delay]
    level = math.fsum(late) / len(late)
    rise = max(0.0, level - math.fsum(early) / len(early)) if early else 0.0
    return max(pressure, level + rise)


def _cut_factor(worst: Reading, settings: ControlSettings) -> float:
    """x``cut`` (x``error_cut`` for errors), and deeper when far over: x1/pressure, so that
    one cut, seen a feedback delay later, is enough (an overshoot costs a whole delay)."""
    factor = settings.error_cut if worst.is_error_rate else settings.cut
    pressure = worst.pressure if worst.pressure is not None and worst.pressure > 0 else 1.0
    return max(_DEEPEST_CUT, min(factor, 1 / pressure))


def _after_overload(rate: float, worst: Reading, settings: ControlSettings) -> tuple[float, float]:
    """The cut rate, and the ceiling to climb back to: just under the rate that hurt, scaled
    down by how far over the limit it was (a slow start's overshoot says little)."""
    pressure = worst.pressure if worst.pressure is not None and worst.pressure > 0 else 1.0
    cut = _clamp(rate * _cut_factor(worst, settings), settings)
    ceiling = max(cut, rate * settings.ceiling_margin * min(1.0, 1 / pressure))
    return cut, ceiling


def _overload(
    state: ControlState, now: float, worst: Reading, settings: ControlSettings
) -> ControlState | None:
    """Cut for an overload: once per feedback delay; within it, a worse reading deepens the
    last cut (measured from the rate before it) instead of adding a second one.
    ``None`` when this reading asks for nothing the last cut did not already do."""
    if now - state.last_cut >= settings.feedback_delay:
        rate, ceiling = _after_overload(state.rate, worst, settings)
        return replace(
            state,
            rate=rate,
            ceiling=ceiling,
            cut_from=state.rate,
            last_cut=now,
            last_change=now,
            slow_start=False,
        )
    rate, ceiling = _after_overload(state.cut_from, worst, settings)
    if rate >= state.rate:
        return None
    return replace(
        state, rate=rate, ceiling=min(ceiling, state.ceiling or ceiling), last_change=now
    )


def _pause(
    state: ControlState,
    now: float,
    reason: str,
    pressure: float | None,
    overload: Reading | None,
    settings: ControlSettings,
) -> Decision:
    """Hold every call. On an overload (``overload``, the worst reading) also cut the rate
    the run will resume at; missing data keeps it."""
    if overload is not None and not state.paused:
        state = _overload(state, now, overload, settings) or state
    paused = replace(
        state,
        paused=True,
        slow_start=False if overload is not None else state.slow_start,
        healthy_since=None,
        calm_ticks=0,
        idle_ticks=0,
    )
    action = Action.HOLD if state.paused else Action.PAUSE
    return Decision(state=paused, action=action, reason=f"paused: {reason}", pressure=pressure)


def _while_paused(
    state: ControlState,
    now: float,
    pressure: float | None,
    unknown: Sequence[Reading],
    settings: ControlSettings,
) -> Decision:
    if unknown or pressure is None or pressure > settings.headroom:
        waiting = replace(state, healthy_since=None)
        return Decision(
            state=waiting,
            action=Action.HOLD,
            reason="paused: waiting for health",
            pressure=pressure,
        )
    healthy_since = state.healthy_since if state.healthy_since is not None else now
    healthy_for = now - healthy_since
    if healthy_for < settings.resume_after:
        waiting = replace(state, healthy_since=healthy_since)
        why = f"paused: healthy for {healthy_for:.0f} s of {settings.resume_after:.0f}"
        return Decision(state=waiting, action=Action.HOLD, reason=why, pressure=pressure)
    # The rate was cut when an overload began the pause, or is the one that ran fine before
    # the data went missing: resume there, and never in slow start again.
    resumed = replace(
        state,
        paused=False,
        slow_start=False,
        ceiling=state.ceiling if state.ceiling is not None else state.rate,
        last_change=now,
        reached=None,
        healthy_since=None,
        calm_ticks=0,
    )
    return Decision(state=resumed, action=Action.RESUME, reason="healthy again", pressure=pressure)


def _cut(
    state: ControlState,
    now: float,
    worst: Reading | None,
    settings: ControlSettings,
    *,
    early: bool = False,
) -> Decision:
    assert worst is not None  # noqa: S101 - a pressure >= 1 came from a reading
    deepening = now - state.last_cut < settings.feedback_delay
    cut = _overload(state, now, worst, settings)
    if cut is None:
        held = replace(state, calm_ticks=0, idle_ticks=0)
        return Decision(
            state=held,
            action=Action.HOLD,
            reason=f"{worst.name} over its limit; waiting for the last cut to show",
            pressure=worst.pressure,
        )
    base = cut.cut_from
    why = f"x{cut.rate / base:.2g} of {base:.0f}/s" + (
        ", deepening the last cut" if deepening else ""
    )
    at = "heading for" if early else "at"
    return Decision(
        state=replace(cut, calm_ticks=0, idle_ticks=0),
        action=Action.CUT,
        reason=f"{worst.name} {at} {worst.pressure:.2f} of its limit: {why}",
        pressure=worst.pressure,
    )


def _maybe_raise(
    state: ControlState, now: float, pressure: float, achieved: float, settings: ControlSettings
) -> Decision:
    calm = state.calm_ticks + 1
    idle = state.idle_ticks + 1 if pressure <= settings.idle_pressure else 0
    state = replace(state, calm_ticks=calm, idle_ticks=idle)
    waited = now - max(state.last_change, state.reached if state.reached is not None else now)
    if calm >= settings.raise_after and achieved < settings.used_share * state.rate:
        return Decision(
            state=state,
            action=Action.HOLD,
            reason=f"calm, but only {achieved:.0f} of {state.rate:.0f}/s used",
            pressure=pressure,
        )
    if calm < settings.raise_after or waited < settings.feedback_delay:
        return Decision(state=state, action=Action.HOLD, reason="calm; waiting", pressure=pressure)
    ceiling = state.ceiling
    idle_long = idle >= settings.raise_after and waited >= 2 * settings.feedback_delay
    # Double, or less when the pressure says doubling would overshoot the headroom; the
    # square root because latency grows faster than linearly with load near capacity.
    growth = _growth(pressure, settings)
    if state.slow_start or ceiling is None:
        rate, why = state.rate * growth, f"slow start: x{growth:.2g}"
    elif state.rate < ceiling:
        # Halve the gap, in steps of at least 5 %: back near the ceiling in a few delays.
        step = max((ceiling - state.rate) / 2, 0.05 * ceiling)
        rate, why = min(ceiling, state.rate + step), "back toward the last good rate"
    elif idle_long:
        # Far from busy at the ceiling: capacity came back; grow as in slow start.
        rate, why = state.rate * growth, f"idle at the ceiling: x{growth:.2g}"
        ceiling = rate
    elif waited >= settings.probe_after * settings.feedback_delay:
        rate, why = state.rate * (1 + settings.probe_step), "quiet at the ceiling: probing above"
        ceiling = rate
    else:
        rate, why = state.rate, "at the ceiling"
    rate = _clamp(rate, settings)
    if rate <= state.rate:
        return Decision(
            state=state, action=Action.HOLD, reason="at the maximum rate", pressure=pressure
        )
    raised = replace(
        state, rate=rate, ceiling=ceiling, last_change=now, reached=None, calm_ticks=0, idle_ticks=0
    )
    return Decision(state=raised, action=Action.RAISE, reason=why, pressure=pressure)
