"""The controller, stepped in simulated time: properties, and a closed loop with dead time."""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from purger.health.control import (
    Action,
    ControlSettings,
    ControlState,
    Observation,
    Reading,
    decide,
    initial_state,
)

SETTINGS = ControlSettings(initial_rate=50, min_rate=1, max_rate=5000, feedback_delay=60, tick=5)

pressures = st.one_of(st.none(), st.floats(0, 3), st.just(math.nan))
ages = st.one_of(st.none(), st.floats(0, 60))
readings = st.builds(
    Reading,
    name=st.sampled_from(["p99", "errors", "cpu"]),
    pressure=pressures,
    critical_pressure=st.one_of(st.none(), st.floats(0, 2)),
    age=ages,
    is_error_rate=st.booleans(),
)
states = st.builds(
    ControlState,
    rate=st.floats(1, 5000),
    paused=st.booleans(),
    slow_start=st.booleans(),
    ceiling=st.one_of(st.none(), st.floats(1, 5000)),
    last_change=st.floats(-1000, 1000),
    calm_ticks=st.integers(0, 10),
    idle_ticks=st.integers(0, 10),
    unknown_since=st.one_of(st.none(), st.floats(0, 1000)),
    healthy_since=st.one_of(st.none(), st.floats(0, 1000)),
)


def fresh(pressure: float, *, name: str = "p99", errors: bool = False) -> Reading:
    return Reading(name=name, pressure=pressure, age=1.0, is_error_rate=errors)


def observe(now: float, *readings_: Reading, achieved: float = math.inf) -> Observation:
    return Observation(now=now, readings=tuple(readings_), achieved_rate=achieved)


def is_unknown(reading: Reading) -> bool:
    return (
        reading.pressure is None
        or math.isnan(reading.pressure)
        or reading.age is None
        or reading.age > SETTINGS.staleness
    )


@settings(max_examples=500, deadline=None)
@given(states, st.lists(readings, min_size=1, max_size=4), st.floats(1000, 2000), st.floats(0, 1e4))
def test_stale_or_missing_readings_never_raise_the_rate(state, readings_, now, achieved):
    """If any signal is unknown (missing, failed, NaN or stale), the rate does not rise."""
    observation = Observation(now=now, readings=tuple(readings_), achieved_rate=achieved)
    decision = decide(state, observation, SETTINGS)
    if any(is_unknown(r) for r in readings_):
        assert decision.rate <= state.rate
        assert decision.action is not Action.RAISE


@settings(max_examples=500, deadline=None)
@given(states, st.floats(0, 3), st.floats(0, 3), st.floats(1000, 2000), st.booleans())
def test_more_pressure_never_gives_a_higher_rate(state, low, high, now, errors):
    """The same situation with a worse reading never ends at a higher effective rate (a
    paused run's rate is 0)."""
    low, high = min(low, high), max(low, high)
    calm = decide(state, observe(now, fresh(low, errors=errors)), SETTINGS)
    tense = decide(state, observe(now, fresh(high, errors=errors)), SETTINGS)
    assert effective(tense.state) <= effective(calm.state)


def effective(state: ControlState) -> float:
    return 0.0 if state.paused else state.rate


@settings(max_examples=500, deadline=None)
@given(states, st.lists(readings, max_size=4), st.floats(1000, 2000), st.floats(0, 1e4))
def test_the_rate_stays_within_its_bounds(state, readings_, now, achieved):
    """Whatever happens, the rate stays within [min_rate, max_rate]."""
    state = replace(state, rate=min(max(state.rate, SETTINGS.min_rate), SETTINGS.max_rate))
    decision = decide(
        state, Observation(now=now, readings=tuple(readings_), achieved_rate=achieved), SETTINGS
    )
    assert SETTINGS.min_rate <= decision.rate <= SETTINGS.max_rate


@settings(max_examples=300, deadline=None)
@given(states, st.floats(1.0, 3.0), st.floats(1000, 2000))
def test_critical_pressure_always_pauses(state, critical, now):
    """A signal at or past its critical limit pauses the run, whatever else is true."""
    reading = Reading(name="p99", pressure=critical, critical_pressure=critical, age=1.0)
    assert decide(state, observe(now, reading), SETTINGS).state.paused


def test_cuts_are_at_most_one_per_feedback_delay():
    """Pressure over the limit on every tick: the rate is cut once per feedback delay."""
    state = replace(initial_state(SETTINGS), rate=1000)
    cuts = []
    for tick in range(60):
        now = 1000 + tick * SETTINGS.tick
        decision = decide(state, observe(now, fresh(1.5)), SETTINGS)
        if decision.action is Action.CUT:
            cuts.append(now)
        state = decision.state
    assert len(cuts) == 5
    assert all(b - a >= SETTINGS.feedback_delay for a, b in itertools.pairwise(cuts))
    assert state.rate == 1000 * (1 / 1.5) ** 5  # x1/pressure: deeper than x0.7 at 1.5


def test_an_error_signal_cuts_harder():
    """An error-rate signal over its limit halves the rate instead of x0.7; far over the
    limit the cut goes deeper (x1/pressure, at most x0.25)."""
    state = replace(initial_state(SETTINGS), rate=1000)
    assert decide(state, observe(1000, fresh(1.2, errors=True)), SETTINGS).rate == 500
    assert decide(state, observe(1000, fresh(1.2)), SETTINGS).rate == 700
    assert decide(state, observe(1000, fresh(2.0)), SETTINGS).rate == 500
    assert decide(state, observe(1000, fresh(40.0)), SETTINGS).rate == 250


def test_slow_start_doubles_until_the_first_cut_then_stays_under_the_ceiling():
    """Calm: x2 per feedback delay from when the rate was reached (the first raise waits a
    delay too); after a cut, back to just under the rate that hurt."""
    state, now = initial_state(SETTINGS), 1000.0
    rates = []
    for _ in range(12):  # the first feedback delay: no evidence yet, no raise
        now += SETTINGS.tick
        state = decide(state, observe(now, fresh(0.2)), SETTINGS).state
        assert state.rate == 50
    for _ in range(3 * 13):
        now += SETTINGS.tick
        state = decide(state, observe(now, fresh(0.2)), SETTINGS).state
        rates.append(state.rate)
    assert sorted(set(rates)) == [100, 200, 400]
    now += SETTINGS.feedback_delay + SETTINGS.tick  # the calm readings are out of the trend
    state = decide(state, observe(now, fresh(1.2)), SETTINGS).state
    assert state.rate == 400 * 0.7
    assert state.ceiling == 400 * 0.9 / 1.2  # under the rate that hurt, by how much it hurt
    for _ in range(80):  # 400 s: a few feedback delays to climb back
        now += SETTINGS.tick
        state = decide(state, observe(now, fresh(0.6)), SETTINGS).state
        assert state.rate <= 300
    assert state.rate == 300


def test_slow_start_grows_less_when_doubling_would_overshoot():
    """Past half the headroom, slow start grows by sqrt(headroom / pressure), not x2."""
    state = replace(initial_state(SETTINGS), rate=100, calm_ticks=5, reached=0.0)
    expected = 100 * math.sqrt(SETTINGS.headroom / 0.5)
    assert decide(state, observe(1000, fresh(0.5)), SETTINGS).rate == expected


def test_a_raise_waits_a_feedback_delay_after_the_rate_is_reached():
    """A raised rate the run has not reached yet says nothing about the origin: the next
    raise waits a full feedback delay from when the run first sent at 90 % of it."""
    state = replace(initial_state(SETTINGS), rate=200, last_change=0.0, calm_ticks=5)
    now = 1000.0
    state = decide(state, observe(now, fresh(0.1), achieved=120), SETTINGS).state
    assert state.rate == 200
    assert state.reached is None
    now += SETTINGS.tick
    state = decide(state, observe(now, fresh(0.1), achieved=190), SETTINGS).state
    assert state.reached == now
    while now < state.reached + SETTINGS.feedback_delay - SETTINGS.tick:
        now += SETTINGS.tick
        state = decide(state, observe(now, fresh(0.1), achieved=200), SETTINGS).state
        assert state.rate == 200
    now += SETTINGS.tick
    assert decide(state, observe(now, fresh(0.1), achieved=200), SETTINGS).rate == 400


def test_a_rising_pressure_holds_a_raise_and_cuts_before_the_limit():
    """Calm now but climbing over the last feedback delay: no raise (the refill of recent
    purges is still landing); in the deadband and heading past the limit: an early cut."""
    base = replace(initial_state(SETTINGS), rate=400, slow_start=False, reached=0.0)
    rising = replace(base, recent=((960.0, 0.2), (965.0, 0.2), (990.0, 0.45), (995.0, 0.5)))
    flat = replace(base, recent=((960.0, 0.5), (965.0, 0.5), (990.0, 0.5), (995.0, 0.5)))
    state = replace(rising, calm_ticks=5)
    assert decide(replace(flat, calm_ticks=5), observe(1000, fresh(0.5)), SETTINGS).rate > 400
    held = decide(state, observe(1000, fresh(0.5)), SETTINGS)
    assert held.rate == 400
    assert held.action is Action.HOLD
    climbing = replace(base, recent=((960.0, 0.4), (965.0, 0.4), (990.0, 0.7), (995.0, 0.75)))
    early = decide(climbing, observe(1000, fresh(0.75)), SETTINGS)
    assert early.action is Action.CUT
    assert early.rate < 400
    assert "heading for" in early.reason


@settings(max_examples=300, deadline=None)
@given(
    states,
    st.lists(st.tuples(st.floats(940, 999), st.floats(0, 3)), max_size=12),
    st.floats(0, 3),
    st.floats(0, 3),
)
def test_more_pressure_never_gives_a_higher_rate_whatever_the_trend(state, recent, low, high):
    """The trend the controller remembers never turns a worse reading into a higher rate."""
    low, high = min(low, high), max(low, high)
    state = replace(state, recent=tuple(sorted(recent)))
    calm = decide(state, observe(1000, fresh(low)), SETTINGS)
    tense = decide(state, observe(1000, fresh(high)), SETTINGS)
    assert effective(tense.state) <= effective(calm.state)


def test_the_unused_rate_is_not_raised():
    """App-limited: calm, but using less than half the allowed rate, holds."""
    state = replace(initial_state(SETTINGS), rate=1000, last_change=0)
    for tick in range(5):
        decision = decide(state, observe(1000 + 5 * tick, fresh(0.1), achieved=100), SETTINGS)
        state = decision.state
    assert decision.rate == 1000
    assert "used" in decision.reason


def test_unknown_data_pauses_after_the_grace_period_and_resumes_only_when_healthy():
    """No fresh data for the grace period pauses; resuming needs resume_after of health."""
    state = replace(initial_state(SETTINGS), rate=400, slow_start=False, last_change=0)
    missing = Reading(name="p99", pressure=None, age=None)
    now = 1000.0
    actions = []
    while now < 1000 + SETTINGS.grace:
        state = decide(state, observe(now, missing), SETTINGS).state
        actions.append(state.paused)
        now += SETTINGS.tick
    decision = decide(state, observe(now, missing), SETTINGS)
    assert not any(actions)
    assert decision.action is Action.PAUSE
    state = decision.state
    resumed_at = None
    for _ in range(20):
        now += SETTINGS.tick
        decision = decide(state, observe(now, fresh(0.3)), SETTINGS)
        state = decision.state
        if decision.action is Action.RESUME:
            resumed_at = now
            break
    assert resumed_at is not None
    assert resumed_at - (1000 + SETTINGS.grace + SETTINGS.tick) >= SETTINGS.resume_after
    assert state.rate == 400  # missing data is no overload: the rate is kept


class DeadTimePlant:
    """A toy origin: p99 pressure follows the purge rate after ``lag`` seconds (a refill
    delay plus metrics lag), M/M/1-like: p99 = 4.6 x service / (1 - u), u = (base + rate) / C.
    With base 300/s, C 1000/s, service 20 ms and a 0.5 s limit, the best rate is 516/s."""

    def __init__(self, lag: float, tick: float) -> None:
        self.queue: deque[float] = deque([0.0] * int(lag / tick))

    def step(self, rate: float) -> float:
        self.queue.append(rate)
        utilization = min((300 + self.queue.popleft()) / 1000, 0.98)
        return 0.02 * math.log(100) / (1 - utilization) / 0.5


def run_closed_loop(seconds: float) -> list[tuple[float, float]]:
    settings_ = replace(SETTINGS, initial_rate=50, max_rate=math.inf)
    plant = DeadTimePlant(lag=settings_.feedback_delay * 0.75, tick=settings_.tick)
    state, now, trace = initial_state(settings_), 0.0, []
    while now < seconds:
        pressure = plant.step(state.rate)
        state = decide(state, observe(now, fresh(pressure), achieved=state.rate), settings_).state
        trace.append((now, state.rate))
        now += settings_.tick
    return trace


def test_closed_loop_converges_near_the_sustainable_rate_without_oscillating():
    """Against dead time: within 20 % of the best sustainable rate after 5 feedback delays
    (its mean), and at most 2 changes of direction per 10 feedback delays in steady state."""
    best = 1000 * (1 - 0.02 * math.log(100) / 0.5) - 300  # pressure 1.0: 516/s
    delay = SETTINGS.feedback_delay
    trace = run_closed_loop(seconds=60 * delay)
    steady = [rate for t, rate in trace if t >= 5 * delay]
    assert abs(sum(steady) / len(steady) - best) <= 0.2 * best
    window = [rate for t, rate in trace if t >= 20 * delay]
    directions = [math.copysign(1, b - a) for a, b in itertools.pairwise(window) if b != a]
    changes = sum(1 for a, b in itertools.pairwise(directions) if a != b)
    assert changes <= 2 * (len(window) * SETTINGS.tick / (10 * delay))
