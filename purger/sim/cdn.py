"""A simulated Varnish CDN and its origin, as an httpx transport, for virtual-time runs.

Why: a purge is cheap, the cache refill is not. Every purged object is fetched again from
the origin when users next ask for it, so the load a purge causes arrives *later* and is
seen *later still* (the metrics pipeline). A pacing controller is tested against this model
in :mod:`purger.sim.virtual_time`, through the real Varnish adapter and the real ``/metrics``
reader, so the CDN speaks the bench VCL's wire contract and the origin serves the bench
origin's Prometheus metrics (``shared/reference/varnish-bench.md``).

The model, advanced lazily in whole steps up to the current virtual time:

- **Traffic.** A name of weight ``w`` gets ``r = request_rate * w / total_weight`` requests/s.
- **Purge.** Purging a cached name evicts it (hard) or marks it stale (soft). The next user
  request, after a delay ``d ~ Exp(r)`` drawn from a seeded RNG, refetches it *once* (request
  collapsing): a cost of 1 fetch, or ``soft_cost`` for a stale object's revalidation. The
  cost lands in the step holding ``t + d``; delays over :data:`REFETCH_HORIZON` are dropped.
  A random draw rather than the mean ``1/r``: a fixed delay would send every name of a
  uniform-traffic batch back in the same step, a comb of load spikes no origin sees.
- **Cache state.** Until its refetch, an evicted name is not in the cache: purging it again
  counts 0 and costs nothing (a retried batch does not double the refill). A stale name still
  counts 1, and a hard purge raises its pending cost to a full fetch.
- **Origin.** Per step, ``load = baseline_load + refetch cost / step`` fetches/s and
  ``u = load / capacity`` (capacity follows ``capacity_changes`` from the step's start).
  For ``u <= 1`` latency is exponential, capped at ``timeout``, with mean
  ``m = min(service_time / (1 - min(u, 0.98)), timeout)``; ``p99 = min(m * ln 100, timeout)``
  and no errors. For ``u > 1`` the excess fraction ``(u - 1) / u`` of fetches fails with
  503, and every fetch takes ``timeout``. Stateless: no backlog outlives its step.
- **Metrics.** Per step: histogram counts ``n * CDF(le)`` with ``n = load * step``,
  ``_sum = n * m * (1 - exp(-timeout / m))`` (the capped mean), in-flight by Little's law
  (``load * mean latency``). Counters are cumulative; ``/metrics`` serves the snapshot at the
  end of the last step finished by ``now - metrics_lag``, with counters floored to whole
  fetches as a real origin counts them. The origin has served ``baseline_load`` since a
  little before ``t = 0``, so a first scrape already shows rates, not a counter reset.
- **Outages.** During ``metrics_outages`` ``/metrics`` answers ``503`` at once. Not a hang:
  a custom transport gets no timeout from httpx, so a hang would block a reader forever.

Steady state, uniform traffic, hard purge at ``P`` names/s: each name is refetched exactly
once, so the refetch load is ``P`` whatever the delays, and the true p99 is
``s * ln 100 / (1 - (B + P) / C)``. Solving for ``p99 = L`` gives
:meth:`SimulatedCDN.sustainable_purge_rate`: ``P* = C * (1 - s * ln 100 / L) - B``.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import anyio
import httpx

from purger.names.nameset import NameSet

__all__ = ["BUCKETS", "REFETCH_HORIZON", "SimConfig", "SimStep", "SimulatedCDN"]

#: Upper bounds of ``origin_request_duration_seconds`` (Prometheus' defaults) before +Inf.
BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Refetches due later than this after their purge are dropped: far beyond any run, and
#: keeping them would only grow the bucket dict for the long tail of rarely read names.
REFETCH_HORIZON: Final = 6 * 3600.0
#: Utilization at which the mean-latency curve stops climbing (u = 1 would divide by 0).
_U_MAX: Final = 0.98
_LN100: Final = math.log(100.0)
_KEY_PREFIX: Final = "project/"
_URL_PATH: Final = re.compile(r"/pypi/([^/?#]+)/json")
_METRICS_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
#: Pending-refetch kinds of a name (meaningful only while its refetch is due).
_STALE: Final = 1
_EVICTED: Final = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class SimConfig:
    """The simulated world. Rates are per second, durations in (virtual) seconds."""

    seed: int = 0
    #: Client requests/s at the CDN, spread over names by traffic weight.
    request_rate: float = 5_000.0
    #: Origin fetches/s it serves before queueing (u = load / capacity).
    capacity: float = 1_000.0
    #: Origin fetches/s from ordinary misses, before any purge.
    baseline_load: float = 300.0
    #: Seconds per fetch at no load.
    service_time: float = 0.02
    #: A soft-purged object's refetch is a revalidation: this fraction of a fetch.
    soft_cost: float = 0.2
    #: Seconds the CDN's purge endpoint takes to answer.
    api_latency: float = 0.05
    #: ``/metrics`` shows the origin as it was this many seconds ago.
    metrics_lag: float = 15.0
    #: Simulation resolution.
    step: float = 1.0
    #: Origin latency saturates here.
    timeout: float = 10.0
    #: ``(time, capacity)``: from ``time`` on the origin serves ``capacity`` fetches/s.
    capacity_changes: tuple[tuple[float, float], ...] = ()
    #: ``(start, end)``: ``/metrics`` answers 503 for ``start <= now < end``.
    metrics_outages: tuple[tuple[float, float], ...] = ()
    cdn_host: str = "cdn.sim"
    origin_host: str = "origin.sim"

    def __post_init__(self) -> None:
        checks = {
            "request_rate": self.request_rate >= 0,
            "capacity": self.capacity > 0,
            "baseline_load": self.baseline_load >= 0,
            "service_time": self.service_time > 0,
            "soft_cost": 0 <= self.soft_cost <= 1,
            "api_latency": self.api_latency >= 0,
            "metrics_lag": self.metrics_lag >= 0,
            "step": self.step > 0,
            "timeout": self.timeout > self.service_time,
            "capacity_changes": all(c >= 0 for _, c in self.capacity_changes),
            "metrics_outages": all(start < end for start, end in self.metrics_outages),
        }
        for field, ok in checks.items():
            if not ok:
                raise ValueError(f"SimConfig.{field}: out of range ({getattr(self, field)!r})")


@dataclass(frozen=True, slots=True, kw_only=True)
class SimStep:
    """The true (not lagged) state of the origin during one step ``[time, time + step)``."""

    time: float
    capacity: float
    #: Offered origin fetches/s: baseline plus refetches (failed ones included).
    load: float
    utilization: float
    #: True 99th percentile of fetch latency, seconds.
    p99: float
    #: Fraction of fetches answered 503.
    error_rate: float
    #: Targets (keys or URLs, known or not) in the purge requests answered in this step.
    purged_targets: int


@dataclass(frozen=True, slots=True)
class _Profile:
    """Per-fetch latency of one utilization: what a step multiplies by its fetch count."""

    error_rate: float
    mean: float
    p99: float
    cdf: tuple[float, ...]  # P(latency <= le) for each of BUCKETS


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Cumulative counters (floats, floored on display) and gauges at the end of a step."""

    count: float = 0.0
    ok: float = 0.0
    failed: float = 0.0
    duration_sum: float = 0.0
    buckets: tuple[float, ...] = (0.0,) * len(BUCKETS)
    in_flight: float = 0.0
    p99: float = 0.0


class SimulatedCDN(httpx.AsyncBaseTransport):
    """Varnish with xkey in front of an origin, both in one transport (see the module doc).

    Use one instance per :func:`~purger.sim.virtual_time.run_in_virtual_time` run: it reads the
    clock with :func:`anyio.current_time`, which starts at 0 on each new virtual loop.
    """

    def __init__(self, names: NameSet, config: SimConfig) -> None:
        self._config = config
        self._index = dict(zip(names.names, range(len(names.names)), strict=True))
        self._weights = names.weights
        total = names.total_weight
        self._rate_per_weight = config.request_rate / total if total > 0 else 0.0
        self._rng = random.Random(config.seed)  # noqa: S311 - a reproducible model, no secret
        # Per name: when its pending refetch is due (-inf: cached) and what kind it is.
        self._due = array("d", [-math.inf]) * len(names.names)
        self._kind = bytearray(len(names.names))
        changes = sorted(config.capacity_changes)
        self._change_times = [t for t, _ in changes]
        self._change_capacities = [config.capacity, *(c for _, c in changes)]
        self._refetch: dict[int, float] = {}  # step index -> fetches due in it
        self._purged: dict[int, int] = {}  # step index -> targets purged in it
        self._rows: list[SimStep] = []
        self._last_profile: tuple[float, _Profile] | None = None
        # Warm-up steps before t = 0, so the lagged snapshot exists from the first scrape.
        self._warmup = math.ceil(config.metrics_lag / config.step) + 1
        self._snapshots: list[_Snapshot] = []
        self._next_step = -self._warmup
        self._advance_to_step(0)

    @property
    def capacity_now(self) -> float:
        """The origin's capacity at the current virtual time."""
        return self._change_capacities[
            bisect.bisect_right(self._change_times, anyio.current_time())
        ]

    # -- the HTTP surface ------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        config = self._config
        host, method = request.url.host, request.method
        if method == "PURGE" and host == config.cdn_host:
            return await self._purge(request)
        if method == "GET" and host == config.origin_host and request.url.path == "/metrics":
            return self._metrics()
        return _response(404, "Not Found", b"not found\n", "text/plain")

    async def _purge(self, request: httpx.Request) -> httpx.Response:
        """The bench VCL: xkey-purge wins over xkey-softpurge; neither means a URL purge."""
        await anyio.sleep(self._config.api_latency)
        now = anyio.current_time()
        self._advance(now)
        hard_keys = request.headers.get("xkey-purge")
        header = hard_keys if hard_keys is not None else request.headers.get("xkey-softpurge")
        # Soft only by xkey-softpurge: the counted VCL's URL purge is purge.hard().
        is_hard = hard_keys is not None or header is None
        if header is not None:
            keys = header.replace(",", " ").split()  # xkey splits on both
            names = [k[len(_KEY_PREFIX) :] for k in keys if k.startswith(_KEY_PREFIX)]
            targets = len(keys)
        else:
            match = _URL_PATH.fullmatch(request.url.raw_path.decode("ascii", "replace"))
            names = [match.group(1)] if match else []
            targets = 1
        cost = 1.0 if is_hard else self._config.soft_cost
        count = 0
        for name in names:
            index = self._index.get(name)
            if index is not None:
                count += self._purge_name(index, now, cost, is_hard=is_hard)
        step = math.floor(now / self._config.step)
        self._purged[step] = self._purged.get(step, 0) + targets
        verb = "Purged" if is_hard else "Softpurged"
        body = json.dumps({"status": "ok", "purged": count}).encode()
        headers = {"X-Purged-Count": str(count)}
        return _response(200, f"{verb} {count}", body, "application/json", headers)

    def _metrics(self) -> httpx.Response:
        now = anyio.current_time()
        if any(start <= now < end for start, end in self._config.metrics_outages):
            return _response(503, "Service Unavailable", b"metrics unavailable\n", "text/plain")
        self._advance(now)
        finished = math.floor((now - self._config.metrics_lag) / self._config.step)
        index = finished - 1 + self._warmup  # the snapshot at the end of step finished - 1
        snapshot = self._snapshots[index] if index >= 0 else _Snapshot()
        return _response(200, "OK", _exposition(snapshot).encode(), _METRICS_TYPE)

    # -- the model ---------------------------------------------------------------------------

    @property
    def history(self) -> Sequence[SimStep]:
        """One row per finished step from ``t = 0``; outside a running loop, up to the last
        request (there is no clock to advance to)."""
        try:
            now = anyio.current_time()
        except RuntimeError:  # sniffio's "no async library" is one
            pass
        else:
            self._advance(now)
        return tuple(self._rows)

    def sustainable_purge_rate(self, p99_limit: float) -> float:
        """Names/s that, hard-purged steadily with uniform traffic, hold the true p99 at
        ``p99_limit`` (at the initial capacity): ``C * (1 - s * ln 100 / L) - B``.

        Every purged name is refetched once, so in steady state the refetch load equals the
        purge rate. Clamped to ``[0, C - B]``: a limit the capped latency curve never
        reaches below capacity (``L >= min(timeout, s * ln 100 / (1 - 0.98))``) allows
        every rate short of errors. A soft purge sustains ``1 / soft_cost`` times more.
        The noise of random delays makes the mean of per-step p99s a little higher
        (the curve is convex); the nearer to saturation, the more.
        """
        if p99_limit <= 0:
            raise ValueError("p99_limit must be > 0")
        config = self._config
        headroom = config.capacity - config.baseline_load
        p99_ceiling = min(config.timeout, config.service_time * _LN100 / (1 - _U_MAX))
        if p99_limit >= p99_ceiling:
            return max(0.0, headroom)
        utilization = 1 - config.service_time * _LN100 / p99_limit
        return min(max(0.0, utilization * config.capacity - config.baseline_load), headroom)

    def _purge_name(self, index: int, now: float, cost: float, *, is_hard: bool) -> int:
        """Apply one purge to one known name; return what Varnish would count (0 or 1)."""
        due = self._due[index]
        if due > now:  # a refetch is pending
            if self._kind[index] == _EVICTED:
                return 0  # not in the cache: nothing to purge, no second refetch
            if is_hard:  # stale -> evicted: its pending revalidation becomes a full fetch
                self._kind[index] = _EVICTED
                self._add_refetch(due, 1.0 - self._config.soft_cost)
            return 1
        rate = self._rate_per_weight * self._weights[index]
        delay = self._rng.expovariate(rate) if rate > 0 else math.inf
        due = now + delay if delay <= REFETCH_HORIZON else math.inf
        self._due[index] = due
        self._kind[index] = _EVICTED if is_hard else _STALE
        self._add_refetch(due, cost)
        return 1

    def _add_refetch(self, due: float, cost: float) -> None:
        if due != math.inf:
            step = math.floor(due / self._config.step)
            self._refetch[step] = self._refetch.get(step, 0.0) + cost

    def _advance(self, now: float) -> None:
        self._advance_to_step(math.floor(now / self._config.step))

    def _advance_to_step(self, end: int) -> None:
        """Compute every step before ``end`` not yet computed."""
        config = self._config
        step_length = config.step
        previous = self._snapshots[-1] if self._snapshots else _Snapshot()
        while self._next_step < end:
            k = self._next_step
            start = k * step_length
            capacity = self._change_capacities[bisect.bisect_right(self._change_times, start)]
            load = config.baseline_load + self._refetch.pop(k, 0.0) / step_length
            utilization = load / capacity if capacity > 0 else math.inf
            profile = self._profile(utilization)
            fetches = load * step_length
            cdf = zip(previous.buckets, profile.cdf, strict=True)
            previous = _Snapshot(
                count=previous.count + fetches,
                ok=previous.ok + fetches * (1 - profile.error_rate),
                failed=previous.failed + fetches * profile.error_rate,
                duration_sum=previous.duration_sum + fetches * profile.mean,
                buckets=tuple(b + fetches * p for b, p in cdf),
                in_flight=load * profile.mean,
                p99=profile.p99,
            )
            self._snapshots.append(previous)
            if k >= 0:
                row = SimStep(
                    time=start,
                    capacity=capacity,
                    load=load,
                    utilization=utilization,
                    p99=profile.p99,
                    error_rate=profile.error_rate,
                    purged_targets=self._purged.pop(k, 0),
                )
                self._rows.append(row)
            self._next_step = k + 1

    def _profile(self, utilization: float) -> _Profile:
        """The latency model of the module doc; the last one is reused (baseline steps)."""
        if self._last_profile is not None and self._last_profile[0] == utilization:
            return self._last_profile[1]
        timeout = self._config.timeout
        if utilization > 1:
            saturated = tuple(1.0 if le >= timeout else 0.0 for le in BUCKETS)
            profile = _Profile(1 - 1 / utilization, timeout, timeout, saturated)
        else:
            mean = min(self._config.service_time / (1 - min(utilization, _U_MAX)), timeout)
            cdf = tuple(1.0 if le >= timeout else -math.expm1(-le / mean) for le in BUCKETS)
            capped_mean = -mean * math.expm1(-timeout / mean)  # E[min(X, timeout)]
            profile = _Profile(0.0, capped_mean, min(mean * _LN100, timeout), cdf)
        self._last_profile = (utilization, profile)
        return profile


def _response(
    status: int,
    reason: str,
    body: bytes,
    content_type: str,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"Content-Type": content_type, **(headers or {})},
        content=body,
        extensions={"reason_phrase": reason.encode()},
    )


def _exposition(snap: _Snapshot) -> str:
    """Prometheus text format 0.0.4, with the bench origin's metric names."""
    # Buckets whose CDF is 1 add up exactly like `count`, so +Inf and full buckets agree.
    total = math.floor(snap.count)
    lines = [
        "# HELP origin_requests_total Fetches the origin answered, by endpoint and status.",
        "# TYPE origin_requests_total counter",
        f'origin_requests_total{{endpoint="json",code="200"}} {math.floor(snap.ok)}',
        f'origin_requests_total{{endpoint="json",code="503"}} {math.floor(snap.failed)}',
        "# HELP origin_in_flight_requests Fetches being served.",
        "# TYPE origin_in_flight_requests gauge",
        f"origin_in_flight_requests {snap.in_flight!r}",
        "# HELP origin_request_duration_seconds Fetch latency.",
        "# TYPE origin_request_duration_seconds histogram",
    ]
    for le, count in zip(BUCKETS, snap.buckets, strict=True):
        lines.append(f'origin_request_duration_seconds_bucket{{le="{le!r}"}} {math.floor(count)}')
    lines += [
        f'origin_request_duration_seconds_bucket{{le="+Inf"}} {total}',
        f"origin_request_duration_seconds_sum {snap.duration_sum!r}",
        f"origin_request_duration_seconds_count {total}",
        "# HELP origin_request_latency_p99_seconds 99th percentile of recent fetch latency.",
        "# TYPE origin_request_latency_p99_seconds gauge",
        f"origin_request_latency_p99_seconds {snap.p99!r}",
    ]
    return "\n".join(lines) + "\n"
