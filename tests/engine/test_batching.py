"""Batches: every target in exactly one batch, caps kept, and resumable cursors."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from purger.engine.batching import (
    BatchCaps,
    Position,
    ShardCursor,
    cut_targets,
    names_in,
    shard_batches,
    target_counts,
)
from purger.model import TargetKind
from purger.planning.plan import Shard
from purger.planning.targets import parse_templates, targets_of

NAME = st.text(alphabet="-0123456789abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=5)
KEY, URL = TargetKind.KEY, TargetKind.URL
WHOLE = Shard(id=0, start="", limit=None, count=0, weight=0.0)


@st.composite
def workloads(draw):
    names = sorted(draw(st.sets(NAME, min_size=1, max_size=60)))
    keys = draw(
        st.lists(st.sampled_from(["k/{name}", "{raw}", "x-{name}-y"]), max_size=3, unique=True)
    )
    urls = draw(
        st.lists(
            st.sampled_from(["https://h.example/{name}", "http://h.example/p/{raw}/json"]),
            max_size=2,
            unique=True,
        )
    )
    if not keys and not urls:
        keys = ["k/{name}"]
    templates = parse_templates(keys, urls)
    spelled = draw(st.lists(st.sampled_from(names), max_size=5, unique=True))
    aliases = {n: (n.upper() + "_",) for n in spelled}
    caps = {
        kind: BatchCaps(
            max_targets=draw(st.integers(1, 12)),
            max_bytes=draw(st.one_of(st.none(), st.integers(10, 80))),
            overhead_bytes=draw(st.integers(0, 5)),
            target_bytes=lambda t: len(t) + 1,
        )
        for kind in (KEY, URL)
    }
    kinds = sorted({t.kind for t in templates})
    return names, templates, aliases, caps, kinds


@settings(max_examples=200, deadline=None)
@given(workloads())
def test_every_target_is_in_exactly_one_batch_in_order(workload):
    """Per kind, the batches concatenate to every target once, in name and template order."""
    names, templates, aliases, caps, kinds = workload
    batches = list(shard_batches(WHOLE, names, templates, aliases, caps, dict.fromkeys(kinds)))
    for kind in kinds:
        sent = [t for b in batches if b.kind is kind for t in b.targets]
        expected = [t for n in names for t in targets_of(n, templates, kind, aliases)]
        assert sent == expected


@settings(max_examples=200, deadline=None)
@given(workloads())
def test_no_batch_exceeds_the_caps(workload):
    """No batch holds more targets than allowed, nor more bytes unless one target alone does."""
    names, templates, aliases, caps, kinds = workload
    for batch in shard_batches(WHOLE, names, templates, aliases, caps, dict.fromkeys(kinds)):
        cap = caps[batch.kind]
        assert 1 <= len(batch.targets) <= cap.max_targets
        size = cap.overhead_bytes + sum(cap.target_bytes(t) for t in batch.targets)
        if cap.max_bytes is not None and len(batch.targets) > 1:
            assert size <= cap.max_bytes


@settings(max_examples=200, deadline=None)
@given(workloads(), st.data())
def test_cutting_from_any_batch_start_gives_the_same_batches(workload, data):
    """A stream resumed at a batch boundary yields exactly the batches from there on."""
    names, templates, aliases, caps, kinds = workload
    kind = data.draw(st.sampled_from(kinds))
    full = list(shard_batches(WHOLE, names, templates, aliases, caps, {kind: None}))
    i = data.draw(st.integers(0, len(full) - 1))
    resumed = list(shard_batches(WHOLE, names, templates, aliases, caps, {kind: full[i].start}))
    assert resumed == full[i:]


@settings(max_examples=200, deadline=None)
@given(workloads(), st.randoms(use_true_random=False), st.data())
def test_a_cursor_saved_mid_run_resends_exactly_the_unconfirmed_batches(workload, rnd, data):
    """Confirm a random subset in random order, save, restore: only the rest is sent again."""
    names, templates, aliases, caps, kinds = workload
    cursor = ShardCursor.restore(kinds, None, frozenset())
    batches = list(shard_batches(WHOLE, names, templates, aliases, caps, cursor.starts()))
    issued = batches[: data.draw(st.integers(0, len(batches)))]
    for batch in issued:
        cursor.trackers[batch.kind].issue(batch)
    confirmed = [b for b in issued if rnd.random() < 0.6]
    rnd.shuffle(confirmed)
    for batch in confirmed:
        cursor.trackers[batch.kind].confirm(batch)

    encoded, ahead = cursor.encode()
    restored = ShardCursor.restore(kinds, encoded, ahead)
    resent = []
    for batch in shard_batches(WHOLE, names, templates, aliases, caps, restored.starts()):
        tracker = restored.trackers[batch.kind]
        tracker.issue(batch)
        if tracker.is_done_ahead(batch):
            tracker.confirm(batch)
        else:
            resent.append(batch)
    confirmed_tokens = {b.token for b in confirmed}
    assert [b.token for b in resent] == [
        b.token for b in batches if b.token not in confirmed_tokens
    ]


def test_cursor_advances_only_over_a_contiguous_confirmed_prefix():
    """A batch confirmed ahead of an unconfirmed one does not move the cursor past it."""
    caps = {KEY: BatchCaps(max_targets=1)}
    templates = parse_templates(["{name}"], [])
    cursor = ShardCursor.restore([KEY], None, frozenset())
    a, b, c = shard_batches(WHOLE, ["a", "b", "c"], templates, {}, caps, cursor.starts())
    tracker = cursor.trackers[KEY]
    for batch in (a, b, c):
        tracker.issue(batch)
    tracker.confirm(b)
    assert tracker.cursor is None
    assert not tracker.finished
    tracker.confirm(a)
    assert tracker.cursor == Position("c", 0)
    tracker.confirm(c)
    assert tracker.finished
    assert cursor.finished
    assert cursor.encode() == ('{"key": null}', frozenset())


def test_a_name_with_more_targets_than_a_batch_spans_batches():
    """URL purges of one at a time: a name with two URL templates gives two batches."""
    templates = parse_templates([], ["https://h.example/{name}", "https://h.example/{name}/json"])
    caps = {URL: BatchCaps(max_targets=1)}
    batches = list(shard_batches(WHOLE, ["a", "b"], templates, {}, caps, {URL: None}))
    assert [b.start for b in batches] == [
        Position("a", 0),
        Position("a", 1),
        Position("b", 0),
        Position("b", 1),
    ]
    assert [b.after for b in batches] == [
        Position("a", 1),
        Position("b", 0),
        Position("b", 1),
        None,
    ]


def test_kinds_are_interleaved_in_name_order():
    """Keys and URLs of the same names go out close together, not one kind after the other."""
    templates = parse_templates(["k/{name}"], ["https://h.example/{name}"])
    caps = {KEY: BatchCaps(max_targets=2), URL: BatchCaps(max_targets=2)}
    names = [f"n{i}" for i in range(6)]
    batches = list(shard_batches(WHOLE, names, templates, {}, caps, {KEY: None, URL: None}))
    assert [(b.kind, b.start.name) for b in batches] == [
        (KEY, "n0"),
        (URL, "n0"),
        (KEY, "n2"),
        (URL, "n2"),
        (KEY, "n4"),
        (URL, "n4"),
    ]


def test_names_in_takes_the_shard_range():
    """A shard's names are those in [start, limit)."""
    names = ["a", "b", "ba", "c", "d"]
    assert list(names_in(Shard(id=1, start="b", limit="c", count=2, weight=2), names)) == [
        "b",
        "ba",
    ]
    assert list(names_in(Shard(id=2, start="c", limit=None, count=2, weight=2), names)) == [
        "c",
        "d",
    ]


def test_batches_of_a_large_stream_are_full():
    """Greedy cutting: every batch but the last is full."""
    templates = parse_templates(["project/{name}"], [])
    names = sorted(f"name{random.Random(1).random()}{i}" for i in range(1000))
    caps = {KEY: BatchCaps(max_targets=256)}
    sizes = [len(b.targets) for b in shard_batches(WHOLE, names, templates, {}, caps, {KEY: None})]
    assert sizes == [256, 256, 256, 232]


@settings(max_examples=200, deadline=None)
@given(workloads(), st.integers(1, 4))
def test_target_counts_match_the_targets_made(workload, pieces):
    """Each shard's count is what its names make, other spellings included."""
    names, templates, aliases, _, kinds = workload
    cuts = sorted(set(names[:: max(1, len(names) // pieces)][1:]))
    bounds = ["", *cuts]
    shards = [
        Shard(
            id=i,
            start=start,
            limit=bounds[i + 1] if i + 1 < len(bounds) else None,
            count=0,
            weight=0.0,
        )
        for i, start in enumerate(bounds)
    ]
    shards = [
        Shard(id=s.id, start=s.start, limit=s.limit, count=len(names_in(s, names)), weight=0.0)
        for s in shards
    ]
    counts = target_counts(shards, templates, aliases)
    for shard in shards:
        made = [
            t
            for n in names_in(shard, names)
            for k in kinds
            for t in targets_of(n, templates, k, aliases)
        ]
        assert counts[shard.id] == len(made)


@settings(max_examples=200, deadline=None)
@given(workloads())
def test_cut_targets_keeps_order_and_caps(workload):
    """Failed targets cut for a retry: every one once, in order, within the caps."""
    names, _, _, caps, _ = workload
    cap = caps[KEY]
    batches = list(cut_targets(names, cap))
    assert [t for b in batches for t in b] == names
    for batch in batches:
        assert 1 <= len(batch) <= cap.max_targets
        size = cap.overhead_bytes + sum(cap.target_bytes(t) for t in batch)
        if cap.max_bytes is not None and len(batch) > 1:
            assert size <= cap.max_bytes
