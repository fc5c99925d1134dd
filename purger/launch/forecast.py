"""A purge forecast before anything is sent: what ``purger estimate``, ``purger run
--dry-run`` and the summary before a run's ``Proceed?`` show, made one way for all three
(:func:`forecast_run`), so the same plan and options always give the same figures.

The provider is built on a client that never sends: its limits set the bounds, and whether
it purges softly as configured sets what a purged object costs the origin.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import httpx

from purger.engine.batching import caps_for, names_in, shard_batches
from purger.health.control import ControlSettings
from purger.launch.build import PaceOptions
from purger.names.nameset import NameSet
from purger.planning.estimate import Estimate, OriginModel, Pace, ShardWork, Workload, estimate
from purger.planning.plan import Plan
from purger.planning.targets import Template
from purger.providers import ProviderOptions, create_provider
from purger.providers.base import Provider
from purger.sim.cdn import SimConfig
from purger.sim.purge import SimulationResult
from purger.state.sqlite import Failure

__all__ = [
    "DryRunEnv",
    "Forecast",
    "OriginOptions",
    "dry_run_options",
    "forecast",
    "forecast_run",
    "forecast_to_json",
    "origin_model",
    "retry_forecast",
    "simulation_to_json",
    "workload_of",
]


class DryRunEnv(Mapping[str, str]):
    """The environment, with a stand-in for every missing variable: a dry run checks the
    options but needs no credentials, since it sends nothing."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def __getitem__(self, key: str) -> str:
        return self._env.get(key, "dry-run")

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginOptions:
    """What purging costs the origin: ``capacity`` spare fetches/s for the refill (``None``:
    not bounded by it); a soft-purged object's refetch is a revalidation, ``soft_cost`` of a
    fetch (a hard purge costs a whole one; the provider as configured says which);
    ``traffic`` client requests/s shared by the names' weights (``None``: every purged
    object fetched again at once, the upper bound); ``control``: the run's controller."""

    capacity: float | None = None
    soft_cost: float = 0.2
    traffic: float | None = None
    control: ControlSettings | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Forecast:
    """What ``purger estimate``, ``purger run --dry-run`` and a run's summary show."""

    workload: Workload
    estimate: Estimate
    #: The same names as PyPI purged them in 2022: one shard per first character, one
    #: target per call, each worker one call at a time.
    first_letter: Estimate
    #: That method's ideal (every worker equally busy), to show what its skew costs.
    first_letter_ideal_s: float
    #: The provider purges softly as configured (the origin pays ``soft_cost`` per object).
    soft: bool = False


def workload_of(
    plan: Plan, name_set: NameSet, templates: Sequence[Template], provider: Provider
) -> Workload:
    """Count what a run would send, shard by shard and batch by batch."""
    kinds = sorted({t.kind for t in templates})
    caps = caps_for(provider, kinds)
    targets = dict.fromkeys(kinds, 0)
    calls = dict.fromkeys(kinds, 0)
    shards = []
    for shard in plan.shards:
        names = names_in(shard, name_set.names)
        starts = dict.fromkeys(kinds, None)
        shard_targets = shard_calls = 0
        for batch in shard_batches(shard, names, templates, name_set.aliases, caps, starts):
            targets[batch.kind] += len(batch.targets)
            calls[batch.kind] += 1
            shard_targets += len(batch.targets)
            shard_calls += 1
        shards.append(
            ShardWork(id=shard.id, weight=shard.weight, targets=shard_targets, calls=shard_calls)
        )
    return Workload(targets=targets, calls=calls, shards=tuple(shards))


def origin_model(origin: OriginOptions, name_set: NameSet, *, soft: bool) -> OriginModel:
    """The estimate's origin model: the refetch cost follows the purge actually sent."""
    traffic = origin.traffic
    rates: tuple[float, ...] = ()
    if traffic is not None:
        total = name_set.total_weight
        rates = tuple(traffic * weight / total for weight in name_set.weights)
    return OriginModel(
        capacity=origin.capacity,
        fetches_per_target=origin.soft_cost if soft else 1.0,
        request_rates=rates,
        control=origin.control,
    )


def forecast(
    plan: Plan,
    name_set: NameSet,
    templates: Sequence[Template],
    provider: Provider,
    pace: PaceOptions,
    *,
    workers: int,
    api_latency: float | None = None,
    origin: OriginOptions | None = None,
) -> Forecast:
    """How long the run would take, and how long PyPI's 2022 method would have."""
    workload = workload_of(plan, name_set, templates, provider)
    limits = provider.limits
    model = origin_model(origin or OriginOptions(), name_set, soft=limits.soft_purge)
    latency = api_latency if api_latency is not None else limits.api_latency
    base = Pace(
        rate=pace.rate,
        concurrency=pace.concurrency,
        workers=workers,
        api_latency=latency,
        buckets=limits.buckets,
    )
    per_name = workload.total_targets / max(1, plan.total_count)
    letters: dict[str, int] = {}
    for name in name_set.names:
        letters[name[0]] = letters.get(name[0], 0) + 1
    first = Workload(
        targets=workload.targets,
        calls={kind: workload.targets[kind] for kind in workload.targets},
        shards=tuple(
            ShardWork(
                id=i, weight=count, targets=round(count * per_name), calls=round(count * per_name)
            )
            for i, (_, count) in enumerate(sorted(letters.items()))
        ),
    )
    one_at_a_time = replace(base, concurrency=workers, window=1)
    first_estimate = estimate(first, one_at_a_time, model)
    # That method's ideal: its global bounds alone, as if no letter were bigger than another.
    ideal = max(first_estimate.bounds.values(), default=0.0)
    return Forecast(
        workload=workload,
        estimate=estimate(workload, base, model),
        first_letter=first_estimate,
        first_letter_ideal_s=ideal,
        soft=limits.soft_purge,
    )


def retry_forecast(
    failures: Sequence[Failure],
    provider: Provider,
    pace: PaceOptions,
    *,
    workers: int,
    origin: OriginOptions | None = None,
) -> Forecast:
    """How long ``run --retry-failed`` would take: the failed targets, batched to the
    provider's caps, under the same bounds as a run (no shards: one list)."""
    unique = {(f.kind, f.target) for f in failures}
    kinds = sorted({kind for kind, _ in unique})
    caps = caps_for(provider, kinds)
    targets = {kind: sum(1 for k, _ in unique if k is kind) for kind in kinds}
    calls = {kind: math.ceil(targets[kind] / caps[kind].max_targets) for kind in kinds}
    workload = Workload(
        targets=targets,
        calls=calls,
        shards=(ShardWork(id=0, weight=1.0, targets=len(unique), calls=sum(calls.values())),),
    )
    limits = provider.limits
    soft_cost = (origin or OriginOptions()).soft_cost
    result = estimate(
        workload,
        Pace(
            rate=pace.rate,
            concurrency=pace.concurrency,
            workers=workers,
            api_latency=limits.api_latency,
            buckets=limits.buckets,
        ),
        OriginModel(fetches_per_target=soft_cost if limits.soft_purge else 1.0),
    )
    return Forecast(
        workload=workload,
        estimate=result,
        first_letter=result,
        first_letter_ideal_s=0.0,
        soft=limits.soft_purge,
    )


async def forecast_run(
    plan: Plan,
    name_set: NameSet,
    templates: Sequence[Template],
    options: ProviderOptions,
    pace: PaceOptions,
    *,
    workers: int,
    env: Mapping[str, str],
    api_latency: float | None = None,
    origin: OriginOptions | None = None,
    failures: Sequence[Failure] | None = None,
) -> Forecast:
    """The forecast of a run with these options (of the ``failures``' retry when given),
    the provider built from ``env`` on a client that sends nothing. A dry run passes a
    :class:`DryRunEnv` and options without a token file; a real run its environment, so
    that missing credentials are an error before the question."""
    async with httpx.AsyncClient() as client:  # never used: nothing is sent
        provider = create_provider(options, client, env)
        if failures is not None:
            return retry_forecast(failures, provider, pace, workers=workers, origin=origin)
        return forecast(
            plan,
            name_set,
            templates,
            provider,
            pace,
            workers=workers,
            api_latency=api_latency,
            origin=origin,
        )


def dry_run_options(options: ProviderOptions) -> ProviderOptions:
    """``options`` for a forecast that reads no credentials (no token file either)."""
    return replace(options, token_file=None)


def forecast_to_json(result: Forecast) -> dict[str, object]:
    """The document ``purger estimate --json`` prints."""
    est, first = result.estimate, result.first_letter
    return {
        "duration_s": round(est.duration_s, 3),
        "bottleneck": est.bottleneck,
        "bounds": {name: round(seconds, 3) for name, seconds in est.bounds.items()},
        "rate": None if math.isinf(est.rate) else round(est.rate, 3),
        "workers": est.workers,
        "api_calls": est.api_calls,
        "purge": "soft" if result.soft else "hard",
        "targets": {str(kind): count for kind, count in result.workload.targets.items()},
        "shards": [
            {
                "id": s.id,
                "worker": s.worker,
                "start_s": round(s.start_s, 3),
                "end_s": round(s.end_s, 3),
            }
            for s in est.spans
        ],
        "first_letter": {
            "duration_s": round(first.duration_s, 3),
            "ideal_s": round(result.first_letter_ideal_s, 3),
            "ratio": round(first.duration_s / result.first_letter_ideal_s, 3)
            if result.first_letter_ideal_s
            else None,
            "shards": len(first.spans),
        },
        "origin_peak_extra_rps": round(est.origin_peak_extra_rps, 3),
    }


def simulation_to_json(result: SimulationResult, config: SimConfig) -> dict[str, object]:
    """The document ``purger estimate --simulate --json`` prints."""
    history = result.history
    statistics = result.outcome.statistics
    extra = [max(0.0, step.load - config.baseline_load) for step in history]
    return {
        "simulated": True,
        "seed": config.seed,
        "duration_s": round(statistics.elapsed, 3),
        "targets": statistics.targets,
        "api_calls": statistics.batches,
        "mean_rate": round(statistics.targets / statistics.elapsed, 3)
        if statistics.elapsed
        else None,
        "origin_capacity": config.capacity,
        "origin_peak_extra_rps": round(max(extra, default=0.0), 3),
        "origin_p99_max_s": round(max((s.p99 for s in history), default=0.0), 3),
        "paused_ticks": sum(1 for _, _, paused in result.rates if paused),
        "decisions": [
            {
                "at_s": round(at, 1),
                "action": str(d.action),
                "rate": round(d.rate, 1),
                "reason": d.reason,
            }
            for at, d in result.decisions
        ],
    }
