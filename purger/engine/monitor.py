"""A running purge as an operator's tools see it: a read-only :class:`Snapshot` (progress
per shard, rates, calls in flight, each health signal, the controller's state and last
decision, ETA, failures) and the operator's levers on it (:class:`LiveRun`: pause, the rate
ceiling, a graceful stop).

Nothing here renders: the live view, the progress lines and the JSON log lines all read
the same snapshot, so what a cron job logs is what an operator sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import anyio

from purger.engine.retries import RetryNotice
from purger.engine.run import Run, RunStatistics, ShardState
from purger.health.control import Action, Decision, phase
from purger.health.governor import PAUSED_BY_HEALTH, Governor
from purger.health.signals import Sample
from purger.pacing.pacer import Pacer

__all__ = [
    "FASTER",
    "OPERATOR",
    "SLOWER",
    "ControllerView",
    "LiveRun",
    "RetryView",
    "SignalView",
    "Snapshot",
]

#: The pacer hold an operator's pause takes; the health's is ``PAUSED_BY_HEALTH``.
OPERATOR: Final = "operator"
#: What one ``+`` or ``-`` does to the rate ceiling.
FASTER: Final = 1.25
SLOWER: Final = 0.8


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalView:
    """One health signal's last reading, with its age now (a stale signal shows it)."""

    name: str
    value: float | None
    limit: float
    critical: float | None
    pressure: float | None
    age: float | None
    error: str | None = None

    @classmethod
    def of(cls, sample: Sample, now: float) -> SignalView:
        return cls(
            name=sample.signal.name,
            value=sample.value,
            limit=sample.signal.limit,
            critical=sample.signal.critical,
            pressure=sample.pressure,
            age=sample.age(now),
            error=sample.error,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerView:
    """The health controller: its state in words, the last decision that changed
    something (and how long ago), and what it decided at its last tick."""

    phase: str
    rate: float
    last_change: Decision | None
    last_change_age: float | None
    latest: Decision | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryView:
    """The last failed call that is retried: which host, what error, which attempt of how
    many, when the next (seconds from now), how long ago; ``answering``: a call has
    succeeded since (the API answers again, or only some calls fail)."""

    error: str
    host: str | None
    attempt: int
    attempts: int
    next_in_s: float
    age_s: float
    answering: bool
    #: Retries of calls by this execution so far.
    retries: int

    @property
    def text(self) -> str:
        """``fastly: ConnectError: ... (api.fastly.com; attempt 2 of 8, next in 1.5 s)``."""
        where = f"{self.host}; " if self.host else ""
        return (
            f"{self.error} ({where}attempt {self.attempt} of {self.attempts}, "
            f"next in {self.next_in_s:.1f} s)"
        )

    @classmethod
    def of(cls, notice: RetryNotice, now: float, calls: int, retries: int) -> RetryView:
        return cls(
            error=notice.error,
            host=notice.host,
            attempt=notice.attempt,
            attempts=notice.attempts,
            next_in_s=notice.next_in(now),
            age_s=max(0.0, now - notice.at),
            answering=calls > notice.calls_before,
            retries=retries,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """What a live run looks like at one moment. Rates are targets per second."""

    run_id: str | None
    #: ``run``, ``resume``, ``retry-failed`` or ``simulation``.
    mode: str
    elapsed: float
    targets_done: int
    targets_total: int
    failures: int
    #: ``target: reason`` of the last failure recorded, for the operator's eye.
    last_failure: str | None
    #: Every shard, heaviest first; ``()`` for a retry of failed targets.
    shards: tuple[ShardState, ...]
    rate_now: float
    rate_smoothed: float
    #: What the pacer allows now: the ceiling, or less when health says so.
    allowed_rate: float
    #: The operator's ceiling (``--rate``, moved by ``+``/``-``); inf: unbounded.
    max_rate: float
    min_rate: float
    in_flight: int
    concurrency: int
    signals: tuple[SignalView, ...]
    pressure: float | None
    controller: ControllerView | None
    operator_paused: bool
    health_paused: bool
    #: Why the run is stopping (it drains calls in flight), once it is.
    stopping: str | None
    eta_s: float | None
    #: Lines the run's owner adds (the demo: the simulated origin's capacity).
    notes: tuple[str, ...] = ()
    #: The last call that failed and is retried (``None``: none yet).
    retry: RetryView | None = None

    @property
    def shards_done(self) -> int:
        return sum(1 for shard in self.shards if shard.done)

    @property
    def health_reason(self) -> str | None:
        """Why health paused the run, while it does, and where the resume stands:
        ``paused: origin p99 past the critical limit (healthy for 10 s of 30)``."""
        if not self.health_paused or self.controller is None:
            return None
        latest, change = self.controller.latest, self.controller.last_change
        if change is None or change.action is not Action.PAUSE:
            return latest.reason if latest is not None else "paused by health"
        if latest is None or latest is change or latest.reason == change.reason:
            return change.reason
        return f"{change.reason} ({latest.reason.removeprefix('paused: ')})"


class LiveRun:
    """A running :class:`Run`, its pacer and its governor, seen and steered by an operator.

    ``stop`` is the event ``execute`` watches: :meth:`stop` is the same graceful path as
    SIGINT, and a second stop stops waiting for the calls in flight.
    """

    def __init__(
        self,
        *,
        run: Run,
        pacer: Pacer,
        governor: Governor | None,
        stop: anyio.Event,
        min_rate: float,
        run_id: str | None = None,
        mode: str = "run",
        earlier_failures: int = 0,
    ) -> None:
        self._run = run
        self._pacer = pacer
        self._governor = governor
        self._stop = stop
        self._min_rate = min_rate
        self._max_rate = governor.settings.max_rate if governor else pacer.targets.rate
        self._earlier_failures = earlier_failures
        self.run_id = run_id
        self.mode = mode

    @property
    def stop_event(self) -> anyio.Event:
        """What the run watches for a stop (set by :meth:`stop`)."""
        return self._stop

    @property
    def operator_paused(self) -> bool:
        return OPERATOR in self._pacer.holds

    @property
    def max_rate(self) -> float:
        return self._max_rate

    def pause(self) -> None:
        """Hold new calls; calls in flight finish. A health pause is left alone."""
        self._pacer.hold(OPERATOR)

    def resume(self) -> None:
        """Lift the operator's pause only: a pause the health caused stays."""
        self._pacer.release(OPERATOR)

    def toggle_pause(self) -> bool:
        """Pause, or resume if paused; whether the operator's pause is on now."""
        if self.operator_paused:
            self.resume()
        else:
            self.pause()
        return self.operator_paused

    def faster(self) -> float:
        """Raise the ceiling by a quarter (an unbounded one stays unbounded)."""
        return self.set_max_rate(self._max_rate * FASTER)

    def slower(self) -> float:
        """Lower the ceiling by a fifth; from unbounded, start from the rate seen now."""
        base = self._max_rate
        if math.isinf(base):
            statistics = self._run.statistics()
            base = max(statistics.rate_now, statistics.rate)
            if base <= 0:
                return self._max_rate  # nothing seen yet to slow down from
        return self.set_max_rate(base * SLOWER)

    def set_max_rate(self, rate: float) -> float:
        """Move the ceiling, never below ``min_rate``; the controller's maximum follows, and
        without health signals the pacer's rate is the ceiling. The ceiling now."""
        rate = max(self._min_rate, rate)
        self._max_rate = rate
        if self._governor is not None:
            self._governor.set_max_rate(rate)
        else:
            self._pacer.targets.rate = rate
        return rate

    def stop(self, reason: str) -> None:
        """A graceful stop (as SIGINT): no new calls, those in flight finish, checkpoint,
        resumable. Asked again, it stops waiting for the calls in flight."""
        if self._stop.is_set():
            self._run.hurry()
        self._run.stop(reason)
        self._stop.set()

    def statistics(self) -> RunStatistics:
        """The engine's own counters (calls, targets sent by this execution)."""
        return self._run.statistics()

    def snapshot(self) -> Snapshot:
        run, pacer, governor = self._run, self._pacer, self._governor
        statistics = run.statistics()
        pacing = pacer.statistics()
        failures = self._earlier_failures + statistics.failures
        last = run.last_failure
        if run.retrying is None:
            shards = run.shards_now()
            done = sum(s.targets_done for s in shards)
            total = sum(s.targets_total for s in shards)
        else:
            shards = ()
            done, total = run.settled - statistics.failures, run.retrying
        signals: tuple[SignalView, ...] = ()
        controller = None
        pressure = None
        if governor is not None:
            now = governor.wall_time()
            signals = tuple(SignalView.of(sample, now) for sample in governor.samples)
            pressure = governor.last.pressure if governor.last is not None else None
            at = governor.last_change_at
            controller = ControllerView(
                phase=phase(governor.state),
                rate=governor.state.rate,
                last_change=governor.last_change,
                last_change_age=None if at is None else pacer.clock.now() - at,
                latest=governor.last,
            )
        return Snapshot(
            run_id=self.run_id,
            mode=self.mode,
            elapsed=statistics.elapsed,
            targets_done=done,
            targets_total=total,
            failures=failures,
            last_failure=None if last is None else f"{last.target}: {last.reason}",
            shards=shards,
            rate_now=statistics.rate_now,
            rate_smoothed=statistics.rate,
            allowed_rate=pacing.rate,
            max_rate=self._max_rate,
            min_rate=self._min_rate,
            in_flight=pacing.in_flight,
            concurrency=pacing.concurrency_limit,
            signals=signals,
            pressure=pressure,
            controller=controller,
            operator_paused=OPERATOR in pacing.holds,
            health_paused=PAUSED_BY_HEALTH in pacing.holds,
            stopping=run.stopping,
            eta_s=statistics.eta_s,
            retry=None
            if run.last_retry is None
            else RetryView.of(run.last_retry, pacer.clock.now(), statistics.batches, run.retries),
        )
