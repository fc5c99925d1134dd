"""A run without a terminal (cron, CI, a pipe): plain progress lines on stderr, or with
``--log-format json`` one JSON object a line on stdout, so that stdout is all JSON and
stderr keeps the one-line errors. Never colour, never markup.

Events, each with ``event``, ``run_id``, ``at`` (UTC) and ``elapsed_s``: ``start``,
``progress`` (every ``--progress-interval`` seconds), ``decision`` (the health controller
changed the rate or paused), ``shard_done``, ``warning``, and last ``stop`` (resumable,
exit 3) or ``done`` (exit 0 or 1). docs/cli.md shows a line of each.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final, TextIO

import anyio
from rich.console import Console

from purger.engine.monitor import LiveRun, Snapshot
from purger.engine.run import RunOutcome, RunStatistics
from purger.health.control import Decision
from purger.launch.build import Presenter
from purger.ui.report import format_duration

__all__ = ["JsonLog", "TextLog", "decision_line", "progress_line"]

#: How often the JSON log looks for shards just done (progress has its own interval).
_SHARD_POLL: Final = 1.0


def _rate(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 3)


def progress_line(statistics: RunStatistics, held: Sequence[str] = ()) -> str:
    """``  35 s  20,000 targets in 20,000 calls, 3/8 shards done, 0 failed, 571/s, ETA ...``
    (benches parse the first part), and who holds the run (``held``), if anyone does."""
    eta = "ETA unknown" if statistics.eta_s is None else f"ETA {format_duration(statistics.eta_s)}"
    line = (
        f"{statistics.elapsed:7.0f} s  {statistics.targets:,} targets in "
        f"{statistics.batches:,} calls, {statistics.shards_done}/{statistics.shards} shards "
        f"done, {statistics.failures} failed, {statistics.rate:,.0f}/s, {eta}"
    )
    return line + (f", paused by {' and '.join(held)}" if held else "")


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
        while True:
            await anyio.sleep(self._interval)
            snapshot = live.snapshot()
            held = [
                who
                for who, on in (
                    ("the operator", snapshot.operator_paused),
                    ("health", snapshot.health_paused),
                )
                if on
            ]
            self.say(progress_line(live.statistics(), held))

    def presenter(self) -> Presenter:
        return self.present


class JsonLog:
    """One JSON object a line on ``out``, flushed at once (a log shipper reads it live)."""

    def __init__(
        self,
        out: TextIO,
        interval: float,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._out = out
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
        self._out.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._out.flush()

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
        try:
            waited = 0.0
            while True:
                step = min(_SHARD_POLL, self._interval)
                await anyio.sleep(step)
                waited += step
                self._shards_done(live.snapshot())
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


def progress_fields(snapshot: Snapshot) -> dict[str, object]:
    """A ``progress`` event: counts, rates, pressure, who holds the run, the controller,
    ETA, and the shards being purged now (with their counts)."""
    controller = snapshot.controller
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
        "shards": [
            {"id": s.id, "targets_done": s.targets_done, "targets_total": s.targets_total}
            for s in snapshot.shards
            if not s.done and s.targets_done > 0
        ],
    }
