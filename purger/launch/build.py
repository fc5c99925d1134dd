"""From an operator's options to a running purge: the plan and its names, the providers on
their clients, the pacer, the state, signals. ``cli.py`` parses; this module assembles.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import anyio
import httpx

from purger import __version__
from purger.engine.batching import caps_for, names_in, shard_batches
from purger.engine.monitor import LiveRun
from purger.engine.run import Run, RunOutcome, RunSettings
from purger.errors import PurgerError, UsageError
from purger.health.control import ControlSettings, Decision
from purger.health.governor import Governor
from purger.health.signals import HealthReader, SignalSpec
from purger.model import TargetKind
from purger.names.nameset import NameSet, WeightSpec, WeightTransform
from purger.pacing.pacer import AdaptiveLimit, Clock, Pacer, TokenBucket
from purger.planning.estimate import Estimate, OriginModel, Pace, ShardWork, Workload, estimate
from purger.planning.plan import Plan, fingerprint
from purger.planning.targets import Template
from purger.providers import ProviderOptions, create_provider
from purger.providers.base import Provider
from purger.providers.http1 import Http1Transport
from purger.sim.cdn import SimConfig
from purger.sim.purge import SimulationResult
from purger.state.sqlite import Failure, RunRecord, StateStore, StateSummary

__all__ = [
    "DryRunEnv",
    "Forecast",
    "PaceOptions",
    "Presenter",
    "check_names_match",
    "execute_run",
    "forecast",
    "forecast_to_json",
    "retry_forecast",
    "run_record",
    "simulation_to_json",
    "weight_spec_of",
    "workload_of",
]

#: Connections per httpx client: one client with 50 connections runs at about half the
#: speed of several small ones (varnish-bench.md, P10).
_CONNECTIONS_PER_CLIENT: Final = 5


def _purge_clients(options: ProviderOptions, pace: PaceOptions) -> list[httpx.AsyncClient]:
    """The HTTP clients purges go out on, a provider on each. Varnish gets one client on
    the lean HTTP/1.1 transport: a URL purge is a request of its own, so the client's cost
    per request sets the pace (``providers/http1.py``). Others get several small pools."""
    headers = {"User-Agent": f"purger/{__version__}"}
    limits = httpx.Limits(
        max_connections=_CONNECTIONS_PER_CLIENT,
        max_keepalive_connections=_CONNECTIONS_PER_CLIENT,
    )
    if options.name == "varnish":
        # One pool for https nodes too, a connection for each request at once (every call
        # goes to every node), so that none waits in it.
        requests = pace.concurrency * max(1, len(options.endpoints))
        room = httpx.Limits(max_connections=requests, max_keepalive_connections=requests)
        https = httpx.AsyncHTTPTransport(limits=room)
        lean = Http1Transport(max_idle=pace.concurrency, fallback=https)
        return [httpx.AsyncClient(timeout=options.timeout, headers=headers, transport=lean)]
    return [
        httpx.AsyncClient(timeout=options.timeout, limits=limits, headers=headers)
        for _ in range(math.ceil(pace.concurrency / _CONNECTIONS_PER_CLIENT))
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class PaceOptions:
    """``--rate`` targets/s (``inf``: only the provider's limits) and ``--concurrency``."""

    rate: float = 500.0
    concurrency: int = 8

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise UsageError(f"--rate must be > 0 (or inf), not {self.rate}")
        if self.concurrency < 1:
            raise UsageError(f"--concurrency must be >= 1, not {self.concurrency}")


def weight_spec_of(label: str) -> WeightSpec:
    """The weight spec a plan's ``weight`` label was made with (``plan.py`` writes it)."""
    if label == "count":
        return WeightSpec()
    for transform in WeightTransform:
        prefix = f"{transform}("
        if (
            transform is not WeightTransform.NONE
            and label.startswith(prefix)
            and label.endswith(")")
        ):
            return WeightSpec(column=label[len(prefix) : -1], transform=transform)
    return WeightSpec(column=label)


def check_names_match(plan: Plan, name_set: NameSet, where: str) -> None:
    """Refuse names that are not the ones the plan was made from."""
    if fingerprint(name_set, plan.settings) != plan.fingerprint:
        raise UsageError(
            f"the names in {where} are not the ones plan {plan.fingerprint[:12]} was made from "
            "(they changed since, or --normalize/--weight-column differ): make a new plan"
        )


def run_record(plan: Plan, options: ProviderOptions, templates: Sequence[Template]) -> RunRecord:
    """What the state file records about this run: no secret is in ``options``.

    Where the token is read from is not part of the run: a resume may read it elsewhere.
    """
    stored = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in asdict(options).items()
        if k != "token_file"
    }
    stored["endpoints"] = list(options.endpoints)
    return RunRecord(
        fingerprint=plan.fingerprint,
        provider=options.name,
        provider_options=stored,
        key_templates=tuple(t.text for t in templates if t.kind is TargetKind.KEY),
        url_templates=tuple(t.text for t in templates if t.kind is TargetKind.URL),
        shards=plan.shards,
        purger_version=__version__,
    )


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
class Forecast:
    """What ``purger estimate`` and ``purger run --dry-run`` show."""

    workload: Workload
    estimate: Estimate
    #: The same names as PyPI purged them in 2022: one shard per first character, one
    #: target per call, each worker one call at a time.
    first_letter: Estimate
    #: That method's ideal (every worker equally busy), to show what its skew costs.
    first_letter_ideal_s: float


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


def forecast(
    plan: Plan,
    name_set: NameSet,
    templates: Sequence[Template],
    provider: Provider,
    pace: PaceOptions,
    *,
    workers: int,
    api_latency: float | None = None,
    origin: OriginModel | None = None,
) -> Forecast:
    """How long the run would take, and how long PyPI's 2022 method would have."""
    workload = workload_of(plan, name_set, templates, provider)
    limits = provider.limits
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
    one_at_a_time = Pace(
        rate=pace.rate,
        concurrency=workers,
        workers=workers,
        api_latency=latency,
        buckets=limits.buckets,
        window=1,
    )
    first_estimate = estimate(first, one_at_a_time, origin)
    # That method's ideal: its global bounds alone, as if no letter were bigger than another.
    ideal = max(first_estimate.bounds.values(), default=0.0)
    return Forecast(
        workload=workload,
        estimate=estimate(workload, base, origin),
        first_letter=first_estimate,
        first_letter_ideal_s=ideal,
    )


def retry_forecast(
    failures: Sequence[Failure], provider: Provider, pace: PaceOptions, *, workers: int
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
    result = estimate(
        workload,
        Pace(
            rate=pace.rate,
            concurrency=pace.concurrency,
            workers=workers,
            api_latency=limits.api_latency,
            buckets=limits.buckets,
        ),
    )
    return Forecast(
        workload=workload, estimate=result, first_letter=result, first_letter_ideal_s=0.0
    )


def _pacer(pace: PaceOptions, provider: Provider, clock: Clock) -> Pacer:
    buckets = provider.limits.buckets
    return Pacer(
        clock=clock,
        targets=TokenBucket.with_burst_seconds(pace.rate, 1.0, clock),
        call_buckets=[
            TokenBucket(b.per_second, b.burst, clock) for b in buckets if b.unit == "calls"
        ],
        target_buckets=[
            TokenBucket(b.per_second, b.burst, clock) for b in buckets if b.unit == "targets"
        ],
        limit=AdaptiveLimit(pace.concurrency, maximum=pace.concurrency, clock=clock),
    )


async def _stop_on_signals(live: LiveRun, signals: AsyncIterator[int]) -> None:
    """SIGINT or SIGTERM: a graceful stop; a second one stops waiting for the drain.
    ``signals`` was opened before the state was: one received since is handled now."""
    async for signum in signals:
        live.stop(f"{signal.Signals(signum).name} received")


#: Loop turns from a signal in the wake-up pipe to the receiver's stop (asyncio: the pipe
#: is read, the handler runs, the receiver task wakes).
_SIGNAL_TURNS: Final = 3


#: What shows a run while it goes: the live view, progress lines or JSON lines. It runs
#: beside the run and is cancelled when the run ends.
Presenter = Callable[[LiveRun], Coroutine[Any, Any, None]]


async def execute_run(
    *,
    plan: Plan,
    name_set: NameSet,
    templates: Sequence[Template],
    options: ProviderOptions,
    env: Mapping[str, str],
    pace: PaceOptions,
    settings: RunSettings,
    state_path: Path,
    resume: bool,
    clock: Clock,
    present: Presenter | None = None,
    on_resume: Callable[[StateSummary], None] = lambda summary: None,
    signals: Sequence[SignalSpec] = (),
    control: ControlSettings | None = None,
    on_decision: Callable[[Decision], None] = lambda decision: None,
    retry_failed: bool = False,
    min_rate: float = 1.0,
) -> tuple[RunOutcome, StateSummary]:
    """Build the providers, open the state (recording the run, or checking on ``resume``
    and ``retry_failed`` that it is the one recorded), and run the plan (or, with
    ``retry_failed``, the targets recorded as failed) until done or stopped.

    Options and credentials are checked before the state file is touched, so a typo leaves
    no file and no half-started run behind. ``min_rate``: the operator's ceiling never goes
    below it (``control.min_rate`` when there are signals).
    """
    clients = _purge_clients(options, pace)
    health_client = httpx.AsyncClient(headers={"User-Agent": f"purger/{__version__}"})
    try:
        providers = [create_provider(options, client, env) for client in clients]
        # From the moment the state may exist, SIGINT/SIGTERM stop the run (exit 3), even
        # before it sends: the receiver keeps them until the run is there to stop.
        signals_in = anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        with signals_in as received, StateStore.open(state_path) as store:
            record = run_record(plan, options, templates)
            mode, earlier_failures = "run", 0
            if retry_failed:
                if store.load_run() is None:
                    raise UsageError(f"no run recorded in {state_path}: nothing to retry")
                store.check_resume(record)
                mode = "retry-failed"
            elif resume:
                store.check_resume(record)  # refuses a state that holds no run
                summary = store.summary()
                on_resume(summary)
                mode, earlier_failures = "resume", summary.failures
            else:
                store.start_run(record)
            pacer = _pacer(pace, providers[0], clock)
            run = Run(
                plan=plan,
                name_set=name_set,
                templates=templates,
                providers=providers,
                pacer=pacer,
                store=store,
                settings=settings,
                clock=clock,
            )
            governor = None
            if signals and control is not None:
                governor = Governor(
                    health=HealthReader(signals, health_client),
                    pacer=pacer,
                    settings=control,
                    clock=clock,
                    wall_clock=time.time,
                    targets_sent=lambda: run.statistics().targets,
                    on_decision=on_decision,
                )
            live = LiveRun(
                run=run,
                pacer=pacer,
                governor=governor,
                stop=anyio.Event(),
                min_rate=control.min_rate if control is not None else min_rate,
                run_id=store.run_id(),
                mode=mode,
                earlier_failures=earlier_failures,
            )
            failures = store.failures() if retry_failed else None
            outcome = await _execute_with_signals(live, run, present, governor, failures, received)
            return outcome, store.summary()
    finally:
        for client in [*clients, health_client]:
            await client.aclose()


async def _execute_with_signals(
    live: LiveRun,
    run: Run,
    present: Presenter | None,
    governor: Governor | None,
    failures: Sequence[Failure] | None,
    signals: AsyncIterator[int],
) -> RunOutcome:
    async with anyio.create_task_group() as helpers:
        helpers.start_soon(_stop_on_signals, live, signals)
        # A signal that came during the synchronous start-up waits in the loop's wake-up
        # pipe: a few loop turns hand it to the receiver, which stops the run before any
        # call goes out.
        for _ in range(_SIGNAL_TURNS):
            await anyio.lowlevel.checkpoint()
        if present is not None:
            helpers.start_soon(present, live)
        if governor is not None:
            helpers.start_soon(governor.run)
        try:
            # Errors are returned, not raised, out of the task group: no ExceptionGroup.
            result: RunOutcome | PurgerError = await (
                run.execute(live.stop_event)
                if failures is None
                else run.retry(failures, live.stop_event)
            )
        except PurgerError as error:
            result = error
        finally:
            helpers.cancel_scope.cancel()
    if isinstance(result, PurgerError):
        raise result
    return result


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
