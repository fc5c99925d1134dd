"""What a run's workers take, and what they have done: the shards a run (or a resume) has
left, heaviest first, with their cursors; the failed targets a retry purges again, in
batches; and every shard's state as an operator sees it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from purger.engine.batching import BatchCaps, ShardCursor, cut_targets
from purger.engine.outcome import ShardState
from purger.model import Batch, TargetKind
from purger.planning.plan import Shard
from purger.state.sqlite import Failure, ShardProgress

__all__ = ["ResumeQueue", "RetryItem", "by_weight", "resume_queue", "retry_queue", "shard_states"]

#: One batch of failed targets to purge again: its shard, the batch, the failures it settles.
RetryItem = tuple[int, Batch, list[Failure]]


@dataclass(frozen=True, slots=True)
class ResumeQueue:
    """The shards left (``pop()`` takes the heaviest), their cursors and targets done so
    far, and the shards an earlier run finished."""

    queue: list[Shard]
    cursors: dict[int, ShardCursor]
    targets_done: dict[int, int]
    done: set[int]


def by_weight(shards: Iterable[Shard]) -> list[Shard]:
    """Heaviest first (the order workers take them)."""
    return sorted(shards, key=lambda s: (-s.weight, s.id))


def resume_queue(
    shards: Iterable[Shard],
    saved: Mapping[int, ShardProgress],
    kinds: Sequence[TargetKind],
) -> ResumeQueue:
    """Every shard not done, from where the saved progress left it."""
    cursors: dict[int, ShardCursor] = {}
    targets_done: dict[int, int] = {}
    done: set[int] = set()
    queue: list[Shard] = []
    for shard in by_weight(shards):
        progress = saved.get(shard.id)
        if progress is not None and progress.done:
            done.add(shard.id)
            continue
        cursors[shard.id] = ShardCursor.restore(
            kinds,
            progress.cursor if progress else None,
            progress.done_ahead if progress else frozenset(),
        )
        targets_done[shard.id] = progress.targets_done if progress else 0
        queue.append(shard)
    queue.reverse()  # pop() from the end takes the heaviest first
    return ResumeQueue(queue=queue, cursors=cursors, targets_done=targets_done, done=done)


def retry_queue(
    failures: Sequence[Failure], caps: Mapping[TargetKind, BatchCaps]
) -> tuple[int, list[RetryItem]]:
    """How many distinct targets failed, and their batches per shard and kind (``pop()``
    takes the first)."""
    unique = list({(f.kind, f.target): f for f in failures}.values())
    groups: dict[tuple[int, TargetKind], list[Failure]] = {}
    for failure in unique:
        groups.setdefault((failure.shard_id, failure.kind), []).append(failure)
    queue: list[RetryItem] = []
    for (shard_id, kind), group in sorted(groups.items()):
        by_target = {f.target: f for f in group}
        queue.extend(
            (shard_id, Batch(kind, targets), [by_target[t] for t in targets])
            for targets in cut_targets([f.target for f in group], caps[kind])
        )
    queue.reverse()
    return len(unique), queue


def shard_states(
    shards: Iterable[Shard],
    saved: Mapping[int, ShardProgress],
    targets_done: Mapping[int, int],
    expected: Mapping[int, int],
    done: set[int],
) -> tuple[ShardState, ...]:
    """Every shard, heaviest first, with the targets done of those a worker took, else
    of the saved progress."""
    states = []
    for shard in by_weight(shards):
        progress = saved.get(shard.id)
        count = targets_done.get(shard.id, progress.targets_done if progress else 0)
        states.append(
            ShardState(
                id=shard.id,
                start=shard.start,
                limit=shard.limit,
                weight=shard.weight,
                targets_done=count,
                targets_total=expected.get(shard.id, 0),
                done=shard.id in done,
            )
        )
    return tuple(states)
