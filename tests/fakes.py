"""Test doubles shared by the engine's tests: a virtual clock and a scripted provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import anyio

from purger.model import Batch, BatchResult, TargetKind
from purger.providers.base import ProviderLimits


class FakeClock:
    """Virtual time: ``sleep`` moves the clock forward at once and records the wait."""

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()


class ScriptedProvider:
    """Accepts batches and records them; ``script`` may raise for a given call instead."""

    name: ClassVar[str] = "scripted"

    def __init__(
        self,
        *,
        max_targets: int = 4,
        script: Callable[[int, Batch], None] | None = None,
    ) -> None:
        self._limits = ProviderLimits(
            max_targets={TargetKind.KEY: max_targets, TargetKind.URL: 1}, api_latency=0.01
        )
        self.script = script
        self.calls: list[Batch] = []  # every call, failed or not
        self.purged: list[Batch] = []  # the calls that succeeded

    @property
    def limits(self) -> ProviderLimits:
        return self._limits

    def target_bytes(self, kind: TargetKind, target: str) -> int:
        return len(target)

    async def purge(self, batch: Batch, /) -> BatchResult:
        self.calls.append(batch)
        call = len(self.calls)  # before yielding: other calls may start meanwhile
        await anyio.lowlevel.checkpoint()
        if self.script is not None:
            self.script(call, batch)
        self.purged.append(batch)
        return BatchResult(purged=len(batch))
