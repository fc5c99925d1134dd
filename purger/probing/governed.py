"""Probes governed like purges: a miss through the cache costs the origin a fetch, so the
health signals (``--signal``/``--signals``) drive the probe pacer through the same
controller and governor as a run's: the rate comes down, or the probes pause, when the
origin says so; ``--rate`` stays the ceiling."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import anyio
import httpx

from purger import __version__
from purger.health.control import ControlSettings
from purger.health.governor import Governor
from purger.health.reader import HealthReader
from purger.health.signals import SignalSpec
from purger.pacing.pacer import Pacer

__all__ = ["governed"]


@asynccontextmanager
async def governed(
    pacer: Pacer,
    signals: Sequence[SignalSpec],
    control: ControlSettings | None,
    probes_done: Callable[[], int],
) -> AsyncIterator[Governor | None]:
    """While inside, a governor ticks on ``pacer`` (none without signals); ``probes_done``
    is the achieved count the controller compares its rate with."""
    if not signals or control is None:
        yield None
        return
    headers = {"User-Agent": f"purger/{__version__}"}
    async with httpx.AsyncClient(headers=headers) as client, anyio.create_task_group() as group:
        governor = Governor(
            health=HealthReader(signals, client),
            pacer=pacer,
            settings=control,
            clock=pacer.clock,
            wall_clock=time.time,
            targets_sent=probes_done,
        )
        group.start_soon(governor.run)
        try:
            yield governor
        finally:
            group.cancel_scope.cancel()
