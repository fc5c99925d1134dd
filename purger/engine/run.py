"""The run engine: workers walk shards heaviest first and purge them in batches, paced,
retried, and checkpointed so that a stop at any moment loses nothing.

Data flow: shards (heaviest first) -> workers -> batches -> pacer -> provider; confirmed
batches move a per-shard cursor; one writer task commits cursors and failures to the state
store. A batch that the provider rejects is split until the bad targets are isolated and
recorded as failed. A stop (signal, time limit, a provider that keeps failing) takes no new
batches, waits a bounded time for those in flight, checkpoints and returns; a refused
credential stops everything at once.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from purger.engine.batching import (
    PlannedBatch,
    ShardCursor,
    caps_for,
    names_in,
    shard_batches,
    target_counts,
)
from purger.engine.checkpoints import Write, write_checkpoints
from purger.engine.estimating import RateEstimate
from purger.engine.leasing import LeaseKeeper, ShardLeases
from purger.engine.outcome import (
    ProgressStore,
    RunOutcome,
    RunSettings,
    RunStatistics,
    RunStatus,
    ShardState,
)
from purger.engine.queues import RetryItem, resume_queue, retry_queue, shard_states
from purger.engine.retries import RetryNotice
from purger.engine.sending import Sender
from purger.engine.stopping import watch_stop
from purger.errors import StateError, UnavailableError
from purger.names.nameset import NameSet
from purger.pacing.pacer import Clock, Pacer
from purger.planning.estimate import window_per_worker
from purger.planning.plan import Plan, Shard
from purger.planning.targets import Template
from purger.providers.base import Provider
from purger.state.sqlite import Failure, ShardProgress

__all__ = [
    "ProgressStore",
    "Run",
    "RunOutcome",
    "RunSettings",
    "RunStatistics",
    "RunStatus",
    "ShardState",
]


class Run:
    """One execution of a plan against a provider."""

    def __init__(
        self,
        *,
        plan: Plan,
        name_set: NameSet,
        templates: Sequence[Template],
        providers: Sequence[Provider],
        pacer: Pacer,
        store: ProgressStore,
        settings: RunSettings,
        clock: Clock,
        leases: ShardLeases | None = None,
    ) -> None:
        if not providers:
            raise ValueError("a run needs at least one provider")
        self._plan = plan
        self._names = name_set.names
        self._aliases = name_set.aliases
        self._templates = tuple(templates)
        self._kinds = tuple(sorted({t.kind for t in templates}))
        self._providers = tuple(providers)
        self._pacer = pacer
        self._store = store
        self._settings = settings
        self._clock = clock
        # A run shared by several runners: shards are claimed from the database by lease.
        self._keeper = None if leases is None else LeaseKeeper(leases)
        self._caps = caps_for(providers[0], self._kinds)
        self._sender = Sender(
            providers=self._providers,
            pacer=pacer,
            settings=settings,
            clock=clock,
            stop=self.stop,
            hurry=self.hurry,
        )
        self._stopping = False
        # Made in execute(): anyio events need a running loop.
        self._stopped: anyio.Event | None = None
        self._hurry: anyio.Event | None = None
        self._stop_event: anyio.Event | None = None
        self._reason: str | None = None
        # The state could not be written: nothing more is sent, the run stops (resumable).
        self._state_error: StateError | None = None
        self._failures = 0
        self._started = clock.now()
        self._shard_targets: dict[int, int] = {}
        self._expected = target_counts(plan.shards, self._templates, self._aliases)
        self._estimate = RateEstimate(
            clock=clock,
            pacer=pacer,
            workers=settings.workers,
            targets=lambda: self._sender.targets,
            left=self._left,
        )
        self._done: set[int] = set()
        self._saved: dict[int, ShardProgress] = {}
        #: A retry of failed targets (``retry``): how many, and how many are settled.
        self._retrying: int | None = None
        self._settled = 0
        self.last_failure: Failure | None = None
        # Batches a worker keeps in flight within its shard: enough to fill the
        # concurrency cap when there are fewer shards left than workers.
        self._window = window_per_worker(pacer.limit.maximum, settings.workers)

    def statistics(self) -> RunStatistics:
        return RunStatistics(
            batches=self._sender.batches,
            targets=self._sender.targets,
            failures=self._failures,
            shards_done=len(self._done),
            shards=len(self._plan.shards),
            elapsed=self._clock.now() - self._started,
            rate=self._estimate.rate,
            eta_s=self._estimate.eta,
            empty_batches=self._sender.empty,
            rate_now=self._estimate.rate_now,
        )

    @property
    def last_retry(self) -> RetryNotice | None:
        """The last failed call that will be retried."""
        return self._sender.last_retry

    @property
    def retries(self) -> int:
        """Retries so far."""
        return self._sender.retries

    @property
    def retrying(self) -> int | None:
        """Targets a :meth:`retry` is purging again; ``None`` for a run of the plan."""
        return self._retrying

    @property
    def settled(self) -> int:
        """Targets a :meth:`retry` purged or saw fail again so far."""
        return self._settled

    @property
    def stopping(self) -> str | None:
        """Why the run is stopping, once it is."""
        return self._reason if self._stopping else None

    def shards_now(self) -> tuple[ShardState, ...]:
        """Every shard of the plan, heaviest first (the order workers take them)."""
        return shard_states(
            self._plan.shards, self._saved, self._shard_targets, self._expected, self._done
        )

    def _should_stop(self) -> bool:
        # The event is read directly, not only through the watcher task, so that no batch
        # starts after a stop was asked for, however busy the loop is.
        if self._stop_event is not None and self._stop_event.is_set():
            self.stop("stop requested")
        return self._stopping

    def hurry(self) -> None:
        """Stop waiting for batches in flight: cancel them now (they are redone on resume)."""
        if self._hurry is not None:
            self._hurry.set()

    def stop(self, reason: str) -> None:
        """Take no new batches; those in flight finish (within the drain timeout), and
        those still waiting for their turn (a bucket, a pause) are not sent."""
        if not self._stopping:
            self._stopping = True
            self._reason = reason
            self._pacer.close()
            if self._stopped is not None:
                self._stopped.set()

    async def execute(self, stop: anyio.Event | None = None) -> RunOutcome:
        """Run until every shard is done or a stop is asked for; checkpoint either way."""
        self._saved = self._store.progress()
        resumed = resume_queue(self._plan.shards, self._saved, self._kinds)
        self._done.update(resumed.done)
        self._shard_targets.update(resumed.targets_done)
        queue, cursors = resumed.queue, resumed.cursors

        keeper = self._keeper

        def spawn(workers: TaskGroup, checkpoints: MemoryObjectSendStream[Write]) -> None:
            for _ in range(min(self._settings.workers, len(queue))):
                if keeper is None:
                    workers.start_soon(self._worker, queue, cursors, checkpoints)
                else:
                    workers.start_soon(self._leased_worker, keeper, checkpoints)

        if keeper is None:
            await self._drive(stop, spawn)
        else:
            await self._drive_leased(keeper, stop, spawn)
        statistics = self.statistics()
        if self._stopping and len(self._done) < len(self._plan.shards):
            return RunOutcome(status=RunStatus.STOPPED, statistics=statistics, reason=self._reason)
        status = RunStatus.FAILED_TARGETS if self._failures else RunStatus.DONE
        return RunOutcome(status=status, statistics=statistics)

    async def retry(
        self, failures: Sequence[Failure], stop: anyio.Event | None = None
    ) -> RunOutcome:
        """Purge again the targets a run recorded as failed: each one purged is cleared
        from the state (and counted in its shard), each one refused again is kept with
        the provider's new reason. Stops like :meth:`execute`; what was not settled is
        still recorded as failed, for the next retry."""
        self._retrying, queue = retry_queue(failures, self._caps)

        def spawn(workers: TaskGroup, checkpoints: MemoryObjectSendStream[Write]) -> None:
            for _ in range(min(self._pacer.limit.maximum, len(queue))):
                workers.start_soon(self._retry_worker, queue, checkpoints)

        await self._drive(stop, spawn)
        statistics = self.statistics()
        if self._stopping and self._settled < self._retrying:
            return RunOutcome(status=RunStatus.STOPPED, statistics=statistics, reason=self._reason)
        status = RunStatus.FAILED_TARGETS if self._failures else RunStatus.DONE
        return RunOutcome(status=status, statistics=statistics)

    async def _drive_leased(
        self,
        keeper: LeaseKeeper,
        stop: anyio.Event | None,
        spawn: Callable[[TaskGroup, MemoryObjectSendStream[Write]], None],
    ) -> None:
        """:meth:`_drive` with leases kept alive; then what this runner holds is given
        back, and the shards done are those the database says (other runners' too)."""
        try:
            await self._drive(stop, spawn, partial(keeper.keep_alive, self._lost_state))
        finally:
            await keeper.release_all()
        try:
            progress = await anyio.to_thread.run_sync(self._store.progress)
        except UnavailableError as error:
            raise StateError(str(error), resumable=True) from None
        self._done = {shard_id for shard_id, p in progress.items() if p.done}

    def _lost_state(self, error: StateError) -> None:
        """The state is out of reach or a lease was lost: send nothing more, at once."""
        if self._state_error is None:
            self._state_error = error
        self.stop(str(error))
        self.hurry()

    async def _drive(
        self,
        stop: anyio.Event | None,
        spawn: Callable[[TaskGroup, MemoryObjectSendStream[Write]], None],
        *helpers: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        """The workers ``spawn`` starts, with the one checkpoint writer, the ETA and the
        watcher that turns a stop into a bounded drain; a refused credential is raised."""
        stopped, hurry = self._stopped, self._hurry = anyio.Event(), anyio.Event()
        answers = self._sender.open_slots()
        self._stop_event = stop
        if self._stopping:  # stopped before it started: the stop finds the events now
            stopped.set()
        send, receive = anyio.create_memory_object_stream[Write](max_buffer_size=1024)
        async with anyio.create_task_group() as writer:
            writer.start_soon(
                partial(
                    write_checkpoints,
                    receive,
                    commit=self._commit,
                    failing=lambda: self._state_error is not None,
                    on_error=self._lost_state,
                    answers=answers,
                    on_loop=self._settings.commit_on_loop,
                )
            )
            async with send, anyio.create_task_group() as watcher:
                watcher.start_soon(self._estimate.keep, send)
                for helper in helpers:
                    watcher.start_soon(helper)
                async with anyio.create_task_group() as workers:
                    watch = partial(watch_stop, settings=self._settings, on_stop=self.stop)
                    watcher.start_soon(watch, stop, stopped, hurry, workers.cancel_scope)
                    spawn(workers, send)
                await send.send(Write())  # the last status (rate, ETA, last error) too
                watcher.cancel_scope.cancel()
            # closing ``send`` lets the writer drain what is left and end
        if self._sender.fatal is not None:
            raise self._sender.fatal
        if self._state_error is not None:
            raise self._state_error

    async def _worker(
        self,
        queue: list[Shard],
        cursors: dict[int, ShardCursor],
        checkpoints: MemoryObjectSendStream[Write],
    ) -> None:
        while queue and not self._should_stop():
            shard = queue.pop()
            await self._walk(shard, cursors[shard.id], checkpoints)

    async def _leased_worker(
        self, keeper: LeaseKeeper, checkpoints: MemoryObjectSendStream[Write]
    ) -> None:
        """Claim the heaviest free shard, walk it from its cursor, and again."""
        shards = {shard.id: shard for shard in self._plan.shards}
        while not self._should_stop():
            try:
                lease = await keeper.next_shard(self._stop_flag())
            except UnavailableError as error:  # the database, out of reach: stop, resumable
                self._lost_state(StateError(str(error), resumable=True))
                return
            if lease is None:
                return
            saved = lease.progress
            self._shard_targets[saved.shard_id] = saved.targets_done
            cursor = ShardCursor.restore(self._kinds, saved.cursor, saved.done_ahead)
            await self._walk(shards[saved.shard_id], cursor, checkpoints)

    def _stop_flag(self) -> anyio.Event:
        if self._stopped is None:
            raise RuntimeError("the stop event is made when the run starts")
        return self._stopped

    async def _walk(
        self,
        shard: Shard,
        cursor: ShardCursor,
        checkpoints: MemoryObjectSendStream[Write],
    ) -> None:
        names = names_in(shard, self._names)
        batches = shard_batches(
            shard, names, self._templates, self._aliases, self._caps, cursor.starts()
        )
        window = anyio.Semaphore(self._window)
        async with anyio.create_task_group() as in_flight:
            for planned in batches:
                if self._should_stop():
                    break
                tracker = cursor.trackers[planned.kind]
                tracker.issue(planned)
                if tracker.is_done_ahead(planned):
                    tracker.confirm(planned)  # confirmed by an earlier run
                    continue
                await window.acquire()
                in_flight.start_soon(self._send, planned, cursor, window, checkpoints)
        if self._should_stop():
            return
        for tracker in cursor.trackers.values():
            tracker.finished = True  # every batch was issued and confirmed
        await self._checkpoint(shard.id, cursor, [], checkpoints)

    async def _send(
        self,
        planned: PlannedBatch,
        cursor: ShardCursor,
        window: anyio.Semaphore,
        checkpoints: MemoryObjectSendStream[Write],
    ) -> None:
        try:
            failures, held = await self._sender.answered(planned.batch, planned.shard_id)
        finally:
            window.release()
        if failures is None:
            return
        self._shard_targets[planned.shard_id] += len(planned.targets) - len(failures)
        cursor.trackers[planned.kind].confirm(planned)
        await self._checkpoint(planned.shard_id, cursor, failures, checkpoints, slots=held)

    async def _retry_worker(
        self,
        queue: list[RetryItem],
        checkpoints: MemoryObjectSendStream[Write],
    ) -> None:
        while queue and not self._should_stop():
            shard_id, batch, retried = queue.pop()
            again, held = await self._sender.answered(batch, shard_id)
            if again is None:
                return
            self._settled += len(batch)
            self._failures += len(again)
            if again:
                self.last_failure = again[-1]
            await checkpoints.send(Write(failures=again, retried=retried, slots=held))

    async def _checkpoint(
        self,
        shard_id: int,
        cursor: ShardCursor,
        failures: list[Failure],
        checkpoints: MemoryObjectSendStream[Write],
        *,
        slots: int = 0,
    ) -> None:
        encoded, ahead = cursor.encode()
        if cursor.finished:
            self._done.add(shard_id)
        progress = ShardProgress(
            shard_id=shard_id,
            cursor=encoded,
            done=cursor.finished,
            done_ahead=ahead,
            targets_done=self._shard_targets[shard_id],
        )
        self._failures += len(failures)
        if failures:
            self.last_failure = failures[-1]
        await checkpoints.send(Write(progress=progress, failures=failures, slots=slots))

    def _commit(
        self, updates: list[ShardProgress], failures: list[Failure], retried: list[Failure]
    ) -> None:
        """One group commit, with the status and the rate points gathered since the last."""
        points = self._estimate.take_points()
        status = self._estimate.status(self._sender.targets, self._sender.last_retry)
        self._store.commit(updates, failures, status, points, retried)

    def _left(self) -> list[int]:
        """Targets left, per shard not done (or in all, for a retry)."""
        if self._retrying is not None:
            return [self._retrying - self._settled] if self._settled < self._retrying else []
        return [
            max(0, self._expected.get(shard.id, 0) - self._shard_targets.get(shard.id, 0))
            for shard in self._plan.shards
            if shard.id not in self._done
        ]
