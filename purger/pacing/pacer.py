"""How fast: token buckets whose rate can change while running, and a cap on calls in
flight that shrinks on overload and grows back (AIMD).

The clock is injected everywhere (:class:`Clock`), so tests and simulations run in virtual
time; nothing here patches ``sleep``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import anyio

__all__ = [
    "AdaptiveLimit",
    "AnyioClock",
    "Clock",
    "Pacer",
    "PacerClosedError",
    "PacerStatistics",
    "TokenBucket",
]


class Clock(Protocol):
    """Monotonic seconds, and a way to wait for them to pass."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class AnyioClock:
    """The event loop's clock."""

    def now(self) -> float:
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class TokenBucket:
    """A GCRA token bucket: ``rate`` tokens a second, up to ``burst`` at once.

    One number of state, the theoretical arrival time; a request reserves its tokens at
    once and then sleeps until they are due, so waiters are served in order. A request for
    more than ``burst`` is not refused: it waits until the bucket could have refilled that
    much. Setting :attr:`rate` takes effect for the next reservation. The bucket starts
    empty-handed rather than full, so a run does not open with a burst (algorithms.md A.10).

    A provider's bucket has a burst in tokens, whatever the rate. A bucket whose rate a
    controller sets (:meth:`with_burst_seconds`) has a burst in *time*: one second's worth
    of whatever the rate is now. Otherwise a cut from 2,000/s to 50/s would keep a burst of
    2,000 targets, 40 s of the new rate, and the cut would not slow anything for a while.
    """

    def __init__(self, rate: float, burst: float, clock: Clock) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be > 0")
        self._clock = clock
        self._rate = rate
        self._burst = burst
        self._burst_seconds: float | None = None
        self._tat = clock.now() + (0.0 if math.isinf(rate) else burst / rate)

    @classmethod
    def with_burst_seconds(cls, rate: float, seconds: float, clock: Clock) -> TokenBucket:
        """A bucket whose burst is ``seconds`` of its rate, as the rate changes."""
        if not seconds > 0:
            raise ValueError("seconds must be > 0")
        bucket = cls(rate, 1.0 if math.isinf(rate) else rate * seconds, clock)
        bucket._burst_seconds = seconds
        return bucket

    @property
    def burst(self) -> float:
        """Tokens that may go at once."""
        if self._burst_seconds is None or math.isinf(self._rate):
            return self._burst
        return self._rate * self._burst_seconds

    @property
    def rate(self) -> float:
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        if value <= 0:
            raise ValueError("rate must be > 0")
        self._rate = value

    def reserve(self, amount: float) -> float:
        """Reserve ``amount`` tokens; return how many seconds to wait before using them."""
        if math.isinf(self._rate):
            return 0.0
        now = self._clock.now()
        interval = 1.0 / self._rate
        self._tat = max(self._tat, now) + amount * interval
        return max(0.0, self._tat - self.burst * interval - now)

    async def acquire(self, amount: float = 1.0) -> None:
        delay = self.reserve(amount)
        if delay > 0:
            await self._clock.sleep(delay)

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self._rate:g}/s, burst={self.burst:g})"


class AdaptiveLimit:
    """A cap on calls in flight: halved on overload (at most once per ``cooldown``),
    raised by one after every ``limit`` successful calls, within ``[minimum, maximum]``."""

    def __init__(
        self,
        initial: int,
        *,
        minimum: int = 1,
        maximum: int | None = None,
        cooldown: float = 1.0,
        clock: Clock,
    ) -> None:
        self.minimum = minimum
        self.maximum = maximum if maximum is not None else initial
        self._limiter = anyio.CapacityLimiter(max(minimum, min(initial, self.maximum)))
        self._cooldown = cooldown
        self._clock = clock
        self._last_cut = -math.inf
        self._successes = 0

    @property
    def limit(self) -> int:
        return int(self._limiter.total_tokens)

    @property
    def in_flight(self) -> int:
        return self._limiter.borrowed_tokens

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._limiter:
            yield

    def on_success(self) -> None:
        self._successes += 1
        if self._successes >= self.limit and self.limit < self.maximum:
            self._successes = 0
            self._limiter.total_tokens = self.limit + 1

    def on_overload(self) -> None:
        now = self._clock.now()
        if now - self._last_cut < self._cooldown:
            return  # one cut per round of feedback, not one per failed call
        self._last_cut = now
        self._successes = 0
        self._limiter.total_tokens = max(self.minimum, self.limit // 2)

    def resize(self, maximum: int) -> None:
        """Change the ceiling (an operator's ``--concurrency``); the cap follows it down."""
        self.maximum = max(self.minimum, maximum)
        if self.limit > self.maximum:
            self._limiter.total_tokens = self.maximum


class PacerClosedError(Exception):
    """The pacer was closed (the run is stopping) before this call was admitted: it was
    never sent, and a resume sends it."""


@dataclass(frozen=True, slots=True)
class PacerStatistics:
    rate: float
    concurrency_limit: int
    in_flight: int
    not_before: float
    #: Who holds new calls back (``"health"``, ``"operator"``), in the order they held.
    holds: tuple[str, ...]


class Pacer:
    """Admits one API call at a time: the targets bucket, the provider's buckets, any wait a
    provider asked for (``Retry-After``), then a slot under the concurrency cap.

    Holds are named, so that each holder lifts only its own: an operator's resume never
    lifts a pause the health caused, nor the other way round.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        targets: TokenBucket,
        call_buckets: Sequence[TokenBucket] = (),
        target_buckets: Sequence[TokenBucket] = (),
        limit: AdaptiveLimit,
    ) -> None:
        self.clock = clock
        self.targets = targets
        self.call_buckets = tuple(call_buckets)
        self.target_buckets = tuple(target_buckets)
        self.limit = limit
        self._not_before = -math.inf
        self._holds: dict[str, None] = {}  # insertion-ordered set
        self._released: anyio.Event | None = None
        self._closed = False
        # Calls waiting for their turn (a bucket, a Retry-After): cancelled by close().
        self._waiting: set[anyio.CancelScope] = set()

    @property
    def holds(self) -> tuple[str, ...]:
        """Who holds new calls back, or ``()``."""
        return tuple(self._holds)

    def hold(self, holder: str) -> None:
        """Let no new call start until ``holder`` releases; calls in flight go on."""
        self._holds[holder] = None

    def release(self, holder: str) -> None:
        """Lift ``holder``'s hold; calls start again once no one holds them."""
        self._holds.pop(holder, None)
        if not self._holds:
            self._wake()

    def close(self) -> None:
        """The run is stopping: every call not admitted yet raises :class:`PacerClosedError`
        instead of waiting for a bucket, a hold or a ``Retry-After``; calls in flight go on."""
        self._closed = True
        self._wake()
        for scope in self._waiting:
            scope.cancel()

    def _wake(self) -> None:
        if self._released is not None:
            self._released.set()
            self._released = None

    def defer(self, seconds: float) -> None:
        """Hold every new call for ``seconds`` (a 429's ``Retry-After`` applies to all)."""
        self._not_before = max(self._not_before, self.clock.now() + seconds)

    @asynccontextmanager
    async def admit(self, targets: int) -> AsyncIterator[None]:
        while True:
            await self._while_held()
            delay = max(
                [self.targets.reserve(targets)]
                + [bucket.reserve(1) for bucket in self.call_buckets]
                + [bucket.reserve(targets) for bucket in self.target_buckets]
            )
            delay = max(delay, self._not_before - self.clock.now())
            if delay <= 0:
                break
            await self._wait(delay)
            # A pause that came while this call waited for its turn holds it too (at a low
            # rate the wait is long, and a paused run must send nothing new); after the
            # pause it queues again, so that a resume is not a burst of every held call.
            if not self._holds:
                break
        async with self.limit.slot():
            yield

    async def _while_held(self) -> None:
        while self._holds and not self._closed:
            if self._released is None:
                self._released = anyio.Event()
            await self._released.wait()
        if self._closed:
            raise PacerClosedError

    async def _wait(self, delay: float) -> None:
        # A scope per waiting call, not per call: most calls at a high rate never wait.
        with anyio.CancelScope() as scope:
            self._waiting.add(scope)
            try:
                await self.clock.sleep(delay)
            finally:
                self._waiting.discard(scope)
        if scope.cancelled_caught or self._closed:
            raise PacerClosedError

    def statistics(self) -> PacerStatistics:
        return PacerStatistics(
            rate=self.targets.rate,
            concurrency_limit=self.limit.limit,
            in_flight=self.limit.in_flight,
            not_before=self._not_before,
            holds=self.holds,
        )
