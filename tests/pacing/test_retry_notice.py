"""`on_retry`: whoever runs the calls hears of each retry before its wait, so an operator
sees an unreachable API at once instead of minutes of silence."""

from __future__ import annotations

import pytest

from purger.errors import RateLimitedError, RejectedError, TransientError
from purger.pacing.retrying import RetryPolicy, call_with_retries
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio


class Failing:
    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)

    async def __call__(self) -> str:
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_each_retry_is_told_before_its_wait_with_the_attempt_and_the_wait():
    """Three failures, then success: three notices, attempts 1, 2, 3, each with the
    wait that follows it (the clock's sleeps), the error itself passed on."""
    errors = [TransientError(f"down {i}", provider="p") for i in range(2)]
    errors.append(RateLimitedError("429", provider="p", retry_after=7.0))
    clock = FakeClock()
    heard: list[tuple[BaseException, int, float, int]] = []

    def on_retry(error: BaseException, attempt: int, wait: float) -> None:
        heard.append((error, attempt, wait, len(clock.sleeps)))

    policy = RetryPolicy(attempts=5, total_seconds=1e9, backoff_base=0.5, backoff_max=8)
    result = await call_with_retries(
        Failing(*errors), policy=policy, clock=clock, on_retry=on_retry
    )
    assert result == "ok"
    assert [h[0] for h in heard] == errors
    assert [h[1] for h in heard] == [1, 2, 3]
    assert [h[2] for h in heard] == pytest.approx(clock.sleeps)
    assert heard[2][2] == 7.0
    assert [h[3] for h in heard] == [0, 1, 2]  # told before the wait, not after


async def test_no_notice_for_an_error_that_is_not_retried_or_the_last_attempt():
    """A rejection fails at once, and the attempt that spends the policy waits for
    nothing: neither is announced as a retry."""
    heard: list[int] = []
    policy = RetryPolicy(attempts=2, total_seconds=1e9)
    with pytest.raises(RejectedError):
        await call_with_retries(
            Failing(RejectedError("400", provider="p")),
            policy=policy,
            clock=FakeClock(),
            on_retry=lambda e, attempt, w: heard.append(attempt),
        )
    assert heard == []
    with pytest.raises(TransientError):
        await call_with_retries(
            Failing(*(TransientError("x", provider="p") for _ in range(3))),
            policy=policy,
            clock=FakeClock(),
            on_retry=lambda e, attempt, w: heard.append(attempt),
        )
    assert heard == [1]
