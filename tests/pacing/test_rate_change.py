"""A rate change reaches the calls already waiting for their turn: after a raise they go
at the new rate (not at the slots they took at the old one), after a cut they slow down,
and a raise releases no more than the bucket's burst at once."""

from __future__ import annotations

import itertools

import anyio
import pytest

from purger.pacing.pacer import AdaptiveLimit, AnyioClock, Pacer, TokenBucket
from purger.sim.virtual_time import run_in_virtual_time

BATCH = 10


def _admissions(*, calls: int, rate: float, new_rate: float, change_at: float) -> list[float]:
    """Virtual times at which ``calls`` calls of ``BATCH`` targets, all queued at t = 0,
    are admitted when the rate moves from ``rate`` to ``new_rate`` at ``change_at``."""

    async def main() -> list[float]:
        clock = AnyioClock()
        start = clock.now()
        pacer = Pacer(
            clock=clock,
            targets=TokenBucket.with_burst_seconds(rate, 1.0, clock),
            limit=AdaptiveLimit(calls, clock=clock),
        )
        admitted: list[float] = []

        async def call() -> None:
            async with pacer.admit(BATCH):
                admitted.append(clock.now() - start)

        async def change() -> None:
            await clock.sleep(change_at)
            pacer.targets.rate = new_rate

        async with anyio.create_task_group() as tg:
            for _ in range(calls):
                tg.start_soon(call)
            tg.start_soon(change)
        return sorted(admitted)

    return run_in_virtual_time(main)


def _most_in_window(times: list[float], amount: float, window: float) -> float:
    """The most targets admitted within any ``window`` seconds."""
    return max(
        amount * sum(1 for t in times[i:] if t - start <= window + 1e-9)
        for i, start in enumerate(times)
    )


def test_a_raise_reaches_the_calls_already_waiting():
    """20 calls of 10 targets queued at 10/s (20 s of work); at 5 s the rate goes to 100/s.
    The 150 targets still in line take 1.5 s at the new rate: the last call is admitted
    within one batch's interval (0.1 s) of 6.5 s, not at 20 s."""
    times = _admissions(calls=20, rate=10, new_rate=100, change_at=5)
    assert times[:5] == pytest.approx([1, 2, 3, 4, 5])  # 10/s, from an empty bucket
    assert times[-1] <= 5 + 150 / 100 + BATCH / 100


def test_a_cut_reaches_the_calls_already_waiting():
    """20 calls queued at 100/s; at 0.55 s the rate goes to 2/s. Those still waiting go at
    2/s from then on (one batch of 10 every 5 s), not at 100/s; and the first of them waits
    for its own 5 targets still owed (2.5 s), not for the 100 targets of the last second
    repaid at 2/s (a 50 s stall)."""
    times = _admissions(calls=20, rate=100, new_rate=2, change_at=0.55)
    after = [t for t in times if t > 0.55]
    assert len(after) == 15
    gaps = [b - a for a, b in itertools.pairwise(after)]
    assert min(gaps) == pytest.approx(BATCH / 2)
    assert after[0] == pytest.approx(0.55 + 5 / 2)


def test_a_raise_releases_no_burst_to_the_calls_in_line():
    """A raise from 10/s to 100/s with 40 calls in line, the bucket's burst spent: the line
    drains at the new rate, one batch at a time (at most 10 + 100 x t targets in any t
    seconds), instead of a new burst (one second of 100/s) going at once."""
    times = _admissions(calls=40, rate=10, new_rate=100, change_at=5)
    after = [t for t in times if t > 5]
    assert len(after) == 35
    for window in (0.0, 0.05, 0.5, 1.0, 2.0):
        assert _most_in_window(after, BATCH, window) <= BATCH + 100 * window + 1e-6
