"""Retries: transient errors back off, 429 waits as told, everything else fails at once."""

from __future__ import annotations

import pytest

from purger.errors import RateLimitedError, RejectedError, TransientError
from purger.pacing.pacer import AnyioClock
from purger.pacing.retrying import RetryPolicy, call_with_retries
from purger.sim.virtual_time import run_in_virtual_time
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

POLICY = RetryPolicy(attempts=4, total_seconds=1e9, backoff_base=0.5, backoff_max=8)


class Flaky:
    """Raises the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def transient() -> TransientError:
    return TransientError("503", provider="p", status=503)


async def test_the_call_is_really_awaited():
    """The result is the coroutine's value, not an unawaited coroutine."""
    call = Flaky()
    assert await call_with_retries(call, policy=POLICY, clock=FakeClock()) == "ok"
    assert call.calls == 1


async def test_transient_errors_back_off_with_jitter_under_the_cap():
    """Two 503s: three calls, two waits, each within the exponential cap."""
    clock = FakeClock()
    call = Flaky(transient(), transient())
    assert await call_with_retries(call, policy=POLICY, clock=clock) == "ok"
    assert call.calls == 3
    assert len(clock.sleeps) == 2
    assert all(0 <= s <= POLICY.backoff_max for s in clock.sleeps)


async def test_a_429_waits_exactly_what_the_provider_asked():
    """Retry-After 12 s is honoured as given."""
    clock = FakeClock()
    call = Flaky(RateLimitedError("429", provider="p", retry_after=12.0))
    await call_with_retries(call, policy=POLICY, clock=clock)
    assert clock.sleeps == [12.0]


async def test_attempts_are_bounded_and_the_last_error_is_raised():
    """After `attempts` failures the last error surfaces, unchanged."""
    call = Flaky(*(transient() for _ in range(10)))
    with pytest.raises(TransientError, match="503"):
        await call_with_retries(call, policy=POLICY, clock=FakeClock())
    assert call.calls == POLICY.attempts


async def test_total_time_bounds_retries_too():
    """A policy whose total time is spent gives up after the first failure."""
    policy = RetryPolicy(attempts=100, total_seconds=0.0, backoff_base=1, backoff_max=1)
    call = Flaky(*(transient() for _ in range(10)))
    with pytest.raises(TransientError):
        await call_with_retries(call, policy=policy, clock=FakeClock())
    assert call.calls == 1


@pytest.mark.parametrize(
    "error",
    [
        RejectedError("400", provider="p", status=400),
        RateLimitedError("429", provider="p", retry_after=1.0, max_targets=10),
    ],
)
async def test_errors_answered_by_the_caller_are_not_retried(error):
    """A rejected batch (split it) or a 429 that says how many fit (shrink it): one call."""
    call = Flaky(error)
    with pytest.raises(type(error)):
        await call_with_retries(call, policy=POLICY, clock=FakeClock())
    assert call.calls == 1


def test_the_total_time_bound_holds_in_virtual_time():
    """Under the simulator's virtual clock a 10 s budget is 10 virtual seconds: the retries
    stop there, long before 50 attempts (tenacity's bound read the wall clock, and here
    made all 50 attempts and slept 294 virtual seconds)."""
    policy = RetryPolicy(attempts=50, total_seconds=10.0, backoff_base=0.5, backoff_max=30)
    call = Flaky(*(transient() for _ in range(100)))

    async def main() -> tuple[float, float]:
        clock = AnyioClock()
        started = clock.now()
        with pytest.raises(TransientError):
            await call_with_retries(call, policy=policy, clock=clock)
        return started, clock.now()

    started, ended = run_in_virtual_time(main)
    assert ended - started <= policy.total_seconds + 1e-9  # float rounding only
    assert 2 <= call.calls < policy.attempts


async def test_no_wait_reaches_past_the_budget():
    """Backoffs are shortened to what is left: the sleeps add up to the budget at most."""
    clock = FakeClock()
    policy = RetryPolicy(attempts=1000, total_seconds=7.5, backoff_base=4, backoff_max=30)
    call = Flaky(*(transient() for _ in range(2000)))
    with pytest.raises(TransientError):
        await call_with_retries(call, policy=policy, clock=clock)
    assert clock.now() - 1000.0 <= 7.5 + 1e-9  # FakeClock starts at 1000; float rounding
    assert call.calls < 1000


async def test_a_429_asking_past_the_budget_ends_the_retries_at_once():
    """Calling before the provider's time would be refused again: give up instead."""
    clock = FakeClock()
    policy = RetryPolicy(attempts=8, total_seconds=10.0)
    call = Flaky(RateLimitedError("429", provider="p", retry_after=60.0))
    with pytest.raises(RateLimitedError):
        await call_with_retries(call, policy=policy, clock=clock)
    assert (call.calls, clock.sleeps) == (1, [])


async def test_backoff_grows_exponentially_under_its_cap(monkeypatch):
    """Full jitter's ceiling doubles per failure up to backoff_max (uniform drawn at top)."""
    monkeypatch.setattr("purger.pacing.retrying.random.uniform", lambda low, high: high)
    clock = FakeClock()
    policy = RetryPolicy(attempts=7, total_seconds=1e9, backoff_base=0.5, backoff_max=8)
    with pytest.raises(TransientError):
        await call_with_retries(Flaky(*(transient() for _ in range(9))), policy=policy, clock=clock)
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
