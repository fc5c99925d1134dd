"""The provider seam: one small protocol every CDN adapter implements.

An adapter turns a :class:`~purger.model.Batch` into one API call on an injected
``httpx.AsyncClient`` (it never builds its own), and reports the outcome:

- success: a :class:`~purger.model.BatchResult`;
- 401/403: :class:`~purger.errors.AuthError`, naming where the credential came from;
- 429: :class:`~purger.errors.RateLimitedError` with the wait the provider asked for;
- 5xx, timeouts, connection errors: :class:`~purger.errors.TransientError`;
- other 4xx on the batch: :class:`~purger.errors.RejectedError`.

Adapters do not retry, sleep or pace: the run engine does, for every provider alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol

from purger.model import Batch, BatchResult, TargetKind

__all__ = ["Provider", "ProviderLimits", "RateBucket"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RateBucket:
    """A published rate limit: ``per_second`` refill, ``burst`` capacity, counted in
    API ``calls`` or in ``targets`` (keys or URLs)."""

    per_second: float
    burst: float
    unit: Literal["calls", "targets"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderLimits:
    """What one call may carry, and how fast calls may go.

    ``max_targets[kind]`` caps the targets of a batch; a kind that is missing is not
    supported. ``max_bytes`` caps the sum of :meth:`Provider.target_bytes` plus
    ``overhead_bytes`` (a request body or a header), ``None`` for no byte cap.
    ``api_latency`` is a typical call's duration in seconds, for estimates.
    """

    max_targets: Mapping[TargetKind, int]
    max_bytes: int | None = None
    overhead_bytes: int = 0
    buckets: tuple[RateBucket, ...] = ()
    api_latency: float = 0.2
    soft_purge: bool = field(default=False)  # whether this adapter purges softly as configured


class Provider(Protocol):
    """A CDN purge API. Implementations live in ``purger/providers/<name>.py``."""

    name: ClassVar[str]

    @property
    def limits(self) -> ProviderLimits: ...

    def target_bytes(self, kind: TargetKind, target: str) -> int:
        """What ``target`` adds to a batch's size against ``limits.max_bytes``."""
        ...

    async def purge(self, batch: Batch, /) -> BatchResult:
        """Send one batch; raise a :class:`~purger.errors.ProviderError` or
        :class:`~purger.errors.AuthError` when it fails."""
        ...
