"""A run without a terminal (cron, CI, a pipe): plain progress lines on stderr, or with
``--log-format json`` one JSON object a line on stdout, so that stdout is all JSON and
stderr keeps the one-line errors. Never colour, never markup.

Events, each with ``event``, ``run_id``, ``at`` (UTC) and ``elapsed_s``: ``start``,
``progress`` (every ``--progress-interval`` seconds), ``decision`` (the health controller
changed the rate or paused), ``shard_done``, ``warning`` (a call retried, purger's own log
warnings, nothing purged), and last ``stop`` (resumable, exit 3) or ``done`` (exit 0 or 1).
docs/cli.md shows a line of each. A closed stdout does not stop the run: it goes on
without its JSON log and says so once on stderr.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Final, TextIO

import anyio
from rich.console import Console

from purger.engine.monitor import LiveRun, RetryView, Snapshot
from purger.engine.run import RunOutcome, RunStatistics
from purger.health.control import Decision
from purger.launch.execute import Presenter
from purger.ui.report import format_duration

__all__ = [
    "JsonLog",
    "TextLog",
    "decision_line",
    "progress_fields",
    "progress_line",
    "retry_fields",
    "retry_line",
    "snapshot_line",
    "warnings_to",
]

#: How often the JSON log looks for shards just done (progress has its own interval).
_SHARD_POLL: Final = 1.0


def _rate(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 3)


def progress_line(
    statistics: RunStatistics, held: Sequence[str] = (), retry: RetryView | None = None
) -> str:
    """``  35 s  20,000 targets in 20,000 calls, 3/8 shards done, 0 failed, 571/s, ETA ...``
    (benches parse the first part), who holds the run (``held``), if anyone does, and the
    calls retried, with the last error while no call has succeeded since."""
    eta = "ETA unknown" if statistics.eta_s is None else f"ETA {format_duration(statistics.eta_s)}"
    line = (
        f"{statistics.elapsed:7.0f} s  {statistics.targets:,} targets in "
        f"{statistics.batches:,} calls, {statistics.shards_done}/{statistics.shards} shards "
        f"done, {statistics.failures} failed, {statistics.rate:,.0f}/s, {eta}"
    )
    line += f", paused by {' and '.join(held)}" if held else ""
    if retry is not None:
        line += f", {retry.retries:,} retries"
        if not retry.answering:
            line += f", no answer: {retry.text}"
    return line


def snapshot_line(snapshot: Snapshot) -> str:
    """A progress line from a live run's snapshot (``purger demo`` without a terminal):
    ``  120 s  30,000 of 102,114 targets, 40/146 shards done, 0 failed, 250/s (allowed
    300/s), ETA ...``, the controller's phase and pressure, and the run's notes."""
    eta = "ETA unknown" if snapshot.eta_s is None else f"ETA {format_duration(snapshot.eta_s)}"
    rate = snapshot.allowed_rate
    allowed = "unbounded" if math.isinf(rate) else f"{rate:,.0f}/s"
    line = (
        f"{snapshot.elapsed:7.0f} s  {snapshot.targets_done:,} of {snapshot.targets_total:,} "
        f"targets, {snapshot.shards_done}/{len(snapshot.shards)} shards done, "
        f"{snapshot.failures} failed, {snapshot.rate_smoothed:,.0f}/s (allowed {allowed}), {eta}"
    )
    if snapshot.controller is not None:
        pressure = "unknown" if snapshot.pressure is None else f"{snapshot.pressure:.2f}"
        line += f"; controller {snapshot.controller.phase}, pressure {pressure}"
    line += "".join(f"; {note}" for note in snapshot.notes)
    return line + (f", paused by {' and '.join(_held(snapshot))}" if _held(snapshot) else "")


def retry_line(retry: RetryView) -> str:
    """``warning: retrying: fastly: ConnectError: ... (host; attempt 2 of 8, next in 1.5 s);
    14 retries so far``."""
    return f"warning: retrying: {retry.text}; {retry.retries:,} retries so far"


class _RetryNews:
    """New retries worth a line: the first at once, then at most one per ``interval`` of
    the run's time (a dead API retried by every worker would flood the log)."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._seen = 0
        self._said_at: float | None = None

    def news(self, snapshot: Snapshot) -> RetryView | None:
        retry = snapshot.retry
        if retry is None or retry.retries == self._seen:
            return None
        if self._said_at is not None and snapshot.elapsed - self._said_at < self._interval:
            return None
        self._seen, self._said_at = retry.retries, snapshot.elapsed
        return retry


class _Relay(logging.Handler):
    """purger's own log warnings (health reads) into the run's output, one line each."""

    def __init__(self, say: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self._say = say

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            text += f": {type(error).__name__}: {error}"
        self._say(" ".join(text.split()))


@contextmanager
def warnings_to(say: Callable[[str], None]) -> Iterator[None]:
    """Send the ``purger`` loggers' warnings to ``say`` for the block, and nowhere else:
    not as plain text on stderr between JSON lines or over the live view."""
    logger = logging.getLogger("purger")
    relay = _Relay(say)
    kept = logger.propagate
    logger.addHandler(relay)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(relay)
        logger.propagate = kept


def decision_line(decision: Decision) -> str:
    pressure = "unknown" if decision.pressure is None else f"{decision.pressure:.2f}"
    return (
        f"control: {decision.action} -> {decision.rate:,.0f} targets/s "
        f"(pressure {pressure}): {decision.reason}"
    )


class TextLog:
    """Progress lines every ``interval`` seconds, and the controller's decisions."""

    def __init__(self, err: Console, interval: float) -> None:
        self._err = err
        self._interval = interval

    def say(self, text: str) -> None:
        self._err.print(text, highlight=False, markup=False, soft_wrap=True)

    def decision(self, decision: Decision) -> None:
        self.say(decision_line(decision))

    async def present(self, live: LiveRun) -> None:
        first = live.snapshot()
        self.say(
            f"run {live.run_id} ({first.mode}): {first.targets_done:,} of "
            f"{first.targets_total:,} targets done, progress every {self._interval:g} s"
        )
        retries = _RetryNews(self._interval)
        with warnings_to(lambda text: self.say(f"warning: {text}")):
            waited = 0.0
            while True:
                step = min(_SHARD_POLL, self._interval)
                await anyio.sleep(step)
                waited += step
                snapshot = live.snapshot()
                retry = retries.news(snapshot)
                if retry is not None:
                    self.say(retry_line(retry))
                if waited >= self._interval:
                    waited = 0.0
                    self.say(progress_line(live.statistics(), _held(snapshot), snapshot.retry))

    def presenter(self) -> Presenter:
        return self.present


def _held(snapshot: Snapshot) -> list[str]:
    pauses = (("the operator", snapshot.operator_paused), ("health", snapshot.health_paused))
    return [who for who, on in pauses if on]


class JsonLog:
    """One JSON object a line on ``out``, flushed at once (a log shipper reads it live)."""

    def __init__(
        self,
        out: TextIO,
        interval: float,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        err: TextIO | None = None,
    ) -> None:
        self._out = out
        self._err = err if err is not None else sys.stderr
        self._reader_gone = False
        self._interval = interval
        self._now = now
        self._monotonic = monotonic
        self._started = monotonic()
        self._live: LiveRun | None = None
        self._done: set[int] = set()

    def emit(self, event: str, **fields: object) -> None:
        live = self._live
        line: dict[str, object] = {
            "event": event,
            "run_id": live.run_id if live is not None else None,
            "at": self._now().isoformat(timespec="milliseconds"),
            "elapsed_s": round(self._monotonic() - self._started, 3),
        }
        line.update(fields)
        if self._reader_gone:
            return
        try:
            self._out.write(json.dumps(line, ensure_ascii=False) + "\n")
            self._out.flush()
        except BrokenPipeError:
            self._lost_reader()

    def _lost_reader(self) -> None:
        """The log's reader went away (``| head -1``, a dead shipper): a purge must not die
        of it. The run goes on without its JSON log, and says so once on stderr."""
        self._reader_gone = True
        try:
            # What is left in the buffer goes nowhere, not to a traceback at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._out.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # no file descriptor (a StringIO): nothing buffered
            pass
        self._err.write(
            "purger: warning: stdout was closed (the JSON log's reader went away): the run "
            "goes on without its log; purger status --state FILE shows its progress\n"
        )
        self._err.flush()

    def decision(self, decision: Decision) -> None:
        self.emit(
            "decision",
            action=str(decision.action),
            rate=_rate(decision.rate),
            pressure=None if decision.pressure is None else round(decision.pressure, 3),
            paused=decision.state.paused,
            reason=decision.reason,
        )

    async def present(self, live: LiveRun) -> None:
        self._live = live
        self._started = self._monotonic()
        first = live.snapshot()
        self._done = {s.id for s in first.shards if s.done}
        self.emit(
            "start",
            mode=first.mode,
            targets_total=first.targets_total,
            targets_done=first.targets_done,
            shards_total=len(first.shards),
            shards_done=len(self._done),
            rate_ceiling=_rate(first.max_rate),
            concurrency=first.concurrency,
            signals=[s.name for s in first.signals],
        )
        retries = _RetryNews(self._interval)
        try:
            with warnings_to(lambda text: self.emit("warning", message=text)):
                waited = 0.0
                while True:
                    step = min(_SHARD_POLL, self._interval)
                    await anyio.sleep(step)
                    waited += step
                    snapshot = live.snapshot()
                    self._shards_done(snapshot)
                    retry = retries.news(snapshot)
                    if retry is not None:
                        self.emit("warning", **retry_fields(retry))
                    if waited >= self._interval:
                        waited = 0.0
                        self.emit("progress", **progress_fields(live.snapshot()))
        finally:
            # Cancelled when the run ends: the shards it finished since the last look.
            self._shards_done(live.snapshot())

    def presenter(self) -> Presenter:
        return self.present

    def _shards_done(self, snapshot: Snapshot) -> None:
        for shard in snapshot.shards:
            if shard.done and shard.id not in self._done:
                self._done.add(shard.id)
                self.emit(
                    "shard_done",
                    shard=shard.id,
                    start=shard.start,
                    limit=shard.limit,
                    targets=shard.targets_done,
                )

    def end(self, outcome: RunOutcome, exit_code: int, failures: int, targets: int) -> None:
        """The last line: ``stop`` (resumable) or ``done``."""
        statistics = outcome.statistics
        common: dict[str, object] = {
            "status": str(outcome.status),
            "targets_done": targets,
            "failures": failures,
            "calls": statistics.batches,
            "exit_code": exit_code,
        }
        if outcome.reason is not None:
            self.emit("stop", reason=outcome.reason, resumable=True, **common)
        else:
            self.emit("done", **common)


def retry_fields(retry: RetryView) -> dict[str, object]:
    """A ``warning`` event for a call that failed and is retried."""
    return {
        "message": f"retrying: {retry.text}",
        "kind": "retry",
        "host": retry.host,
        "error": retry.error,
        "attempt": retry.attempt,
        "attempts": retry.attempts,
        "next_retry_s": round(retry.next_in_s, 3),
        "retries": retry.retries,
    }


def progress_fields(snapshot: Snapshot) -> dict[str, object]:
    """A ``progress`` event: counts, rates, pressure, who holds the run, the controller,
    ETA, retries (the last one's error), and the shards being purged now (with their
    counts)."""
    controller, retry = snapshot.controller, snapshot.retry
    return {
        "targets_done": snapshot.targets_done,
        "targets_total": snapshot.targets_total,
        "failures": snapshot.failures,
        "shards_done": snapshot.shards_done,
        "shards_total": len(snapshot.shards),
        "rate": round(snapshot.rate_smoothed, 3),
        "rate_now": round(snapshot.rate_now, 3),
        "allowed_rate": _rate(snapshot.allowed_rate),
        "rate_ceiling": _rate(snapshot.max_rate),
        "in_flight": snapshot.in_flight,
        "pressure": None if snapshot.pressure is None else round(snapshot.pressure, 3),
        "paused": {"operator": snapshot.operator_paused, "health": snapshot.health_paused},
        "controller": None if controller is None else controller.phase,
        "eta_s": None if snapshot.eta_s is None else round(snapshot.eta_s, 1),
        "retries": 0 if retry is None else retry.retries,
        "last_retry": None if retry is None else retry.text,
        "api_answering": None if retry is None else retry.answering,
        "shards": [
            {"id": s.id, "targets_done": s.targets_done, "targets_total": s.targets_total}
            for s in snapshot.shards
            if not s.done and s.targets_done > 0
        ],
    }
