"""The planner: cut a sorted, weighted name space into contiguous shards by prefix.

Pure: no httpx, no anyio, no clock. Given the same names, weights and settings it returns
the same plan, byte for byte.

How a plan is made (``../shared/reference/algorithms.md``, part B):

1. Names are unique and sorted in code-point order (``-`` < digits < letters).
2. A name heavier than one shard's share gets a shard of its own.
3. The other names are cut at weighted quantiles (prefix sums and bisection). Each cut may
   move within ``window`` of a shard's weight to the boundary with the shortest separator,
   so ranges read ``[pe, pyb)`` rather than ``[pemxq-tools, pyba)``.
4. A shard is the half-open range ``[start, limit)``: the first starts at ``""``, the last
   has no limit, and each boundary is the shortest string ``s`` with ``last < s <= first``
   for the names on either side, so a range holds exactly the names it was given.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import json
import math
import sys
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import accumulate, pairwise
from typing import Final

from purger.errors import InputError, UsageError
from purger.names.nameset import NameSet

__all__ = [
    "DEFAULT_SHARDS_PER_WORKER",
    "DEFAULT_WINDOW",
    "DEFAULT_WORKERS",
    "PLAN_VERSION",
    "Comparison",
    "Plan",
    "PlanSettings",
    "Shard",
    "compare_first_letter",
    "fingerprint",
    "lpt_makespan",
    "make_plan",
    "shortest_separator",
]

PLAN_VERSION: Final = 1
DEFAULT_WORKERS: Final = 16
#: Several shards a worker lets heaviest-first scheduling even out the load (LPT with k
#: shards per worker is within about 1 + 1/k of optimal).
DEFAULT_SHARDS_PER_WORKER: Final = 8
#: How far (as a fraction of a shard's weight) a cut may move to find a shorter boundary.
DEFAULT_WINDOW: Final = 0.04
#: With the default shard count, up to one shard per worker is added until equal shards,
#: taken heaviest first, pack within this factor of the lower bound.
_PACKING_TOLERANCE: Final = 1.01
#: Prefix depth reported in the per-prefix summary (``p``, ``py``, ``pyt``).
_SUMMARY_DEPTH: Final = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanSettings:
    """How to cut: into about ``shards`` shards, or into shards of at most ``max_weight``."""

    workers: int = DEFAULT_WORKERS
    shards: int | None = None
    max_weight: float | None = None
    window: float = DEFAULT_WINDOW

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UsageError(f"--workers must be >= 1, not {self.workers}")
        if self.shards is not None and self.max_weight is not None:
            raise UsageError("give --shards or --max-weight, not both")
        if self.shards is not None and self.shards < 1:
            raise UsageError(f"--shards must be >= 1, not {self.shards}")
        if self.max_weight is not None and not (
            math.isfinite(self.max_weight) and self.max_weight > 0
        ):
            raise UsageError(f"--max-weight must be a number > 0, not {self.max_weight}")
        if not 0 <= self.window < 0.5:
            raise UsageError(f"window must be in [0, 0.5), not {self.window}")

    @property
    def wanted_shards(self) -> int:
        """The shard count asked for (with ``max_weight`` the count follows from the weights)."""
        return self.shards if self.shards is not None else DEFAULT_SHARDS_PER_WORKER * self.workers


@dataclass(frozen=True, slots=True)
class Shard:
    """The names in ``[start, limit)``; ``limit`` ``None`` means no upper bound."""

    id: int
    start: str
    limit: str | None
    count: int
    weight: float

    def __contains__(self, name: object) -> bool:
        return (
            isinstance(name, str)
            and self.start <= name
            and (self.limit is None or name < self.limit)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Ordered shards, the fingerprint of what made them, and the settings used."""

    fingerprint: str
    normalization: str
    weight: str
    settings: PlanSettings
    total_count: int
    total_weight: float
    max_name_weight: float
    shards: tuple[Shard, ...]
    #: Names heavier than a shard, each alone in its own shard.
    heavy_names: tuple[str, ...] = ()
    #: ``(prefix, shard count)`` for every prefix cut into more than one shard.
    prefix_shards: tuple[tuple[str, int], ...] = ()
    #: Where the names came from (a path or a URL without credentials), for the operator.
    source: str | None = None

    def shard_of(self, name: str) -> Shard:
        """The one shard whose range holds ``name``."""
        starts = [shard.start for shard in self.shards]
        return self.shards[bisect.bisect_right(starts, name) - 1]

    @property
    def makespan(self) -> float:
        """The busiest worker's weight when ``settings.workers`` take shards heaviest first."""
        return lpt_makespan([shard.weight for shard in self.shards], self.settings.workers)

    @property
    def lower_bound(self) -> float:
        """No schedule beats this: an even split, or the heaviest single name."""
        return max(self.total_weight / self.settings.workers, self.max_name_weight)

    @property
    def makespan_ratio(self) -> float:
        return self.makespan / self.lower_bound if self.lower_bound > 0 else 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """This plan against PyPI's 2022 method, one shard per first character."""

    workers: int
    ideal: float
    plan_makespan: float
    first_letter_makespan: float
    first_letter_shards: int
    heaviest_prefix: str
    heaviest_weight: float

    @property
    def plan_ratio(self) -> float:
        return self.plan_makespan / self.ideal

    @property
    def first_letter_ratio(self) -> float:
        return self.first_letter_makespan / self.ideal


def make_plan(name_set: NameSet, settings: PlanSettings, *, source: str | None = None) -> Plan:
    """Cut ``name_set`` into shards as ``settings`` ask."""
    names, weights = name_set.names, name_set.weights
    prefix = list(accumulate(weights, initial=0.0))
    total = math.fsum(weights)
    if total <= 0:
        raise InputError("every weight is 0: nothing to balance (drop --weight-column?)")
    if settings.max_weight is not None:
        cuts, heavy = _greedy_cuts(names, weights, prefix, settings.max_weight, settings.window)
    else:
        wanted = settings.wanted_shards
        if settings.shards is None:  # an explicit count is kept as asked
            wanted = _count_for_workers(weights, wanted, settings.workers)
        cuts, heavy = _quantile_cuts(names, weights, prefix, wanted, settings.window)
    bounds = [0, *cuts, len(names)]
    shards = tuple(
        Shard(
            id=i,
            start=shortest_separator(names[lo - 1], names[lo]) if lo else "",
            limit=shortest_separator(names[hi - 1], names[hi]) if hi < len(names) else None,
            count=hi - lo,
            weight=prefix[hi] - prefix[lo],
        )
        for i, (lo, hi) in enumerate(pairwise(bounds))
    )
    return Plan(
        fingerprint=fingerprint(name_set, settings),
        normalization=str(name_set.normalization),
        weight=name_set.weight.label,
        settings=settings,
        total_count=len(names),
        total_weight=total,
        max_name_weight=max(weights),
        shards=shards,
        heavy_names=tuple(names[i] for i in heavy),
        prefix_shards=tuple(_prefix_shards(names, bounds[:-1])),
        source=source,
    )


def shortest_separator(before: str, after: str) -> str:
    """The shortest prefix ``s`` of ``after`` with ``before < s``; needs ``before < after``.

    Every string ``<= before`` sorts below ``s`` and every string ``>= after`` sorts at or
    above it, so ``s`` is an exact boundary between the two.
    """
    common = 0
    for a, b in zip(before, after, strict=False):
        if a != b:
            break
        common += 1
    return after[: common + 1]


def _separator_length(names: Sequence[str], cut: int) -> int:
    return len(shortest_separator(names[cut - 1], names[cut]))


def _quantile_cuts(
    names: Sequence[str],
    weights: Sequence[float],
    prefix: Sequence[float],
    wanted: int,
    window: float,
) -> tuple[list[int], list[int]]:
    """Cut positions (index of each shard's first name) for about ``wanted`` shards."""
    n = len(names)
    wanted = min(wanted, n)
    share = prefix[-1] / wanted
    heavy = [i for i, w in enumerate(weights) if w > share]
    forced = sorted({c for i in heavy for c in (i, i + 1) if 0 < c < n})

    # Quantiles of the light names only: heavy names weigh nothing here.
    light: Sequence[float] = prefix
    if heavy:
        light_weights = list(weights)
        for i in heavy:
            light_weights[i] = 0.0
        light = list(accumulate(light_weights, initial=0.0))
    light_shards = wanted - len(heavy)
    if light_shards < 1 or light[-1] <= 0:
        return forced, heavy
    light_share = light[-1] / light_shards
    slack = window * light_share
    cuts = set(forced)
    forced_at = [light[c] for c in forced]
    previous = 0.0
    for i in range(1, light_shards):
        goal = i * light_share
        near = bisect.bisect_left(forced_at, goal - slack)
        if near < len(forced_at) and forced_at[near] <= goal + slack:
            previous = forced_at[near]
            continue  # a heavy name's own boundary already sits here
        # Snapping may not make a shard heavier than (1 + window) shares; the plain
        # quantile cut stays allowed, so errors never add up from cut to cut.
        high = max(
            bisect.bisect_right(light, previous + light_share + slack) - 1,
            bisect.bisect_left(light, goal),
        )
        cut = _best_cut(names, light, goal, slack, low=1, high=min(n - 1, high))
        if cut is not None:
            cuts.add(cut)
            previous = light[cut]
    return sorted(cuts), heavy


def _count_for_workers(weights: Sequence[float], wanted: int, workers: int) -> int:
    """The first shard count from ``wanted`` to ``wanted + workers`` whose equal shards pack
    within 1 % of the lower bound when taken heaviest first, else the one that packs best.

    Equal shards pack badly when a worker's share is not a whole number of them, as when a
    heavy name weighs 1.9 shares; a few more, smaller shards let the schedule even out.
    """
    n = len(weights)
    total = math.fsum(weights)
    counts = range(min(wanted, n), min(wanted + workers, n) + 1)
    # Names that could be heavy at the largest count, heaviest first: one pass over weights.
    candidates = sorted((w for w in weights if w > total / counts[-1]), reverse=True)
    good_enough = _PACKING_TOLERANCE * max(total / workers, max(weights))
    best_count, best_makespan = wanted, math.inf
    for count in counts:
        share = total / count
        heavy = candidates[: bisect.bisect_left([-w for w in candidates], -share)]
        light_count = count - len(heavy)
        if light_count < 1:
            continue
        light_share = (total - math.fsum(heavy)) / light_count
        makespan = lpt_makespan([*heavy, *([light_share] * light_count)], workers)
        if makespan <= good_enough:
            return count
        if makespan < best_makespan:
            best_count, best_makespan = count, makespan
    return best_count


def _best_cut(
    names: Sequence[str], prefix: Sequence[float], goal: float, slack: float, *, low: int, high: int
) -> int | None:
    """The cut in ``[low, high]`` nearest ``goal`` by weight with the shortest separator,
    looking at every cut within ``slack`` of ``goal`` and at the plain quantile cut."""
    if low > high:
        return None
    first = max(low, bisect.bisect_left(prefix, goal - slack))
    last = min(high, bisect.bisect_right(prefix, goal + slack) - 1)
    quantile = min(max(low, bisect.bisect_left(prefix, goal)), high)
    candidates = [quantile, *range(first, last + 1)]
    best: int = min(
        candidates, key=lambda c: (_separator_length(names, c), abs(prefix[c] - goal), c)
    )
    return best


def _greedy_cuts(
    names: Sequence[str],
    weights: Sequence[float],
    prefix: Sequence[float],
    max_weight: float,
    window: float,
) -> tuple[list[int], list[int]]:
    """Fill shards up to ``max_weight`` from the left, ending each at a short boundary."""
    n = len(names)
    cuts: list[int] = []
    heavy: list[int] = []
    start = 0
    while start < n:
        if weights[start] > max_weight:
            heavy.append(start)
            end = start + 1
        else:
            # max(): float rounding must not leave a light name unable to fit on its own.
            fits = max(start + 1, bisect.bisect_right(prefix, prefix[start] + max_weight) - 1)
            if fits >= n:
                break
            low = max(
                start + 1, bisect.bisect_left(prefix, prefix[start] + (1 - window) * max_weight)
            )
            end = min(
                range(min(low, fits), fits + 1),
                key=lambda c: (_separator_length(names, c), -c),
            )
        if end >= n:
            break
        cuts.append(end)
        start = end
    return cuts, heavy


def _prefix_shards(names: Sequence[str], starts: Sequence[int]) -> Iterator[tuple[str, int]]:
    """``(prefix, shards)`` for each prefix, up to three characters, spread over several shards."""

    def shards_touching(lo: int, hi: int) -> int:
        return bisect.bisect_right(starts, hi - 1) - bisect.bisect_right(starts, lo) + 1

    def walk(lo: int, hi: int, depth: int) -> Iterator[tuple[str, int]]:
        i = lo
        while i < hi:
            name = names[i]
            if len(name) < depth:  # the name equal to the parent prefix itself
                i += 1
                continue
            key = name[:depth]
            end = bisect.bisect_left(names, _successor(key), i, hi)
            touched = shards_touching(i, end)
            if touched > 1:
                yield key, touched
                if depth < _SUMMARY_DEPTH:
                    yield from walk(i, end, depth + 1)
            i = end

    return walk(0, len(names), 1)


def _successor(prefix: str) -> str:
    """The smallest string above every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def lpt_makespan(weights: Sequence[float], workers: int) -> float:
    """The busiest worker's load when ``workers`` take jobs heaviest first (LPT)."""
    # Workers beyond the jobs would stay idle: any count, even 10**20, costs no memory.
    loads = [0.0] * max(1, min(workers, len(weights)))
    for weight in sorted(weights, reverse=True):
        heapq.heapreplace(loads, loads[0] + weight)
    return max(loads)


def compare_first_letter(name_set: NameSet, plan: Plan) -> Comparison:
    """Makespan of one shard per first character (PyPI 2022) against ``plan``'s."""
    names, weights = name_set.names, name_set.weights
    letters: dict[str, float] = {}
    for name, weight in zip(names, weights, strict=True):
        letters[name[0]] = letters.get(name[0], 0.0) + weight
    workers = plan.settings.workers
    heaviest = max(letters, key=letters.__getitem__)
    return Comparison(
        workers=workers,
        ideal=plan.total_weight / workers,
        plan_makespan=plan.makespan,
        first_letter_makespan=lpt_makespan(list(letters.values()), workers),
        first_letter_shards=len(letters),
        heaviest_prefix=heaviest,
        heaviest_weight=letters[heaviest],
    )


def fingerprint(name_set: NameSet, settings: PlanSettings) -> str:
    """SHA-256 over the names, their weights and spellings, and every planning setting."""
    header = {
        "version": PLAN_VERSION,
        "normalize": str(name_set.normalization),
        "weight": name_set.weight.label,
        "settings": asdict(settings),
    }
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    digest.update(b"\0names\0")
    digest.update("\n".join(name_set.names).encode())
    weights = array("d", name_set.weights)
    if sys.byteorder == "big":
        weights.byteswap()  # little-endian everywhere, so a fingerprint travels
    digest.update(b"\0weights\0")
    digest.update(weights.tobytes())
    digest.update(b"\0aliases\0")
    for name in sorted(name_set.aliases):
        digest.update("\t".join((name, *name_set.aliases[name])).encode() + b"\n")
    return digest.hexdigest()
