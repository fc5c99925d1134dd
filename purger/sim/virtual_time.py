"""Virtual time: an asyncio event loop whose clock jumps to the next timer when nothing is
ready, so an hour-long purge against the simulated CDN runs in seconds.

Nothing is patched: the loop is handed to ``anyio.run`` as its ``loop_factory``, and
everything that reads the loop's clock (``anyio.sleep``, ``move_on_after``, the pacer's
:class:`~purger.pacing.pacer.AnyioClock`) sees virtual seconds. Real I/O still works: before a
jump the loop polls its file descriptors for a moment, so a thread finishing a SQLite
commit, or a signal, is not missed.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

import anyio

__all__ = ["VirtualTimeLoop", "run_in_virtual_time"]

T = TypeVar("T")

#: Real seconds to wait for I/O before the clock jumps: long enough for a thread's
#: wake-up to arrive, short enough that a thousand jumps cost about a second.
_REAL_POLL: Final = 0.0005


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that, instead of sleeping until the next timer, advances the loop's
    virtual clock to it (after a short real poll for I/O)."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            return super().select(0)
        ready = super().select(_REAL_POLL)
        if ready or timeout is None:
            # Nothing is scheduled: only real I/O (a thread, a signal) can wake the loop.
            return ready if ready else super().select(None)
        assert self.loop is not None  # noqa: S101 - set by VirtualTimeLoop
        self.loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` starts at 0 and moves only when it has to."""

    def __init__(self) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self
        self._virtual_now = 0.0

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds


def run_in_virtual_time(
    func: Callable[..., Awaitable[T]], *args: object, options: Mapping[str, Any] | None = None
) -> T:
    """``anyio.run(func, *args)`` on a :class:`VirtualTimeLoop`."""
    backend_options = {"loop_factory": VirtualTimeLoop, **(options or {})}
    return anyio.run(func, *args, backend="asyncio", backend_options=backend_options)
