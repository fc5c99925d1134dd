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

import math
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import anyio
from anyio import CancelScope
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from purger.engine.batching import (
    PlannedBatch,
    ShardCursor,
    caps_for,
    cut_targets,
    names_in,
    shard_batches,
    target_counts,
)
from purger.engine.checkpoints import Write, write_checkpoints
from purger.engine.leasing import LeaseKeeper, ShardLeases
from purger.engine.outcome import (
    ProgressStore,
    RunOutcome,
    RunSettings,
    RunStatistics,
    RunStatus,
    ShardState,
)
from purger.engine.retries import RetryNotice
from purger.errors import (
    AuthError,
    ProviderError,
    RateLimitedError,
    RejectedError,
    StateError,
    TransientError,
    UnavailableError,
    UsageError,
)
from purger.model import Batch, TargetKind
from purger.names.nameset import NameSet
from purger.pacing.pacer import Clock, Pacer, PacerClosedError
from purger.pacing.retrying import call_with_retries
from purger.planning.estimate import window_per_worker
from purger.planning.plan import Plan, Shard
from purger.planning.targets import Template
from purger.providers.base import Provider
from purger.state.sqlite import Failure, RatePoint, ShardProgress

__all__ = [
    "ProgressStore",
    "Run",
    "RunOutcome",
    "RunSettings",
    "RunStatistics",
    "RunStatus",
    "ShardState",
]


#: Seconds between ETA estimates, and the weight of the newest rate in the smoothing.
_ETA_EVERY: Final = 5.0
_ETA_SMOOTHING: Final = 0.2
#: Seconds between the rate points committed to the state (``purger status``'s history).
_HISTORY_EVERY: Final = 10.0


@dataclass(slots=True)
class _Held:
    """The answer slot a batch holds once a call of it was answered (0 or 1)."""

    count: int = 0


class _GaveUpError(Exception):
    """Retries for one batch are spent: the provider keeps failing; stop, resumable."""

    def __init__(self, error: ProviderError) -> None:
        self.error = error
        super().__init__(str(error))


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
        # Calls in flight per provider (one HTTP client each): a call goes to the least
        # busy, so that no client's connection pool has callers waiting in it (httpcore
        # serves waiting callers slowly) while another's has room.
        self._in_flight = [0] * len(self._providers)
        self._stopping = False
        # Made in execute(): anyio events need a running loop.
        self._stopped: anyio.Event | None = None
        self._hurry: anyio.Event | None = None
        self._stop_event: anyio.Event | None = None
        self._reason: str | None = None
        # A refused credential or a wrong service: every other call would fail alike.
        self._fatal: AuthError | UsageError | None = None
        # The state could not be written: nothing more is sent, the run stops (resumable).
        self._state_error: StateError | None = None
        # A call holds a slot from before it is sent until its answer is committed, so
        # that the answers a kill can lose are at most the concurrency cap (made in
        # _drive: anyio primitives need a running loop).
        self._answers: anyio.Semaphore | None = None
        self._batches = self._targets = self._failures = 0
        # Calls the provider accepted but said purged nothing (Varnish counts objects): all
        # of them empty usually means a wrong template or Host, as in PyPI's 2022 outage.
        self._empty = 0
        self._started = clock.now()
        self._shard_targets: dict[int, int] = {}
        self._expected = target_counts(plan.shards, self._templates, self._aliases)
        self._rate = self._rate_now = 0.0
        self._eta: float | None = None
        self._done: set[int] = set()
        self._saved: dict[int, ShardProgress] = {}
        #: A retry of failed targets (``retry``): how many, and how many are settled.
        self._retrying: int | None = None
        self._settled = 0
        self.last_failure: Failure | None = None
        #: The last failed call that will be retried, and how many retries so far.
        self.last_retry: RetryNotice | None = None
        self.retries = 0
        self._points: list[RatePoint] = []
        # Batches a worker keeps in flight within its shard: enough to fill the
        # concurrency cap when there are fewer shards left than workers.
        self._window = window_per_worker(pacer.limit.maximum, settings.workers)

    def statistics(self) -> RunStatistics:
        return RunStatistics(
            batches=self._batches,
            targets=self._targets,
            failures=self._failures,
            shards_done=len(self._done),
            shards=len(self._plan.shards),
            elapsed=self._clock.now() - self._started,
            rate=self._rate,
            eta_s=self._eta,
            empty_batches=self._empty,
            rate_now=self._rate_now,
        )

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
        shards = sorted(self._plan.shards, key=lambda s: (-s.weight, s.id))
        states = []
        for shard in shards:
            saved = self._saved.get(shard.id)
            done = self._shard_targets.get(shard.id, saved.targets_done if saved else 0)
            states.append(
                ShardState(
                    id=shard.id,
                    start=shard.start,
                    limit=shard.limit,
                    weight=shard.weight,
                    targets_done=done,
                    targets_total=self._expected.get(shard.id, 0),
                    done=shard.id in self._done,
                )
            )
        return tuple(states)

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
        self._saved = saved = self._store.progress()
        cursors: dict[int, ShardCursor] = {}
        queue: list[Shard] = []
        for shard in sorted(self._plan.shards, key=lambda s: (-s.weight, s.id)):
            progress = saved.get(shard.id)
            if progress is not None and progress.done:
                self._done.add(shard.id)
                continue
            cursors[shard.id] = ShardCursor.restore(
                self._kinds,
                progress.cursor if progress else None,
                progress.done_ahead if progress else frozenset(),
            )
            self._shard_targets[shard.id] = progress.targets_done if progress else 0
            queue.append(shard)
        queue.reverse()  # pop() from the end takes the heaviest first

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
        unique = list({(f.kind, f.target): f for f in failures}.values())
        self._retrying = len(unique)
        groups: dict[tuple[int, TargetKind], list[Failure]] = {}
        for failure in unique:
            groups.setdefault((failure.shard_id, failure.kind), []).append(failure)
        queue: list[tuple[int, Batch, list[Failure]]] = []
        for (shard_id, kind), group in sorted(groups.items()):
            by_target = {f.target: f for f in group}
            queue.extend(
                (shard_id, Batch(kind, targets), [by_target[t] for t in targets])
                for targets in cut_targets([f.target for f in group], self._caps[kind])
            )
        queue.reverse()

        def spawn(workers: TaskGroup, checkpoints: MemoryObjectSendStream[Write]) -> None:
            for _ in range(min(self._pacer.limit.maximum, len(queue))):
                workers.start_soon(self._retry_worker, queue, checkpoints)

        await self._drive(stop, spawn)
        statistics = self.statistics()
        if self._stopping and self._settled < len(unique):
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
        self._answers = anyio.Semaphore(self._pacer.limit.maximum)
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
                    answers=self._answer_slots(),
                    on_loop=self._settings.commit_on_loop,
                )
            )
            async with send, anyio.create_task_group() as watcher:
                watcher.start_soon(self._estimate_eta, send)
                for helper in helpers:
                    watcher.start_soon(helper)
                async with anyio.create_task_group() as workers:
                    watcher.start_soon(self._watch, stop, stopped, hurry, workers.cancel_scope)
                    spawn(workers, send)
                await send.send(Write())  # the last status (rate, ETA, last error) too
                watcher.cancel_scope.cancel()
            # closing ``send`` lets the writer drain what is left and end
        if self._fatal is not None:
            raise self._fatal
        if self._state_error is not None:
            raise self._state_error

    async def _watch(
        self,
        stop: anyio.Event | None,
        stopped: anyio.Event,
        hurry: anyio.Event,
        workers: CancelScope,
    ) -> None:
        """Turn a stop request or the time limit into a stop, then bound the drain."""
        limit = self._settings.max_duration
        async with anyio.create_task_group() as relay:
            if stop is not None:
                relay.start_soon(self._relay, stop)
            # The time limit and the drain are wall time, whatever clock paces the run.
            with anyio.move_on_after(math.inf if limit is None else limit):
                await stopped.wait()
            if limit is not None:
                self.stop(f"time limit of {limit:g} s reached")  # a no-op if stopped before
            with anyio.move_on_after(self._settings.drain_timeout):
                await hurry.wait()
            workers.cancel()
            relay.cancel_scope.cancel()

    async def _relay(self, stop: anyio.Event) -> None:
        await stop.wait()
        self.stop("stop requested")

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
            failures, held = await self._answered(planned.batch, planned.shard_id)
        finally:
            window.release()
        if failures is None:
            return
        self._shard_targets[planned.shard_id] += len(planned.targets) - len(failures)
        cursor.trackers[planned.kind].confirm(planned)
        await self._checkpoint(planned.shard_id, cursor, failures, checkpoints, slots=held)

    async def _answered(self, batch: Batch, shard_id: int) -> tuple[list[Failure] | None, int]:
        """:meth:`_purge_or_stop`, and the answer slots its answered calls hold, for the
        writer to free once they are committed (freed here when there is nothing to
        commit)."""
        held = _Held()
        try:
            failures = await self._purge_or_stop(batch, shard_id, held)
        except BaseException:
            self._free(held.count)
            raise
        if failures is None:
            self._free(held.count)
            return None, 0
        return failures, held.count

    def _free(self, slots: int) -> None:
        answers = self._answer_slots()
        for _ in range(slots):
            answers.release()

    def _answer_slots(self) -> anyio.Semaphore:
        if self._answers is None:
            raise RuntimeError("the answer slots are made when the run starts")
        return self._answers

    async def _retry_worker(
        self,
        queue: list[tuple[int, Batch, list[Failure]]],
        checkpoints: MemoryObjectSendStream[Write],
    ) -> None:
        while queue and not self._should_stop():
            shard_id, batch, retried = queue.pop()
            again, held = await self._answered(batch, shard_id)
            if again is None:
                return
            self._settled += len(batch)
            self._failures += len(again)
            if again:
                self.last_failure = again[-1]
            await checkpoints.send(Write(failures=again, retried=retried, slots=held))

    async def _purge_or_stop(
        self, batch: Batch, shard_id: int, held: _Held
    ) -> list[Failure] | None:
        """The targets refused, or ``None`` when the batch was not purged and the run
        stops (the provider keeps failing, a refused credential, or a stop came first)."""
        try:
            return await self._purge(batch, shard_id, held)
        except PacerClosedError:
            return None  # never sent: the run is stopping; a resume sends it
        except _GaveUpError as gave_up:
            self.stop(f"giving up for now: {gave_up.error}")
            return None
        except (AuthError, UsageError) as error:
            self._fatal = error
            self.stop(str(error))
            self.hurry()  # every other call would be refused too: cancel them now
            return None

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
        points, self._points = self._points, []
        self._store.commit(updates, failures, self._status(), points, retried)

    def _left(self) -> list[int]:
        """Targets left, per shard not done (or in all, for a retry)."""
        if self._retrying is not None:
            return [self._retrying - self._settled] if self._settled < self._retrying else []
        return [
            max(0, self._expected.get(shard.id, 0) - self._shard_targets.get(shard.id, 0))
            for shard in self._plan.shards
            if shard.id not in self._done
        ]

    async def _estimate_eta(self, checkpoints: MemoryObjectSendStream[Write]) -> None:
        """Every few seconds: the observed rate (smoothed over about a minute) and the time
        left at it, from what each shard has left; the tail counts (the biggest shard left
        goes no faster than one worker's share of the rate). Every few of them, a point of
        the rate history, committed even while nothing else is (a pause)."""
        sent, at = self._targets, self._clock.now()
        last_point = at
        while True:
            await self._clock.sleep(_ETA_EVERY)
            now = self._clock.now()
            instant = (self._targets - sent) / (now - at) if now > at else 0.0
            sent, at = self._targets, now
            weight = _ETA_SMOOTHING if self._rate else 1.0
            self._rate = weight * instant + (1 - weight) * self._rate
            self._rate_now = instant
            left = self._left()
            if not left:
                self._eta = 0.0
            elif self._rate <= 0:
                self._eta = None
            else:
                busy = max(1, min(self._settings.workers, sum(1 for n in left if n > 0)))
                self._eta = max(sum(left) / self._rate, max(left) * busy / self._rate)
            if now - last_point >= _HISTORY_EVERY:
                last_point = now
                self._points.append(
                    RatePoint(
                        rate=self._rate,
                        allowed=self._pacer.targets.rate,
                        targets=self._targets,
                        held=self._pacer.holds,
                    )
                )
                await checkpoints.send(Write())

    def _status(self) -> dict[str, str]:
        retry = self.last_retry
        return {
            "rate": f"{self._rate:.3f}",
            "eta_s": "" if self._eta is None else f"{self._eta:.1f}",
            "targets": str(self._targets),
            # ``purger status`` shows it: an unreachable API is the first thing to see.
            "last_error": "" if retry is None else f"{retry.seen_at} {retry.describe()}",
        }

    async def _purge(self, batch: Batch, shard_id: int, held: _Held) -> list[Failure]:
        """Purge ``batch``; return the targets the provider refused, each with its reason."""
        try:
            await call_with_retries(
                lambda: self._call(batch, held),
                policy=self._settings.retry,
                clock=self._clock,
                on_retry=self._on_retry,
            )
            return []
        except RejectedError as error:
            if len(batch) == 1:
                reason = str(error)
                return [
                    Failure(
                        target=batch.targets[0], kind=batch.kind, shard_id=shard_id, reason=reason
                    )
                ]
            middle = len(batch) // 2
            left = Batch(batch.kind, batch.targets[:middle])
            right = Batch(batch.kind, batch.targets[middle:])
            return await self._purge(left, shard_id, held) + await self._purge(
                right, shard_id, held
            )
        except RateLimitedError as error:
            if error.max_targets is not None and 0 < error.max_targets < len(batch):
                size = error.max_targets
                failures: list[Failure] = []
                for i in range(0, len(batch), size):
                    piece = Batch(batch.kind, batch.targets[i : i + size])
                    failures += await self._purge(piece, shard_id, held)
                return failures
            raise _GaveUpError(error) from None
        except TransientError as error:
            raise _GaveUpError(error) from None

    def _on_retry(self, error: BaseException, attempt: int, wait: float) -> None:
        self.retries += 1
        self.last_retry = RetryNotice.of(
            error,
            attempt,
            wait,
            attempts=self._settings.retry.attempts,
            at=self._clock.now(),
            calls_before=self._batches,
        )

    async def _call(self, batch: Batch, held: _Held) -> None:
        """One attempt. The batch takes an answer slot just before it is first sent, kept
        (in ``held``) once the provider accepts a call of it, until the writer has
        committed it; so the batches sent and not yet committed never exceed the slots
        (the concurrency cap). The pieces of a split batch share its slot."""
        async with self._pacer.admit(len(batch)):
            if self._fatal is not None:
                raise self._fatal  # refused credentials: send nothing more
            answers = self._answer_slots()
            took = not held.count
            if took:
                await answers.acquire()
            busy = self._in_flight
            index = busy.index(min(busy))
            busy[index] += 1
            try:
                result = await self._providers[index].purge(batch)
            except BaseException as error:
                if took:
                    answers.release()
                if isinstance(error, RateLimitedError | TransientError):
                    self._pacer.limit.on_overload()
                if isinstance(error, RateLimitedError) and error.retry_after is not None:
                    self._pacer.defer(error.retry_after)
                raise
            else:
                held.count = 1  # from here the writer frees it, once committed
            finally:
                busy[index] -= 1
        self._pacer.limit.on_success()
        self._batches += 1
        self._targets += len(batch)
        if result.purged == 0:
            self._empty += 1
