"""Pacing: token buckets keep their rate, the concurrency cap shrinks and grows (AIMD)."""

from __future__ import annotations

import math

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from purger.pacing.pacer import AdaptiveLimit, AnyioClock, Pacer, PacerClosedError, TokenBucket
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 1000),
    burst=st.floats(1, 100),
    steps=st.lists(st.tuples(st.floats(0, 5), st.floats(0.01, 1)), min_size=1, max_size=60),
)
def test_grants_in_any_window_stay_under_burst_plus_rate(rate, burst, steps):
    """Tokens granted in any window of length t are at most burst + rate x t."""
    clock = FakeClock()
    bucket = TokenBucket(rate, burst, clock)
    grants: list[tuple[float, float]] = []
    for advance, fraction in steps:
        clock.time += advance
        amount = fraction * burst
        grants.append((clock.time + bucket.reserve(amount), amount))
    grants.sort()
    for i, (start, _) in enumerate(grants):
        total = 0.0
        for at, amount in grants[i:]:
            total += amount
            assert total <= burst + rate * (at - start) + 1e-6 * (1 + total)


def test_bucket_starts_empty_so_a_run_does_not_open_with_a_burst():
    """The first tokens wait for the rate: no burst at t = 0."""
    clock = FakeClock()
    bucket = TokenBucket(10, 10, clock)
    assert bucket.reserve(5) == pytest.approx(0.5)  # 5 tokens at 10/s, from an empty bucket


def test_changing_the_rate_applies_to_the_next_reservation():
    """A slower rate spaces the following grants further apart."""
    clock = FakeClock()
    bucket = TokenBucket(100, 1, clock)
    clock.time += 10
    assert bucket.reserve(1) == 0
    bucket.rate = 1
    first, second, third = (bucket.reserve(1) for _ in range(3))
    assert second - first == pytest.approx(1.0)
    assert third - second == pytest.approx(1.0)


def test_a_cut_rate_keeps_a_burst_of_one_second_of_the_new_rate():
    """A controller's cut from 2,000/s to 50/s slows the next grants at once: the bucket's
    burst follows the rate (one second's worth), instead of letting 2,000 targets through."""
    clock = FakeClock()
    bucket = TokenBucket.with_burst_seconds(2000, 1.0, clock)
    clock.time += 10  # idle: the bucket is as full as it gets
    bucket.rate = 50
    assert bucket.burst == 50
    waits = [bucket.reserve(10) for _ in range(20)]  # 200 targets asked at once
    granted_now = 10 * sum(1 for wait in waits if wait == 0)
    assert granted_now <= 50
    assert waits[-1] == pytest.approx((200 - 50) / 50)


def test_a_provider_bucket_keeps_its_burst_in_tokens():
    """A fixed bucket's burst does not change with its rate (a provider's published limit)."""
    bucket = TokenBucket(10, 100, FakeClock())
    bucket.rate = 1000
    assert bucket.burst == 100


def test_a_request_larger_than_the_burst_waits_instead_of_failing():
    """256 keys through a bucket of 10: it waits for the tokens rather than raising."""
    clock = FakeClock()
    bucket = TokenBucket(100, 10, clock)
    clock.time += 100
    assert bucket.reserve(256) == pytest.approx(2.46)


def test_an_infinite_rate_never_waits():
    """--rate inf leaves only the provider's limits."""
    bucket = TokenBucket(math.inf, 1, FakeClock())
    assert bucket.reserve(10**6) == 0


async def test_overload_halves_the_cap_once_per_cooldown():
    """Three 429s in one cooldown cut once; after it, the next one cuts again."""
    clock = FakeClock()
    limit = AdaptiveLimit(16, cooldown=5, clock=clock)
    for _ in range(3):
        limit.on_overload()
    assert limit.limit == 8
    clock.time += 5
    limit.on_overload()
    assert limit.limit == 4


async def test_successes_grow_the_cap_by_one_per_round_up_to_the_maximum():
    """After a cut, each full round of successes adds one, never past the maximum."""
    clock = FakeClock()
    limit = AdaptiveLimit(4, maximum=4, clock=clock)
    limit.on_overload()
    assert limit.limit == 2
    for _ in range(2):
        limit.on_success()
    assert limit.limit == 3
    for _ in range(100):
        limit.on_success()
    assert limit.limit == 4


async def test_the_cap_bounds_calls_in_flight():
    """No more than the cap's calls run at once."""
    clock = FakeClock()
    pacer = Pacer(
        clock=clock,
        targets=TokenBucket(math.inf, 1, clock),
        limit=AdaptiveLimit(3, clock=clock),
    )
    peak = 0

    async def call() -> None:
        nonlocal peak
        async with pacer.admit(1):
            peak = max(peak, pacer.limit.in_flight)
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(call)
    assert peak == 3


async def test_a_deferral_holds_every_new_call():
    """Retry-After from one call delays the next calls too."""
    clock = FakeClock()
    pacer = Pacer(
        clock=clock, targets=TokenBucket(math.inf, 1, clock), limit=AdaptiveLimit(2, clock=clock)
    )
    pacer.defer(7)
    async with pacer.admit(1):
        pass
    assert clock.sleeps == [pytest.approx(7)]


def _pacer(clock, rate: float = math.inf) -> Pacer:
    return Pacer(
        clock=clock, targets=TokenBucket(rate, 1, clock), limit=AdaptiveLimit(2, clock=clock)
    )


async def test_holds_are_named_and_each_holder_lifts_only_its_own():
    """A health pause and an operator pause: lifting one leaves the other in force."""
    pacer = _pacer(FakeClock())
    pacer.hold("health")
    pacer.hold("operator")
    admitted = []

    async def call() -> None:
        async with pacer.admit(1):
            admitted.append(True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        pacer.release("health")
        await anyio.wait_all_tasks_blocked()
        assert admitted == []
        assert pacer.holds == ("operator",)
        pacer.release("operator")
    assert admitted == [True]
    assert pacer.statistics().holds == ()


async def test_closing_drops_calls_that_wait_for_a_hold_or_their_turn():
    """A stop: calls not yet admitted (paused, or waiting for the bucket) raise at once
    instead of waiting; a call admitted before goes on."""
    pacer = _pacer(AnyioClock(), rate=0.001)  # one target every 1,000 s
    pacer.targets.reserve(1)  # the next call waits about 1,000 s for its turn
    outcomes: list[str] = []

    async def call() -> None:
        try:
            async with pacer.admit(1):
                outcomes.append("sent")
        except PacerClosedError:
            outcomes.append("dropped")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)  # waits for the bucket
            await anyio.wait_all_tasks_blocked()
            pacer.hold("operator")
            tg.start_soon(call)  # waits for the hold
            await anyio.wait_all_tasks_blocked()
            pacer.close()
    assert outcomes == ["dropped", "dropped"]


async def test_a_pause_that_comes_while_a_call_waits_for_its_turn_holds_it():
    """At a low rate a call waits long for its tokens: a pause meanwhile holds it too, and
    after the pause it waits for a turn again (a resume is no burst of held calls)."""
    clock = FakeClock()
    pacer = _pacer(clock, rate=1.0)
    pacer.targets.reserve(1)
    sent = []

    async def call() -> None:
        async with pacer.admit(1):
            sent.append(clock.now())

    sleep = clock.sleep

    async def sleep_then_pause(seconds: float) -> None:
        await sleep(seconds)
        if len(clock.sleeps) == 1:
            pacer.hold("operator")  # pressed while the call slept

    clock.sleep = sleep_then_pause  # type: ignore[method-assign]
    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        assert sent == []
        pacer.release("operator")
    assert len(sent) == 1
    assert len(clock.sleeps) == 2  # its turn again after the pause
