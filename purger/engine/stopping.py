"""How a run's stop is bounded: a stop request or the time limit becomes a stop, then the
batches in flight get the drain timeout (or less, when hurried) before they are cancelled.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio
from anyio import CancelScope

from purger.engine.outcome import RunSettings

__all__ = ["watch_stop"]


async def watch_stop(
    stop: anyio.Event | None,
    stopped: anyio.Event,
    hurry: anyio.Event,
    workers: CancelScope,
    settings: RunSettings,
    on_stop: Callable[[str], None],
) -> None:
    """Turn a stop request or the time limit into a stop, then bound the drain."""
    limit = settings.max_duration
    async with anyio.create_task_group() as relay:
        if stop is not None:
            relay.start_soon(_relay, stop, on_stop)
        # The time limit and the drain are wall time, whatever clock paces the run.
        with anyio.move_on_after(math.inf if limit is None else limit):
            await stopped.wait()
        if limit is not None:
            on_stop(f"time limit of {limit:g} s reached")  # a no-op if stopped before
        with anyio.move_on_after(settings.drain_timeout):
            await hurry.wait()
        workers.cancel()
        relay.cancel_scope.cancel()


async def _relay(stop: anyio.Event, on_stop: Callable[[str], None]) -> None:
    await stop.wait()
    on_stop("stop requested")
