"""What a run is given and what it gives back: its settings, the store it checkpoints to,
its status, statistics and outcome, and a shard as a live view shows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from purger.pacing.retrying import RetryPolicy
from purger.state.protocol import ProgressStore

__all__ = [
    "ProgressStore",
    "RunOutcome",
    "RunSettings",
    "RunStatistics",
    "RunStatus",
    "ShardState",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings:
    workers: int = 16
    #: Wall seconds a stop waits for batches in flight before cancelling them (they are
    #: redone on resume).
    drain_timeout: float = 30.0
    #: Stop cleanly (resumable) after this many seconds; ``None``: run to the end.
    max_duration: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Commit on the event loop, not in a thread: for a store in memory (the simulator),
    #: so that virtual time never jumps ahead while a call waits for its commit.
    commit_on_loop: bool = False


class RunStatus(StrEnum):
    DONE = "done"
    FAILED_TARGETS = "failed-targets"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStatistics:
    batches: int
    targets: int
    failures: int
    shards_done: int
    shards: int
    elapsed: float
    #: Calls accepted that purged no object by the provider's own count (Varnish says).
    empty_batches: int = 0
    #: Targets per second over the last minute or so; 0 before the first estimate.
    rate: float = 0.0
    #: Seconds left at that rate, the biggest remaining shard considered; ``None``: unknown.
    eta_s: float | None = None
    #: Targets per second over the last few seconds (what "now" means in a live view).
    rate_now: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardState:
    """One shard as a live view shows it: its range, and its targets done of those its
    names make (this run's and earlier runs' of the same state)."""

    id: int
    start: str
    limit: str | None
    weight: float
    targets_done: int
    targets_total: int
    done: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutcome:
    status: RunStatus
    statistics: RunStatistics
    #: Why the run stopped early, for the operator; ``None`` when it ran to the end.
    reason: str | None = None
