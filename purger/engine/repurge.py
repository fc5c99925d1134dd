"""A delayed second purge of every batch (``--repurge-after SECONDS``), for providers whose
tiers are internal (Fastly shielding): an edge purged before its shield can refetch the
stale object from the shield, and a second purge a little later evicts that copy. This is
what warehouse does by hand (pypi/warehouse#12214: everything twice, 2 s apart).

Kept apart from the run loop: :class:`RepurgeLater` wraps the providers, so the engine
purges as always; each accepted batch is purged again ``delay`` seconds later, through the
same pacer (the second purge costs the API and the origin like the first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import ClassVar

import anyio
from anyio.abc import TaskGroup

from purger.errors import PurgerError, UsageError
from purger.model import Batch, BatchResult, TargetKind
from purger.pacing.pacer import Pacer, PacerClosedError
from purger.providers.base import Provider, ProviderLimits

__all__ = ["RepurgeLater", "RepurgeStats"]


@dataclass
class RepurgeStats:
    """Second purges sent, refused by the provider, and left when the run was stopped."""

    sent: int = 0
    refused: list[str] = field(default_factory=list)
    skipped: int = 0


class RepurgeLater:
    """While entered, the providers from :meth:`wrap` purge each batch a second time,
    ``delay`` seconds after the first was accepted; leaving waits for those still due."""

    def __init__(self, delay: float, pacer: Pacer) -> None:
        if not 0 < delay < float("inf"):
            raise UsageError(f"--repurge-after must be > 0 seconds, not {delay}")
        self.delay = delay
        self.stats = RepurgeStats()
        self._pacer = pacer
        self._group: TaskGroup | None = None

    def wrap(self, provider: Provider) -> Provider:
        # Named as the provider it wraps: messages about it name the CDN.
        named: type[_Twice] = type("_Twice", (_Twice,), {"name": provider.name})
        return named(provider, self)

    async def __aenter__(self) -> RepurgeLater:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> bool | None:
        group, self._group = self._group, None
        if group is None:
            raise RuntimeError("RepurgeLater left without being entered")
        return await group.__aexit__(kind, error, trace)

    def schedule(self, provider: Provider, batch: Batch) -> None:
        if self._group is None:
            raise RuntimeError("RepurgeLater must be entered before purging")
        self._group.start_soon(self._again, provider, batch)

    async def _again(self, provider: Provider, batch: Batch) -> None:
        await self._pacer.clock.sleep(self.delay)
        try:
            async with self._pacer.admit(len(batch)):
                await provider.purge(batch)
        except PacerClosedError:  # the run is stopping: what is left stays undone
            self.stats.skipped += 1
            return
        except PurgerError as error:
            self.stats.refused.append(f"{batch.targets[0]}: {error}")
            return
        self.stats.sent += 1


class _Twice:
    """A provider whose every accepted batch is purged again later."""

    name: ClassVar[str] = "repurge-later"

    def __init__(self, inner: Provider, later: RepurgeLater) -> None:
        self._inner = inner
        self._later = later

    @property
    def limits(self) -> ProviderLimits:
        return self._inner.limits

    def target_bytes(self, kind: TargetKind, target: str) -> int:
        return self._inner.target_bytes(kind, target)

    async def purge(self, batch: Batch, /) -> BatchResult:
        result = await self._inner.purge(batch)
        self._later.schedule(self._inner, batch)
        return result
