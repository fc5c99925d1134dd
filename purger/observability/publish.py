"""A run's metrics published while it goes: the latest snapshot taken on the event loop
every second (the ``/metrics`` page's thread reads that copy, never the live run), the
textfile rewritten and the Pushgateway pushed every tick, and both once more at the end."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio

from purger.engine.monitor import LiveRun, Snapshot
from purger.errors import UnavailableError
from purger.observability.exporters import MetricsServer, push, serve, write_textfile
from purger.observability.metrics import RunLabels, registry_for

__all__ = ["MetricsPublisher", "MetricsSettings"]

#: Seconds between snapshots (and textfile writes).
TICK: Final = 1.0
#: Pushes are network calls: every few ticks is enough for a CronJob's dashboard.
PUSH_EVERY: Final = 5

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSettings:
    """Where a run's metrics go; all ``None``: nowhere (no thread, no file, no call)."""

    port: int | None = None
    address: str = "127.0.0.1"
    #: Seconds the page keeps serving the final figures after the run, so that the last
    #: scrape of a short run sees them.
    linger: float = 0.0
    textfile: Path | None = None
    pushgateway: str | None = None

    @property
    def wanted(self) -> bool:
        return self.port is not None or self.textfile is not None or self.pushgateway is not None


class MetricsPublisher:
    """Publishes one run's metrics as ``settings`` say; :meth:`present` is a presenter.
    ``provider`` and ``purge`` (soft/hard) label the run with its id and mode once it has
    begun. A metrics output that fails is said once, as a warning: it never stops a purge."""

    def __init__(self, settings: MetricsSettings, *, provider: str, purge: str) -> None:
        self._settings = settings
        self._provider = provider
        self._purge = purge
        self._labels: RunLabels | None = None
        self._latest: Snapshot | None = None
        self._registry = registry_for(lambda: self._labels, lambda: self._latest)
        self._server: MetricsServer | None = None
        self._failed: set[str] = set()

    def start(self) -> None:
        """Listen on the metrics port, if one is asked for (before the run starts, so a
        port in use is a usage error and nothing is sent)."""
        if self._settings.port is not None:
            self._server = serve(self._registry, self._settings.address, self._settings.port)

    @property
    def port(self) -> int | None:
        return None if self._server is None else self._server.port

    def close(self) -> None:
        """Stop serving, after ``linger`` seconds of serving the final figures."""
        if self._server is not None:
            time.sleep(self._settings.linger)
            self._server.close()
            self._server = None

    async def present(self, live: LiveRun) -> None:
        """Until cancelled (the run ended): a snapshot every tick, the textfile written and
        the Pushgateway pushed; then the last snapshot, written and pushed once more."""
        self._labels = RunLabels(
            run_id=live.run_id or "", provider=self._provider, purge=self._purge, mode=live.mode
        )
        ticks = 0
        try:
            while True:
                self._latest = live.snapshot()
                await self._publish(push_now=ticks % PUSH_EVERY == 0)
                ticks += 1
                await anyio.sleep(TICK)
        finally:
            self._latest = live.snapshot()
            with anyio.CancelScope(shield=True):
                await self._publish(push_now=True)

    async def _publish(self, *, push_now: bool) -> None:
        settings = self._settings
        if settings.textfile is not None:
            self._guarded("textfile", write_textfile, settings.textfile, self._registry)
        if push_now and settings.pushgateway is not None and self._labels is not None:
            await anyio.to_thread.run_sync(
                self._guarded,
                "pushgateway",
                push,
                settings.pushgateway,
                self._registry,
                self._labels.run_id,
            )

    def _guarded(self, what: str, publish: Callable[..., None], *args: object) -> None:
        try:
            publish(*args)
        except UnavailableError as error:
            if what not in self._failed:  # once: a dead Pushgateway must not flood the log
                self._failed.add(what)
                _log.warning("metrics %s: %s (the purge goes on)", what, error)
