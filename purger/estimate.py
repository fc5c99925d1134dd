"""How long a purge will take, and what bounds it: a closed form, no network.

Pure: the inputs are counts and limits; ``purger run --dry-run`` and ``purger estimate``
print the result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from purger.model import TargetKind

if TYPE_CHECKING:  # only for annotations: the pure core imports no I/O package
    from purger.providers.base import RateBucket

__all__ = ["Estimate", "Workload", "estimate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """What a run must send: targets and API calls, by kind."""

    targets: Mapping[TargetKind, int]
    calls: Mapping[TargetKind, int]

    @property
    def total_targets(self) -> int:
        return sum(self.targets.values())

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimate:
    duration_s: float
    bottleneck: str
    #: Every bound considered, in seconds, so an operator sees how close the others are.
    bounds: Mapping[str, float]


def estimate(
    workload: Workload,
    *,
    rate: float,
    concurrency: int,
    api_latency: float,
    buckets: Sequence[RateBucket] = (),
) -> Estimate:
    """The longest of: the configured pace, calls in flight x latency, each provider bucket
    (after its burst). A run cannot beat any of them, so the largest is the bottleneck."""
    bounds: dict[str, float] = {}
    if not math.isinf(rate):
        bounds[f"configured pace ({rate:g} targets/s)"] = workload.total_targets / rate
    bounds[f"concurrency x latency ({concurrency} x {api_latency:g} s)"] = (
        workload.total_calls * api_latency / concurrency
    )
    for bucket in buckets:
        amount = workload.total_calls if bucket.unit == "calls" else workload.total_targets
        name = f"provider limit ({bucket.per_second:g} {bucket.unit}/s, burst {bucket.burst:g})"
        bounds[name] = max(0.0, amount - bucket.burst) / bucket.per_second
    bottleneck = max(bounds, key=bounds.__getitem__)
    return Estimate(duration_s=bounds[bottleneck], bottleneck=bottleneck, bounds=bounds)
