"""Executing a run: open the state (recording the run, or checking that a resume is of the
run recorded), wire the engine, the governor and what shows the run, stop gracefully on
SIGINT/SIGTERM, and close everything whatever happens. The parts come from
:mod:`purger.launch.build`.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, Final

import anyio
import httpx

from purger import __version__
from purger.engine.monitor import LiveRun
from purger.engine.repurge import RepurgeLater
from purger.engine.run import Run, RunOutcome, RunSettings
from purger.errors import PurgerError, UsageError
from purger.health.control import ControlSettings, Decision
from purger.health.governor import Governor
from purger.health.reader import HealthReader
from purger.health.signals import SignalSpec
from purger.launch.build import PaceOptions, make_pacer, purge_clients, run_record
from purger.names.nameset import NameSet
from purger.pacing.pacer import Clock
from purger.planning.plan import Plan
from purger.planning.targets import Template
from purger.providers import ProviderOptions, create_provider
from purger.state.leases import LeasedStore
from purger.state.protocol import Store
from purger.state.sqlite import Failure, RunRecord, StateStore, StateSummary
from purger.state.stores import StateRef

__all__ = ["Presenter", "execute_run"]


@contextmanager
def _no_signals() -> Iterator[AsyncIterator[int]]:
    """A signal receiver that receives nothing, for a caller that handles signals itself."""

    async def never() -> AsyncIterator[int]:
        await anyio.sleep_forever()
        yield 0  # pragma: no cover - unreachable; makes this an async generator

    yield never()


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
    transport: httpx.AsyncBaseTransport | None = None,
    stop_on_signals: bool = True,
) -> tuple[RunOutcome, StateSummary]:
    """Build the providers, open the state (recording the run, or checking on ``resume``
    and ``retry_failed`` that it is the one recorded), and run the plan (or, with
    ``retry_failed``, the targets recorded as failed) until done or stopped.

    Options and credentials are checked before the state file is touched, so a typo leaves
    no file and no half-started run behind. ``min_rate``: the operator's ceiling never goes
    below it (``control.min_rate`` when there are signals). ``transport`` carries the
    purges instead of the network; ``stop_on_signals`` False leaves SIGINT/SIGTERM to the
    caller (a thread that is not the main one cannot receive them).
    """
    clients = purge_clients(options, pace, transport)
    health_client = httpx.AsyncClient(headers={"User-Agent": f"purger/{__version__}"})
    try:
        providers = [create_provider(options, client, env) for client in clients]
        # From the moment the state may exist, SIGINT/SIGTERM stop the run (exit 3), even
        # before it sends: the receiver keeps them until the run is there to stop.
        signals_in = (
            anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
            if stop_on_signals
            else _no_signals()
        )
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
            pacer = make_pacer(pace, providers[0], clock)
            later = RepurgeLater(options.repurge_after, pacer) if options.repurge_after else None
            run = Run(
                plan=plan,
                name_set=name_set,
                templates=templates,
                providers=[later.wrap(p) for p in providers] if later else providers,
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
            async with later or nullcontext():  # leaving waits for the second purges due
                outcome = await _execute_with_signals(
                    live, run, present, governor, failures, received
                )
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
