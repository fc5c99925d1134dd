"""A whole purge against the simulated CDN and origin, in virtual time: the real planner's
shards, the real engine, pacer, Varnish adapter, health reader and controller; only the
network and the clock are simulated. Used by tests, by ``bench/control_bench.py`` and by
estimates that need the origin's answer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import anyio
import httpx

from purger.engine.monitor import LiveRun, Snapshot
from purger.engine.run import Run, RunOutcome, RunSettings
from purger.health.control import ControlSettings, Decision
from purger.health.governor import Governor
from purger.health.reader import HealthReader
from purger.health.signals import SignalKind, SignalSpec, SourceKind
from purger.names.nameset import NameSet
from purger.pacing.pacer import AdaptiveLimit, AnyioClock, Pacer, TokenBucket
from purger.planning.plan import Plan
from purger.planning.targets import parse_templates
from purger.providers.varnish import VarnishProvider
from purger.sim.cdn import SimConfig, SimStep, SimulatedCDN
from purger.sim.virtual_time import run_in_virtual_time
from purger.state.sqlite import Failure, RatePoint, ShardProgress

__all__ = ["MemoryStore", "SimulationResult", "origin_signals", "simulate_purge"]


async def _slow_down(speed: float) -> None:
    """Hold the whole loop for a moment of real time every virtual second: virtual time
    then runs at about ``speed`` times real time (the demo wants to be watched)."""
    while True:
        await anyio.sleep(1.0)
        time.sleep(1.0 / speed)  # noqa: ASYNC251 - blocking on purpose: it holds the virtual clock


class MemoryStore:
    """Progress kept in memory: a simulation has nothing to resume."""

    def __init__(self) -> None:
        self._progress: dict[int, ShardProgress] = {}
        self.failures: list[Failure] = []

    def progress(self) -> dict[int, ShardProgress]:
        return dict(self._progress)

    def commit(
        self,
        updates: Sequence[ShardProgress],
        failures: Sequence[Failure] = (),
        status: Mapping[str, str] | None = None,
        history: Sequence[RatePoint] = (),
        retried: Sequence[Failure] = (),
    ) -> None:
        del status, history  # nobody reads a simulation's ETA or rates from its store
        for update in updates:
            self._progress[update.shard_id] = update
        settled = {(f.kind, f.target) for f in retried}
        self.failures = [f for f in self.failures if (f.kind, f.target) not in settled]
        self.failures.extend(failures)


def origin_signals(
    config: SimConfig, *, p99_limit: float, p99_critical: float
) -> tuple[SignalSpec, ...]:
    """The signals an operator would watch on this origin, scraped from its ``/metrics``
    without a Prometheus: its p99 gauge and the share of 5xx answers."""
    url = f"http://{config.origin_host}/metrics"
    return (
        SignalSpec(
            name="origin p99",
            source=SourceKind.SCRAPE,
            url=url,
            query="origin_request_latency_p99_seconds",
            limit=p99_limit,
            critical=p99_critical,
            kind=SignalKind.LATENCY,
        ),
        SignalSpec(
            name="origin errors",
            source=SourceKind.SCRAPE,
            url=url,
            query='ratio(rate(origin_requests_total{code="503"}), rate(origin_requests_total))',
            limit=0.01,
            critical=0.2,
            kind=SignalKind.ERRORS,
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationResult:
    outcome: RunOutcome
    history: tuple[SimStep, ...]
    #: (virtual time, allowed rate, paused) at every controller tick.
    rates: tuple[tuple[float, float, bool], ...]
    decisions: tuple[tuple[float, Decision], ...] = field(default_factory=tuple)


def simulate_purge(
    *,
    plan: Plan,
    name_set: NameSet,
    config: SimConfig,
    control: ControlSettings | None,
    signals: Sequence[SignalSpec] = (),
    rate: float = math.inf,
    concurrency: int = 8,
    hard: bool = True,
    key_template: str = "project/{name}",
    observer: Callable[[Snapshot], None] | None = None,
    speed: float | None = None,
) -> SimulationResult:
    """Purge every name of ``plan`` through the simulation; with ``control``, paced by
    ``signals`` read from the simulated origin. ``observer`` sees the live view's
    :class:`~purger.engine.monitor.Snapshot` at every controller tick (with the origin's capacity
    in its notes); ``speed`` (virtual seconds per real second) slows virtual time
    down so that a person can watch (the demo); ``None`` runs as fast as it can."""
    options = _Options(
        control=control,
        signals=tuple(signals),
        rate=rate,
        concurrency=concurrency,
        hard=hard,
        key_template=key_template,
        observer=observer,
        speed=speed,
    )
    return run_in_virtual_time(_simulate, plan, name_set, config, options)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Options:
    control: ControlSettings | None
    signals: tuple[SignalSpec, ...]
    rate: float
    concurrency: int
    hard: bool
    key_template: str
    observer: Callable[[Snapshot], None] | None
    speed: float | None


async def _simulate(
    plan: Plan, name_set: NameSet, config: SimConfig, options: _Options
) -> SimulationResult:
    control, signals, rate = options.control, options.signals, options.rate
    clock = AnyioClock()
    started = clock.now()
    cdn = SimulatedCDN(name_set, config)
    templates = parse_templates([options.key_template], [])
    rates: list[tuple[float, float, bool]] = []
    decisions: list[tuple[float, Decision]] = []
    async with httpx.AsyncClient(transport=cdn) as client:
        provider = VarnishProvider(
            client=client,
            endpoints=[f"http://{config.cdn_host}"],
            key_header=None,
            hard=options.hard,
            timeout=30.0,
            clock=clock.now,
        )
        pacer = Pacer(
            clock=clock,
            targets=TokenBucket.with_burst_seconds(rate, 1.0, clock),
            limit=AdaptiveLimit(options.concurrency, clock=clock),
        )
        run = Run(
            plan=plan,
            name_set=name_set,
            templates=templates,
            providers=[provider],
            pacer=pacer,
            store=MemoryStore(),
            settings=RunSettings(workers=plan.settings.workers, commit_on_loop=True),
            clock=clock,
        )
        async with anyio.create_task_group() as helpers:
            if control is not None:

                def trace(decision: Decision) -> None:
                    rates.append((clock.now(), decision.rate, decision.state.paused))
                    if options.observer is not None:
                        note = (
                            f"origin capacity {cdn.capacity_now:,.0f} fetches/s; "
                            f"t = {clock.now() - started:,.0f} s (virtual time)"
                        )
                        options.observer(replace(live.snapshot(), notes=(note,)))

                governor = Governor(
                    health=HealthReader(signals, client, wall_clock=clock.now),
                    pacer=pacer,
                    settings=control,
                    clock=clock,
                    wall_clock=clock.now,
                    targets_sent=lambda: run.statistics().targets,
                    on_decision=lambda d: decisions.append((clock.now(), d)),
                    on_tick=trace,
                )
                live = LiveRun(
                    run=run,
                    pacer=pacer,
                    governor=governor,
                    stop=anyio.Event(),
                    min_rate=control.min_rate,
                    mode="simulation",
                )
                helpers.start_soon(governor.run)
            if options.speed is not None:
                helpers.start_soon(_slow_down, options.speed)
            outcome = await run.execute()
            helpers.cancel_scope.cancel()
        history = tuple(cdn.history)
    return SimulationResult(
        outcome=outcome, history=history, rates=tuple(rates), decisions=tuple(decisions)
    )
