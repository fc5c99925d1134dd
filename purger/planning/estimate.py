"""How long a purge will take, what will bound it, and how much it adds to the origin:
a closed form, no network.

Pure: the inputs are per-shard counts, the pace and the provider's limits. The model:

- the whole run moves at most at the *global* rate, the smallest of: ``--rate``; each of
  the provider's buckets (after its burst); calls in flight / API latency x targets per
  call; and, with an origin model, the origin's spare capacity / fetches per target;
- a worker keeps ``window`` calls in flight within its shard, so it alone moves at most at
  window x targets per call / latency;
- workers take shards heaviest first; while n workers are busy each gets the global rate / n
  (or its own cap, if lower). The schedule is followed event by event, so the tail, where a
  few big shards are left and most workers are idle, is in the figure: it is what made
  PyPI's 2022 estimate of 1-2 hours take 4.5.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from purger.health.control import ControlSettings, Observation, Reading, decide, initial_state
from purger.model import TargetKind

if TYPE_CHECKING:  # only for annotations: the pure core imports no I/O package
    from purger.providers.base import RateBucket

__all__ = [
    "Estimate",
    "OriginModel",
    "Pace",
    "ShardSpan",
    "ShardWork",
    "Workload",
    "estimate",
    "governed_seconds",
    "refill_seconds",
    "window_per_worker",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardWork:
    """What one shard asks of a run."""

    id: int
    weight: float
    targets: int
    calls: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """What a run must send, by kind, and by shard."""

    targets: Mapping[TargetKind, int]
    calls: Mapping[TargetKind, int]
    shards: tuple[ShardWork, ...] = ()

    @property
    def total_targets(self) -> int:
        return sum(self.targets.values())

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class Pace:
    rate: float
    concurrency: int
    workers: int
    api_latency: float
    buckets: Sequence[RateBucket] = ()
    #: Calls a worker keeps in flight in its shard; ``None``: as the engine does.
    window: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginModel:
    """Each purged target costs the origin ``fetches_per_target`` fetches when users ask for
    it again (1 for a hard purge; a revalidation, a fraction, for a soft one), and the origin
    has ``capacity`` fetches/s to spare for that.

    Without ``request_rates`` every purged target is assumed fetched again at once: an
    upper bound. With them (client requests per second of each name, from the traffic
    weights) a purged name is fetched again at its next request, so the refill trails the
    purge, and names asked for less often than once a run cost nothing during it
    (:func:`refill_seconds`).

    With ``control`` the run is paced by the origin's health (``purger run`` with
    signals): the controller starts slow and finds the origin's pace itself, which takes
    longer than the best pace (:func:`governed_seconds`)."""

    capacity: float | None = None
    fetches_per_target: float = 1.0
    request_rates: tuple[float, ...] = ()
    control: ControlSettings | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardSpan:
    id: int
    worker: int
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimate:
    duration_s: float
    bottleneck: str
    #: Every global bound considered, as the duration it alone would impose, in seconds.
    bounds: Mapping[str, float]
    #: The global rate, targets per second.
    rate: float
    workers: int
    api_calls: int
    spans: tuple[ShardSpan, ...] = ()
    #: (time, extra origin fetches/s) at each change of the schedule.
    origin_load: tuple[tuple[float, float], ...] = field(default_factory=tuple)

    @property
    def origin_peak_extra_rps(self) -> float:
        return max((load for _, load in self.origin_load), default=0.0)


def window_per_worker(concurrency: int, workers: int) -> int:
    """Calls a worker keeps in flight in its shard (``run.Run`` uses the same rule)."""
    return max(2, math.ceil(2 * concurrency / workers))


def estimate(workload: Workload, pace: Pace, origin: OriginModel | None = None) -> Estimate:
    """Follow the heaviest-first schedule of ``workload.shards`` at the rates ``pace`` and
    the provider allow; the bottleneck is the global bound that sets the rate, or the tail
    (``schedule``) when the last shards keep the run going after the others are done."""
    targets, calls = workload.total_targets, workload.total_calls
    per_call = targets / calls if calls else 1.0
    bounds = _global_bounds(targets, calls, pace, origin)
    # The global rate: the slowest bound, as targets per second (bursts aside).
    limits = {name: targets / seconds for name, seconds in bounds.items() if seconds > 0}
    rate = min(limits.values(), default=math.inf)
    window = (
        pace.window
        if pace.window is not None
        else window_per_worker(pace.concurrency, pace.workers)
    )
    per_worker = window * per_call / pace.api_latency if pace.api_latency > 0 else math.inf
    fetches = origin.fetches_per_target if origin is not None else 1.0
    spans, load, duration = _schedule(workload.shards, pace.workers, rate, per_worker, fetches)
    if not workload.shards:
        duration = max(bounds.values(), default=0.0)
    bottleneck = max(bounds, key=bounds.__getitem__) if bounds else "nothing to send"
    if bounds and duration > 1.05 * bounds[bottleneck]:
        bottleneck = (
            f"the schedule: {pace.workers} workers at {per_worker:,.0f} targets/s each at most, "
            "and the last shards outlast the others"
        )
    return Estimate(
        duration_s=duration,
        bottleneck=bottleneck,
        bounds=bounds,
        rate=rate,
        workers=pace.workers,
        api_calls=calls,
        spans=spans,
        origin_load=load,
    )


def _global_bounds(
    targets: int, calls: int, pace: Pace, origin: OriginModel | None
) -> dict[str, float]:
    """The duration each global limit alone imposes."""
    bounds: dict[str, float] = {}
    if not math.isinf(pace.rate):
        bounds[f"configured pace ({pace.rate:g} targets/s)"] = targets / pace.rate
    if pace.api_latency > 0:
        name = f"concurrency x latency ({pace.concurrency} calls x {pace.api_latency:g} s)"
        bounds[name] = calls * pace.api_latency / pace.concurrency
    for bucket in pace.buckets:
        amount = calls if bucket.unit == "calls" else targets
        name = f"provider limit ({bucket.per_second:g} {bucket.unit}/s, burst {bucket.burst:g})"
        bounds[name] = max(0.0, amount - bucket.burst) / bucket.per_second
    if origin is not None and origin.capacity is not None and origin.fetches_per_target > 0:
        bounds.update(_origin_bounds(targets, origin, origin.capacity, bounds))
    return bounds


def _origin_bounds(
    targets: int, origin: OriginModel, capacity: float, others: Mapping[str, float]
) -> dict[str, float]:
    """The best pace that keeps the refill within ``capacity``; and with ``origin.control``,
    the pace the controller reaches on its own, from its slow start."""
    rate_cap = min((targets / s for s in others.values() if s > 0), default=math.inf)
    fetches = origin.fetches_per_target
    rates = origin.request_rates
    if rates:
        traffic = math.fsum(rates)
        what = f"{fetches:g} per target at its next request, clients {traffic:,.0f} requests/s"
        best = refill_seconds(
            targets, rates, capacity=capacity, fetches_per_name=fetches, rate_cap=rate_cap
        )
    else:
        what = f"{fetches:g} per target"
        best = targets * fetches / capacity
    bounds = {f"origin capacity ({capacity:g} spare fetches/s, {what})": best}
    control = origin.control
    if control is not None:
        name = (
            f"backpressure (the controller from {control.initial_rate:g} targets/s, "
            f"feedback delay {control.feedback_delay:g} s, finds the origin's pace)"
        )
        bounds[name] = governed_seconds(
            targets,
            rates,
            capacity=capacity,
            control=control,
            fetches_per_name=fetches,
            rate_cap=rate_cap,
        )
    return bounds


#: Request rates are grouped into this many bins per factor of 10 for :class:`_Refill`.
_BINS_PER_DECADE = 16
#: Time steps of :func:`refill_seconds` over the slowest it could take.
_REFILL_STEPS = 800
#: Steps of :func:`governed_seconds` per controller tick.
_STEPS_PER_TICK = 10


class _Refill:
    """The origin fetches that purged names cost as clients ask for them again, advanced in
    steps of ``step`` seconds. Names are grouped by request rate (``_BINS_PER_DECADE``
    bins per decade); a name purged at s is fetched again at s + Exp(its rate), so the
    names purged and not fetched yet of each group decay exponentially. Without request
    rates every purged name is fetched again at once. Counts are in names (fractional)."""

    def __init__(self, request_rates: Sequence[float], *, step: float, fetches_per_name: float):
        if request_rates:
            names = len(request_rates)
            bins: dict[int, list[float]] = {}
            for rate in request_rates:
                if rate > 0:  # a name nobody asks for is never fetched again
                    key = math.floor(math.log10(rate) * _BINS_PER_DECADE)
                    entry = bins.setdefault(key, [0.0, 0.0])
                    entry[0] += rate
                    entry[1] += 1
            groups = [(total / count, count / names) for total, count in bins.values()]
        else:
            groups = [(math.inf, 1.0)]
        self.fetches_per_name = fetches_per_name
        #: Any fetches at all: False when nobody asks for any name, or nothing is fetched.
        self.fetches = fetches_per_name > 0 and bool(groups)
        # Per group: the share of a step's purges (made mid-step) fetched within that step,
        # and the decay of the names purged and not fetched yet over a whole step.
        own = [share * -math.expm1(-rate * step / 2) for rate, share in groups]
        self._left_after_own = [share * math.exp(-rate * step / 2) for rate, share in groups]
        self._kept = [math.exp(-rate * step) for rate, _ in groups]
        self._waiting = [0.0] * len(groups)
        #: Fetches within a step per name purged in it.
        self.own_fetches = fetches_per_name * math.fsum(own)

    def past_fetches(self) -> float:
        """Fetches in the next step for names purged in earlier steps."""
        pairs = zip(self._waiting, self._kept, strict=True)
        return self.fetches_per_name * math.fsum(w * (1 - k) for w, k in pairs)

    def advance(self, purged: float) -> None:
        """Purge ``purged`` names in the next step (which costs :meth:`past_fetches` +
        ``purged`` x :attr:`own_fetches`)."""
        self._waiting = [
            w * k + purged * left
            for w, k, left in zip(self._waiting, self._kept, self._left_after_own, strict=True)
        ]


def refill_seconds(
    targets: int,
    request_rates: Sequence[float],
    *,
    capacity: float,
    fetches_per_name: float = 1.0,
    rate_cap: float = math.inf,
) -> float:
    """How long purging ``targets`` (spread evenly over names whose clients ask for them
    ``request_rates`` times a second) takes at best when the origin may spend ``capacity``
    fetches/s on the refill, and nothing else allows more than ``rate_cap`` targets/s.

    A name purged at time s is fetched again at its next request, at s + Exp(rate): the
    refill trails the purge, and a name asked for less than once a run costs nothing
    during it. Purges at time s load the origin at t with a kernel that only decreases in
    t - s (a mixture of exponentials), so purging, at each step, as much as brings the load
    up to the capacity never overloads it later: that greedy pace is the fastest that keeps
    the origin within its capacity. The order of names is taken to be unrelated to their
    popularity (true of names in code-point order; a plan weighted by traffic spreads the
    popular ones over its shards).
    """
    names = len(request_rates)
    if targets <= 0 or names == 0:
        return 0.0
    name_cap = rate_cap / (targets / names)
    # Every purge fetched again at once is the slowest it can be.
    slowest = max(names * fetches_per_name / capacity, names / name_cap)
    step = slowest / _REFILL_STEPS
    refill = _Refill(request_rates, step=step, fetches_per_name=fetches_per_name)
    if not refill.fetches:
        return names / name_cap if name_cap < math.inf else 0.0
    own = refill.own_fetches
    done = 0.0
    steps = 0
    while True:
        past = refill.past_fetches()
        room = max(0.0, capacity * step - past)
        now = min(name_cap * step, room / own if own > 0 else math.inf)
        if done + now >= names:
            return (steps + (names - done) / now) * step
        if now <= 0 and past <= 0:
            return math.inf
        refill.advance(now)
        done += now
        steps += 1


def governed_seconds(
    targets: int,
    request_rates: Sequence[float],
    *,
    capacity: float,
    control: ControlSettings,
    fetches_per_name: float = 1.0,
    rate_cap: float = math.inf,
) -> float:
    """How long purging ``targets`` takes when the run is paced by the origin's health, as
    ``purger run`` with signals is: the real controller (:func:`purger.health.control.decide`)
    stepped tick by tick, reading the refill (:class:`_Refill`, fetches per second over
    the last tick) against ``capacity`` as its one signal. It starts at
    ``control.initial_rate``, doubles at most once per feedback delay while the origin has
    room, and cuts when the refill reaches the capacity: slower than
    :func:`refill_seconds`' best pace, which would purge fastest at the start, when the
    refill has not caught up yet. The reading is taken to be fresh (no metrics lag)."""
    names = len(request_rates) or targets
    if targets <= 0:
        return 0.0
    per_name = targets / names
    step = control.tick / _STEPS_PER_TICK
    refill = _Refill(request_rates, step=step, fetches_per_name=fetches_per_name)
    state = initial_state(control)
    done, steps, fetches = 0.0, 0, 0.0
    while True:
        # Never paused: the one reading is always fresh and has no critical limit.
        rate = min(state.rate, rate_cap)
        now = min(rate * step / per_name, names - done)
        fetches += refill.past_fetches() + now * refill.own_fetches
        refill.advance(now)
        done += now
        steps += 1
        if done >= names * (1 - 1e-12):
            return steps * step
        if steps % _STEPS_PER_TICK == 0:
            pressure = fetches / control.tick / capacity
            reading = Reading(name="origin fetches", pressure=pressure, age=0.0)
            observation = Observation(now=steps * step, readings=(reading,), achieved_rate=rate)
            state = decide(state, observation, control).state
            fetches = 0.0


def _schedule(
    shards: Sequence[ShardWork], workers: int, rate: float, per_worker: float, fetches: float
) -> tuple[tuple[ShardSpan, ...], tuple[tuple[float, float], ...], float]:
    """Heaviest first onto free workers; rates shared while several work at once."""
    queue = sorted(shards, key=lambda s: (-s.weight, s.id))
    queue.reverse()  # pop() takes the heaviest
    free = list(range(workers))
    heapq.heapify(free)
    busy: dict[int, tuple[ShardWork, float, float]] = {}  # worker -> (shard, left, start)
    spans: list[ShardSpan] = []
    load: list[tuple[float, float]] = []
    now = 0.0
    while queue or busy:
        while queue and free:
            shard = queue.pop()
            busy[heapq.heappop(free)] = (shard, float(shard.targets), now)
        each = min(per_worker, rate / len(busy))
        load.append((now, each * len(busy) * fetches))
        step = 0.0 if math.isinf(each) else min(left for _, left, _ in busy.values()) / each
        now += step
        for worker, (shard, left, start) in list(busy.items()):
            left -= step * each if not math.isinf(each) else left
            if left <= 1e-9 * max(1, shard.targets):
                spans.append(ShardSpan(id=shard.id, worker=worker, start_s=start, end_s=now))
                del busy[worker]
                heapq.heappush(free, worker)
            else:
                busy[worker] = (shard, left, start)
    load.append((now, 0.0))
    spans.sort(key=lambda span: (span.start_s, span.worker))
    return tuple(spans), tuple(load), now
