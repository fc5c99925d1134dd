"""Batches: a shard's targets cut into API calls, and the bookkeeping of which are done.

Pure: no I/O. For each shard and target kind the targets form a *stream*, in name order
(then template order, then spelling). A stream is cut greedily into batches that fit the
provider's caps (targets and bytes). A :class:`Position` ``(name, offset)`` marks a place
in a stream: ``offset`` counts that name's targets of the kind before it. Cutting from a
batch boundary always gives the same batches, so a run resumed at a cursor sends exactly
the batches it had not confirmed.
"""

from __future__ import annotations

import bisect
import heapq
import json
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from purger.errors import UsageError
from purger.model import Batch, TargetKind
from purger.planning.plan import Shard
from purger.planning.targets import Template, targets_of

if TYPE_CHECKING:  # only for annotations: the pure core imports no I/O package
    from purger.providers.base import Provider

__all__ = [
    "BatchCaps",
    "PlannedBatch",
    "Position",
    "ShardCursor",
    "StreamTracker",
    "caps_for",
    "cut_targets",
    "names_in",
    "shard_batches",
    "target_counts",
]


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in one stream: the ``offset``-th target of ``name``."""

    name: str
    offset: int = 0

    @property
    def token(self) -> str:
        # Names hold no tab: PEP 503 names cannot, opaque keys may not contain white space.
        return f"{self.name}\t{self.offset}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchCaps:
    """What one call of the provider may carry, for one kind of target."""

    max_targets: int
    max_bytes: int | None = None
    overhead_bytes: int = 0
    target_bytes: Callable[[str], int] = len


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedBatch:
    """A batch with its place: where it starts and where the next batch starts."""

    shard_id: int
    kind: TargetKind
    start: Position
    after: Position | None  # None: the batch ends its stream
    targets: tuple[str, ...]

    @property
    def batch(self) -> Batch:
        return Batch(self.kind, self.targets)

    @property
    def token(self) -> str:
        return f"{self.kind}\t{self.start.token}"


def target_counts(
    shards: Sequence[Shard],
    templates: Sequence[Template],
    aliases: Mapping[str, tuple[str, ...]],
) -> dict[int, int]:
    """How many targets each shard's names make, by shard id, without making them: a name
    given only in its normalized form makes one target per distinct template (``{raw}`` is
    the name itself), and the few names with other spellings are counted one by one."""
    kinds = {t.kind for t in templates}
    per_name = sum(
        len({t.text.replace("{raw}", "{name}") for t in templates if t.kind is kind})
        for kind in kinds
    )
    counts = {shard.id: shard.count * per_name for shard in shards}
    ordered = sorted(shards, key=lambda s: s.start)
    starts = [shard.start for shard in ordered]
    for name in aliases:
        at = bisect.bisect_right(starts, name) - 1
        limit = ordered[at].limit if at >= 0 else None
        if at < 0 or (limit is not None and name >= limit):
            continue  # not in this plan's ranges
        made = sum(len(list(targets_of(name, templates, kind, aliases))) for kind in kinds)
        counts[ordered[at].id] += made - per_name
    return counts


def cut_targets(targets: Sequence[str], caps: BatchCaps) -> Iterator[tuple[str, ...]]:
    """``targets`` cut greedily into calls that fit ``caps`` (a retry of failed targets,
    which have no stream position to resume from)."""
    batch: list[str] = []
    size = caps.overhead_bytes
    for target in targets:
        cost = caps.target_bytes(target)
        full = len(batch) >= caps.max_targets or (
            caps.max_bytes is not None and batch and size + cost > caps.max_bytes
        )
        if full:
            yield tuple(batch)
            batch, size = [], caps.overhead_bytes
        batch.append(target)
        size += cost
    if batch:
        yield tuple(batch)


def names_in(shard: Shard, names: Sequence[str]) -> Sequence[str]:
    """The slice of sorted ``names`` that falls in ``shard``'s range."""
    lo = bisect.bisect_left(names, shard.start)
    hi = len(names) if shard.limit is None else bisect.bisect_left(names, shard.limit)
    return names[lo:hi]


def _stream(
    shard_id: int,
    names: Sequence[str],
    kind: TargetKind,
    templates: Sequence[Template],
    aliases: Mapping[str, tuple[str, ...]],
    caps: BatchCaps,
    start: Position | None,
) -> Iterator[PlannedBatch]:
    """Cut one stream greedily, beginning at ``start`` (``None``: the shard's first name)."""
    first = 0 if start is None else bisect.bisect_left(names, start.name)
    skip = 0 if start is None else start.offset
    batch: list[str] = []
    batch_start: Position | None = None
    size = caps.overhead_bytes
    for name in names[first:]:
        for offset, target in enumerate(targets_of(name, templates, kind, aliases)):
            if skip:
                skip -= 1
                continue
            cost = caps.target_bytes(target)
            full = len(batch) >= caps.max_targets or (
                caps.max_bytes is not None and batch and size + cost > caps.max_bytes
            )
            if full and batch_start is not None:
                here = Position(name, offset)
                yield PlannedBatch(
                    shard_id=shard_id,
                    kind=kind,
                    start=batch_start,
                    after=here,
                    targets=tuple(batch),
                )
                batch, size = [], caps.overhead_bytes
            if not batch:
                batch_start = Position(name, offset)
            batch.append(target)
            size += cost
    if batch and batch_start is not None:
        yield PlannedBatch(
            shard_id=shard_id, kind=kind, start=batch_start, after=None, targets=tuple(batch)
        )


def shard_batches(
    shard: Shard,
    names: Sequence[str],
    templates: Sequence[Template],
    aliases: Mapping[str, tuple[str, ...]],
    caps: Mapping[TargetKind, BatchCaps],
    starts: Mapping[TargetKind, Position | None],
) -> Iterator[PlannedBatch]:
    """Every kind's batches of one shard, interleaved in name order.

    ``names`` are the shard's own names; ``starts`` gives each kind's resume position
    (``None``: from the beginning); a kind missing from ``starts`` is finished already.
    """
    streams = [
        _stream(shard.id, names, kind, templates, aliases, caps[kind], starts[kind])
        for kind in sorted(starts)
    ]
    return heapq.merge(*streams, key=lambda b: (b.start, b.kind))


@dataclass(slots=True)
class StreamTracker:
    """Which batches of one stream are confirmed; the cursor is the first place not yet.

    Batches are issued in stream order and may be confirmed in any order. Everything before
    :attr:`cursor` is purged; ``finished`` once the last batch of the stream is confirmed.
    """

    cursor: Position | None = None
    finished: bool = False
    done_ahead: set[str] = field(default_factory=set)
    _issued: deque[PlannedBatch] = field(default_factory=deque)
    _confirmed: set[str] = field(default_factory=set)

    def is_done_ahead(self, batch: PlannedBatch) -> bool:
        """True if a previous run already confirmed this batch beyond its cursor."""
        return batch.token in self.done_ahead

    def issue(self, batch: PlannedBatch) -> None:
        self._issued.append(batch)

    def confirm(self, batch: PlannedBatch) -> None:
        self._confirmed.add(batch.token)
        while self._issued and self._issued[0].token in self._confirmed:
            done = self._issued.popleft()
            self._confirmed.discard(done.token)
            self.done_ahead.discard(done.token)
            if done.after is None:
                self.finished = True
                self.cursor = None
            else:
                self.cursor = done.after

    def ahead(self) -> set[str]:
        """Tokens of batches confirmed beyond the cursor: this run's and a previous run's."""
        return self._confirmed | self.done_ahead


@dataclass(slots=True)
class ShardCursor:
    """A shard's progress in all its streams, and its encoding in the state store.

    The store keeps one opaque cursor string per shard; it is this JSON object, kind ->
    ``[name, offset]``, or ``null`` once the kind is finished. A kind not present has not
    started. ``done_ahead`` tokens are ``kind<TAB>name<TAB>offset``.
    """

    kinds: tuple[TargetKind, ...]
    trackers: dict[TargetKind, StreamTracker] = field(default_factory=dict)

    @classmethod
    def restore(
        cls, kinds: Sequence[TargetKind], cursor: str | None, done_ahead: frozenset[str]
    ) -> ShardCursor:
        state = json.loads(cursor) if cursor else {}
        trackers: dict[TargetKind, StreamTracker] = {}
        for kind in kinds:
            tracker = StreamTracker(done_ahead={t for t in done_ahead if t.startswith(f"{kind}\t")})
            if str(kind) in state:
                saved = state[str(kind)]
                if saved is None:
                    tracker.finished = True
                else:
                    tracker.cursor = Position(str(saved[0]), int(saved[1]))
            trackers[kind] = tracker
        return cls(kinds=tuple(kinds), trackers=trackers)

    @property
    def finished(self) -> bool:
        return all(t.finished for t in self.trackers.values())

    def starts(self) -> dict[TargetKind, Position | None]:
        """Where each unfinished stream resumes (``None``: at the beginning)."""
        return {kind: t.cursor for kind, t in self.trackers.items() if not t.finished}

    def encode(self) -> tuple[str, frozenset[str]]:
        state: dict[str, list[str | int] | None] = {}
        for kind, tracker in self.trackers.items():
            if tracker.finished:
                state[str(kind)] = None
            elif tracker.cursor is not None:
                state[str(kind)] = [tracker.cursor.name, tracker.cursor.offset]
        ahead = frozenset(t for tracker in self.trackers.values() for t in tracker.ahead())
        return json.dumps(state, sort_keys=True), ahead


def caps_for(provider: Provider, kinds: Sequence[TargetKind]) -> dict[TargetKind, BatchCaps]:
    """The provider's per-call limits for each kind the templates need."""
    limits = provider.limits
    caps: dict[TargetKind, BatchCaps] = {}
    for kind in kinds:
        if kind not in limits.max_targets:
            raise UsageError(f"provider {provider.name} cannot purge by {kind}")

        def cost(target: str, kind: TargetKind = kind) -> int:
            return provider.target_bytes(kind, target)

        caps[kind] = BatchCaps(
            max_targets=limits.max_targets[kind],
            max_bytes=limits.max_bytes,
            overhead_bytes=limits.overhead_bytes,
            target_bytes=cost,
        )
    return caps
