"""The null provider: records what it would send and sends nothing (``--dry-run``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import httpx

from purger.model import Batch, BatchResult, TargetKind
from purger.providers import ProviderOptions
from purger.providers.base import ProviderLimits

__all__ = ["NullProvider", "from_options"]


class NullProvider:
    """Accepts every batch at once and keeps it in ``sent``, in order."""

    name: ClassVar[str] = "null"

    def __init__(self, *, max_targets: int = 256, soft: bool = False) -> None:
        self._limits = ProviderLimits(
            max_targets={TargetKind.KEY: max_targets, TargetKind.URL: max_targets},
            api_latency=0.0,
            soft_purge=soft,  # as asked (--hard or not): what an estimate charges the origin
        )
        self.sent: list[Batch] = []

    @property
    def limits(self) -> ProviderLimits:
        return self._limits

    def target_bytes(self, kind: TargetKind, target: str) -> int:
        return len(target.encode())

    async def purge(self, batch: Batch, /) -> BatchResult:
        self.sent.append(batch)
        return BatchResult(purged=len(batch))


def from_options(
    options: ProviderOptions, client: httpx.AsyncClient, env: Mapping[str, str]
) -> NullProvider:
    """The null provider needs no credentials and never touches ``client``."""
    del client, env
    return NullProvider(soft=not options.hard)
