"""From an operator's options to a running purge: the plan and its names, the providers on
their clients, the pacer, the state, signals. ``cli.py`` parses; this module assembles.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import anyio
import httpx

from purger import __version__
from purger.engine.monitor import LiveRun
from purger.engine.run import Run, RunOutcome, RunSettings
from purger.errors import PurgerError, UsageError
from purger.health.control import ControlSettings, Decision
from purger.health.governor import Governor
from purger.health.signals import HealthReader, SignalSpec
from purger.model import TargetKind, redact_url
from purger.names.nameset import NameSet, WeightSpec, WeightTransform
from purger.pacing.pacer import AdaptiveLimit, Clock, Pacer, TokenBucket
from purger.planning.plan import Plan, fingerprint
from purger.planning.targets import Template
from purger.providers import ProviderOptions, create_provider
from purger.providers.base import Provider
from purger.providers.http1 import Http1Transport
from purger.state.leases import LeasedStore
from purger.state.protocol import Store
from purger.state.sqlite import Failure, RunRecord, StateStore, StateSummary
from purger.state.stores import StateRef

__all__ = [
    "PaceOptions",
    "Presenter",
    "check_names_match",
    "execute_run",
    "run_record",
    "weight_spec_of",
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


def _redact_tier(tier: str) -> str:
    """``shield=http://u:p@a:6081,http://b`` with each node's credentials redacted."""
    name, _, nodes = tier.partition("=")
    return f"{name}={','.join(redact_url(node) for node in nodes.split(','))}"


def run_record(plan: Plan, options: ProviderOptions, templates: Sequence[Template]) -> RunRecord:
    """What the state file records about this run: no secret is in ``options``.

    Where the token is read from is not part of the run: a resume may read it elsewhere.
    """
    stored = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in asdict(options).items()
        if k != "token_file"
    }
    # A proxy's or node's user name and password are credentials: never stored.
    stored["endpoints"] = [redact_url(e) for e in options.endpoints]
    if options.api_base is not None:
        stored["api_base"] = redact_url(options.api_base)
    stored["tiers"] = [_redact_tier(tier) for tier in options.tiers]
    if not options.tiers:
        del stored["tiers"]  # states from before tiers resume as they were
    return RunRecord(
        fingerprint=plan.fingerprint,
        provider=options.name,
        provider_options=stored,
        key_templates=tuple(t.text for t in templates if t.kind is TargetKind.KEY),
        url_templates=tuple(t.text for t in templates if t.kind is TargetKind.URL),
        shards=plan.shards,
        purger_version=__version__,
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
    state: StateRef,
    resume: bool | None,
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
        with signals_in as received, _open(state) as store:
            record = run_record(plan, options, templates)
            mode, earlier_failures = "run", 0
            if retry_failed:
                if store.load_run() is None:
                    raise UsageError(f"no run recorded in {state}: nothing to retry")
                store.check_resume(record)
                mode = "retry-failed"
            elif resume or (resume is None and not _started(store, record)):
                store.check_resume(record)  # refuses a state that holds no run
                summary = store.summary()
                on_resume(summary)
                mode, earlier_failures = "resume", summary.failures
            elif resume is not None:
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
                leases=store if isinstance(store, LeasedStore) else None,
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


def _open(state: StateRef) -> Store:
    """The state: a file this run holds alone, or a database run it shares by leases."""
    return state.join() if state.shared else StateStore.open(state.path)


def _started(store: Store, record: RunRecord) -> bool:
    """Record the run unless the state holds one already (another runner may have recorded
    it a moment ago): whether this runner started it."""
    if store.load_run() is not None:
        return False
    try:
        store.start_run(record)
    except UsageError:
        if store.load_run() is None:
            raise
        return False  # a runner beside us recorded it first
    return True


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
