"""The one checkpoint writer of a run: what the workers confirmed, committed in one
transaction (group commit) as fast as the store takes it, then the answer slots those
confirmations held are freed. A state that cannot be written (a database out of reach, a
lease lost) is handed on as a :class:`StateError` (resumable), and nothing more is committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from purger.errors import StateError, UnavailableError
from purger.state.sqlite import Failure, ShardProgress

__all__ = ["Write", "write_checkpoints"]

Commit = Callable[[list[ShardProgress], list[Failure], list[Failure]], None]


@dataclass(slots=True)
class Write:
    """One confirmation for the writer: a shard's progress, failures, retried failures,
    and the answer slots (the run's concurrency cap) it frees once committed."""

    progress: ShardProgress | None = None
    failures: list[Failure] = field(default_factory=list)
    retried: list[Failure] = field(default_factory=list)
    slots: int = 0


async def write_checkpoints(
    receive: MemoryObjectReceiveStream[Write],
    *,
    commit: Commit,
    failing: Callable[[], bool],
    on_error: Callable[[StateError], None],
    answers: anyio.Semaphore,
    on_loop: bool,
) -> None:
    """Commit everything waiting at once (``commit(updates, failures, retried)``), until
    the stream closes; once ``failing``, only free the slots. ``on_loop``: commit on the
    event loop, not in a thread (a store in memory, in virtual time)."""
    async with receive:
        async for first in receive:
            updates, failures, retried, slots = _gather(first, receive)
            if not failing():
                call = partial(commit, list(updates.values()), failures, retried)
                try:
                    if on_loop:
                        call()
                    else:
                        await anyio.to_thread.run_sync(call)
                except UnavailableError as error:
                    # A database's trouble or a lease lost: stop, resumable.
                    on_error(
                        error
                        if isinstance(error, StateError)
                        else StateError(str(error), resumable=True)
                    )
            for _ in range(slots):
                answers.release()


def _gather(
    first: Write, receive: MemoryObjectReceiveStream[Write]
) -> tuple[dict[int, ShardProgress], list[Failure], list[Failure], int]:
    """``first`` and every confirmation already waiting behind it."""
    updates: dict[int, ShardProgress] = {}
    failures: list[Failure] = []
    retried: list[Failure] = []
    slots = 0
    write: Write | None = first
    while write is not None:
        if write.progress is not None:
            updates[write.progress.shard_id] = write.progress
        failures.extend(write.failures)
        retried.extend(write.retried)
        slots += write.slots
        try:
            write = receive.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream):
            write = None
    return updates, failures, retried, slots
