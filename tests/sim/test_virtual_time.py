"""Virtual time: sleeps, timeouts and threads on a loop whose clock jumps."""

from __future__ import annotations

import time

import anyio

from purger.sim.virtual_time import run_in_virtual_time


def test_an_hour_of_sleeping_takes_no_real_time():
    """Three tasks sleeping up to an hour wake in order at their exact virtual instants."""

    async def main() -> list[tuple[int, float]]:
        woke: list[tuple[int, float]] = []

        async def nap(seconds: int) -> None:
            await anyio.sleep(seconds)
            woke.append((seconds, anyio.current_time()))

        async with anyio.create_task_group() as tg:
            for seconds in (3600, 10, 500):
                tg.start_soon(nap, seconds)
        return woke

    # Exact virtual instants: a real clock could never read exactly 10.0, 500.0, 3600.0.
    assert run_in_virtual_time(main) == [(10, 10.0), (500, 500.0), (3600, 3600.0)]


def test_timeouts_use_virtual_time_and_threads_still_complete():
    """move_on_after fires at its virtual deadline; a worker thread's result still arrives."""

    async def main() -> tuple[float, int]:
        with anyio.move_on_after(100):
            await anyio.sleep(1000)
        elapsed = anyio.current_time()
        value = await anyio.to_thread.run_sync(lambda: (time.sleep(0.02), 42)[1])
        return elapsed, value

    assert run_in_virtual_time(main) == (100.0, 42)
