"""Retries of one purge call, timed by the injected clock.

Transient failures (5xx, timeouts, connection errors) back off exponentially with full
jitter; a 429 waits what the provider asked for (``Retry-After`` or its reset header), or
backs off the same way when it did not say. Both are bounded by attempts and by total time,
and total time is read from the run's :class:`~purger.pacing.pacer.Clock`, never from the
wall: under virtual time (the simulator, tests) the budget holds in virtual seconds.
(tenacity's ``stop_after_delay`` reads ``time.monotonic()``, which is why this is a loop of
its own: under virtual time a 10 s budget made 50 attempts and slept 294 s.)
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from purger.errors import RateLimitedError, TransientError
from purger.pacing.pacer import Clock

__all__ = ["RetryPolicy", "call_with_retries"]

T = TypeVar("T")

_SPENT: Final = 1e-3


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """``attempts`` calls at most, giving up once ``total_seconds`` have passed."""

    attempts: int = 8
    total_seconds: float = 300.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0


def _is_retryable(error: BaseException) -> bool:
    if isinstance(error, RateLimitedError):
        return error.max_targets is None  # a smaller batch is the caller's answer, not a wait
    return isinstance(error, TransientError)


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    clock: Clock,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
) -> T:
    """Await ``call()`` until it succeeds, a non-retryable error is raised, or the policy
    is spent (the last error is raised). ``on_retry(error, attempt, wait)`` is told before
    each wait: the error, the attempt that failed (from 1) and the seconds until the next.

    No wait reaches past ``total_seconds`` from the first call: a backoff is shortened to
    what is left, and a 429 that asks for longer than that ends the retries at once (calling
    before the provider's time would only be refused again).
    """
    deadline = clock.now() + policy.total_seconds
    failures = 0
    while True:
        try:
            return await call()
        except Exception as error:
            if not _is_retryable(error):
                raise
            failures += 1
            left = deadline - clock.now()
            asked = error.retry_after if isinstance(error, RateLimitedError) else None
            # Under a millisecond left is spent: float rounding must not make tiny waits.
            if failures >= policy.attempts or left < _SPENT or (asked is not None and asked > left):
                raise
            wait = min(left, _backoff(failures, policy) if asked is None else max(0.0, asked))
            if on_retry is not None:
                on_retry(error, failures, wait)
        await clock.sleep(wait)


def _backoff(failures: int, policy: RetryPolicy) -> float:
    """Full jitter: uniform up to ``base * 2 ** (failures - 1)``, capped at ``backoff_max``."""
    ceiling = min(policy.backoff_max, policy.backoff_base * 2.0 ** min(failures - 1, 64))
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret
