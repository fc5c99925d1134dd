"""The sending path of a run: one batch purged, retried on the run's clock, split until the
targets the provider rejects are isolated, each call to the least busy provider, and the
answer slots that bound the calls answered but not yet committed (the concurrency cap).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from purger.engine.outcome import RunSettings
from purger.engine.retries import RetryNotice
from purger.errors import (
    AuthError,
    ProviderError,
    RateLimitedError,
    RejectedError,
    TransientError,
    UsageError,
)
from purger.model import Batch
from purger.pacing.pacer import Clock, Pacer, PacerClosedError
from purger.pacing.retrying import call_with_retries
from purger.providers.base import Provider
from purger.state.sqlite import Failure

__all__ = ["Sender"]


@dataclass(slots=True)
class _Held:
    """The answer slot a batch holds once a call of it was answered (0 or 1)."""

    count: int = 0


class _GaveUpError(Exception):
    """Retries for one batch are spent: the provider keeps failing; stop, resumable."""

    def __init__(self, error: ProviderError) -> None:
        self.error = error
        super().__init__(str(error))


class Sender:
    """Sends a run's batches; ``stop`` and ``hurry`` are the run's, called when the
    provider keeps failing or refuses the credential."""

    def __init__(
        self,
        *,
        providers: Sequence[Provider],
        pacer: Pacer,
        settings: RunSettings,
        clock: Clock,
        stop: Callable[[str], None],
        hurry: Callable[[], None],
    ) -> None:
        self._providers = tuple(providers)
        self._pacer = pacer
        self._settings = settings
        self._clock = clock
        self._stop = stop
        self._hurry = hurry
        # Calls in flight per provider (one HTTP client each): a call goes to the least
        # busy, so that no client's connection pool has callers waiting in it (httpcore
        # serves waiting callers slowly) while another's has room.
        self._in_flight = [0] * len(self._providers)
        #: A refused credential or a wrong service: every other call would fail alike.
        self.fatal: AuthError | UsageError | None = None
        # A call holds a slot from before it is sent until its answer is committed, so
        # that the answers a kill can lose are at most the concurrency cap (made in
        # open_slots: anyio primitives need a running loop).
        self._answers: anyio.Semaphore | None = None
        self.batches = self.targets = 0
        # Calls the provider accepted but said purged nothing (Varnish counts objects): all
        # of them empty usually means a wrong template or Host, as in PyPI's 2022 outage.
        self.empty = 0
        #: The last failed call that will be retried, and how many retries so far.
        self.last_retry: RetryNotice | None = None
        self.retries = 0

    def open_slots(self) -> anyio.Semaphore:
        """Make the answer slots (when the run starts), one per call of the cap."""
        self._answers = anyio.Semaphore(self._pacer.limit.maximum)
        return self._answers

    async def answered(self, batch: Batch, shard_id: int) -> tuple[list[Failure] | None, int]:
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
            self._stop(f"giving up for now: {gave_up.error}")
            return None
        except (AuthError, UsageError) as error:
            self.fatal = error
            self._stop(str(error))
            self._hurry()  # every other call would be refused too: cancel them now
            return None

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
            calls_before=self.batches,
        )

    async def _call(self, batch: Batch, held: _Held) -> None:
        """One attempt. The batch takes an answer slot just before it is first sent, kept
        (in ``held``) once the provider accepts a call of it, until the writer has
        committed it; so the batches sent and not yet committed never exceed the slots
        (the concurrency cap). The pieces of a split batch share its slot."""
        async with self._pacer.admit(len(batch)):
            if self.fatal is not None:
                raise self.fatal  # refused credentials: send nothing more
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
        self.batches += 1
        self.targets += len(batch)
        if result.purged == 0:
            self.empty += 1
