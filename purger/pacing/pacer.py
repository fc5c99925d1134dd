"""How fast: token buckets whose rate can change while running, and a cap on calls in
flight that shrinks on overload and grows back (AIMD).

The clock is injected everywhere (:class:`Clock`), so tests and simulations run in virtual
time; nothing here patches ``sleep``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
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


#: Seconds short of its due time at which a waiter counts as due (float rounding).
_DUE = 1e-9


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

    A request takes its tokens at once (:meth:`take` gives it a place in line, counted in
    tokens) and then sleeps until they are due, so waiters are served in order. A request
    for more than ``burst`` is not refused: it waits until the bucket could have refilled
    that much. The bucket starts empty-handed rather than full, so a run does not open with
    a burst (algorithms.md A.10).

    A place in line is counted in tokens, not in seconds, so that a rate change reaches the
    calls already waiting: after a raise their tokens come due sooner, after a cut later
    (with 256-key batches and dozens of calls in line, a change that only applied to new
    reservations took tens of seconds to be felt). :meth:`on_rate_change` tells a waiter to
    look again.

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
        # Tokens taken since the start, and tokens the rate has paid back by ``_since``.
        # Starting one burst in debt is what makes the bucket start empty.
        self._taken = 0.0 if math.isinf(rate) else burst
        self._repaid = 0.0
        self._since = clock.now()
        self._listeners: list[Callable[[], None]] = []

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
        if value == self._rate:
            return
        self._settle()
        burst = self.burst
        self._rate = value
        # The calls in line keep their debt in tokens: they go at the new rate, with no
        # burst on a raise. What the bucket let go in its last burst keeps its debt in
        # time: after a cut from 100/s to 2/s, the 100 targets of the last second are not
        # repaid at 2/s (a 50 s stall) but in the second they would have taken.
        granted = min(self._taken - self._repaid, burst)
        self._repaid += granted - granted * self.burst / burst
        for listener in self._listeners:
            listener()

    def on_rate_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every change of rate (waiters then look again)."""
        self._listeners.append(listener)

    def _repaid_by(self, now: float) -> float:
        if math.isinf(self._rate):
            return self._taken
        # Never more than was taken: an idle bucket holds at most its burst.
        return min(self._taken, self._repaid + (now - self._since) * self._rate)

    def _settle(self) -> None:
        """Start counting repayment from now (before the rate or the debt changes)."""
        now = self._clock.now()
        self._repaid, self._since = self._repaid_by(now), now

    def take(self, amount: float) -> float:
        """Take ``amount`` tokens; return the place in line (see :meth:`wait_for`)."""
        self._settle()
        self._taken += amount
        return self._taken

    def wait_for(self, place: float) -> float:
        """Seconds until the tokens up to ``place`` are due, at the rate now."""
        if math.isinf(self._rate):
            return 0.0
        delay = (place - self.burst - self._repaid_by(self._clock.now())) / self._rate
        # Rounding leaves a waiter woken at its due time a hair short: a sleep that small
        # would not move a clock (and it would wait for it forever).
        return delay if delay > _DUE else 0.0

    def reserve(self, amount: float) -> float:
        """Reserve ``amount`` tokens; return how many seconds to wait before using them, if
        the rate does not change meanwhile."""
        return self.wait_for(self.take(amount))

    async def acquire(self, amount: float = 1.0) -> None:
        place = self.take(amount)
        while (delay := self.wait_for(place)) > 0:
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
        # Calls waiting for their turn (a bucket, a Retry-After): cancelled by close() and
        # woken by a rate change.
        self._waiting: set[anyio.CancelScope] = set()
        for bucket in (targets, *self.call_buckets, *self.target_buckets):
            bucket.on_rate_change(self._rate_changed)

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
            places = [(self.targets, self.targets.take(targets))]
            places += [(bucket, bucket.take(1)) for bucket in self.call_buckets]
            places += [(bucket, bucket.take(targets)) for bucket in self.target_buckets]
            if await self._turn(places):
                break
            # A pause that came while this call waited for its turn holds it too (at a low
            # rate the wait is long, and a paused run must send nothing new); after the
            # pause it queues again, so that a resume is not a burst of every held call.
        async with self.limit.slot():
            yield

    async def _turn(self, places: Sequence[tuple[TokenBucket, float]]) -> bool:
        """Wait until every bucket's tokens are due (at the rates of the moment, looked at
        again after every change) and no ``Retry-After`` holds; False if a hold came."""
        while True:
            delay = max(bucket.wait_for(place) for bucket, place in places)
            delay = max(delay, self._not_before - self.clock.now())
            if delay <= 0:
                return True
            await self._wait(delay)
            if self._holds:
                return False

    def _rate_changed(self) -> None:
        # Wake every call waiting for its turn: each works out its wait at the new rate.
        for scope in self._waiting:
            scope.cancel()

    async def _while_held(self) -> None:
        while self._holds and not self._closed:
            if self._released is None:
                self._released = anyio.Event()
            await self._released.wait()
        if self._closed:
            raise PacerClosedError

    async def _wait(self, delay: float) -> None:
        """Sleep ``delay``, or less if a rate changes; raise if the pacer closes."""
        # A scope per waiting call, not per call: most calls at a high rate never wait.
        with anyio.CancelScope() as scope:
            self._waiting.add(scope)
            try:
                await self.clock.sleep(delay)
            finally:
                self._waiting.discard(scope)
        if self._closed:
            raise PacerClosedError

    def statistics(self) -> PacerStatistics:
        return PacerStatistics(
            rate=self.targets.rate,
            concurrency_limit=self.limit.limit,
            in_flight=self.limit.in_flight,
            not_before=self._not_before,
            holds=self.holds,
        )
