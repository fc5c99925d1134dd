"""``purger run`` on a terminal: the live view, redrawn twice a second, and the keys.

Keys are read from the terminal in cbreak mode (one key at a time, no echo; Ctrl-C still
sends SIGINT, the same graceful stop as ``q``); the terminal's settings are restored on
every way out, an error or a cancellation included. The pure part, what a key does to a
:class:`~purger.engine.monitor.LiveRun`, is :func:`apply_key`.
"""

from __future__ import annotations

import os
import termios
import tty
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Final

import anyio
from rich.console import Console
from rich.live import Live

from purger.cli.logs import warnings_to
from purger.engine.monitor import LiveRun
from purger.launch.execute import Presenter
from purger.ui.live_view import format_rate, live_view

__all__ = ["STOPPED_BY_OPERATOR", "LiveView", "apply_key", "cbreak", "terminal_keys"]

#: Seconds between redraws: often enough to watch, cheap on two shared cores.
_REDRAW: Final = 0.5
STOPPED_BY_OPERATOR: Final = "stopped by the operator (q)"


def apply_key(key: str, live: LiveRun) -> str | None:
    """Do what ``key`` asks and say what it did (``None``: not a key of ours)."""
    if key in ("p", "P"):
        if live.toggle_pause():
            return "paused by the operator: calls in flight finish, nothing new is sent; p resumes"
        if live.snapshot().health_paused:
            return "operator pause lifted; still paused by health until it recovers"
        return "resumed"
    if key in ("+", "="):
        return f"rate ceiling {format_rate(live.faster())}"
    if key in ("-", "_"):
        return f"rate ceiling {format_rate(live.slower())}"
    if key in ("q", "Q"):
        again = live.snapshot().stopping is not None
        live.stop(STOPPED_BY_OPERATOR)
        if again:
            return "stopping now: calls in flight are cancelled (a resume redoes them)"
        return "stopping: finishing calls in flight, then checkpoint (q again: do not wait)"
    return None


@contextmanager
def cbreak(fd: int) -> Iterator[None]:
    """The terminal at ``fd`` in cbreak mode for the block, restored however it ends."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def terminal_keys(fd: int) -> AsyncIterator[str]:
    """Keys as they are pressed (the terminal must be in cbreak mode); ends at EOF."""
    while True:
        await anyio.wait_readable(fd)
        data = os.read(fd, 64)
        if not data:
            return
        for key in data.decode(errors="ignore"):
            yield key


class LiveView:
    """The live view on ``console``, with keys from ``keys`` (``None``: no keys)."""

    def __init__(self, console: Console, title: str, keys: AsyncIterator[str] | None) -> None:
        self._console = console
        self._title = title
        self._keys = keys
        self._message: str | None = None

    def presenter(self) -> Presenter:
        return self.present

    def _warn(self, text: str) -> None:
        self._message = f"warning: {text}"  # on the view: a plain stderr line would tear it

    async def present(self, live: LiveRun) -> None:
        with (
            warnings_to(self._warn),
            Live(console=self._console, auto_refresh=False, transient=False) as view,
        ):

            def draw() -> None:
                frame = live_view(
                    live.snapshot(),
                    title=self._title,
                    keys=self._keys is not None,
                    message=self._message,
                )
                view.update(frame, refresh=True)

            async def read_keys(keys: AsyncIterator[str]) -> None:
                async for key in keys:
                    said = apply_key(key, live)
                    if said is not None:
                        self._message = said
                        draw()

            try:
                async with anyio.create_task_group() as tasks:
                    if self._keys is not None:
                        tasks.start_soon(read_keys, self._keys)
                    while True:
                        draw()
                        await anyio.sleep(_REDRAW)
            finally:
                draw()  # cancelled when the run ends: its last frame stays on the screen
