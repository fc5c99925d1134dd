"""A run's rate and ETA, as the operator sees them: the observed rate smoothed over about a
minute, the time left at it, and the points of the rate history ``purger status`` shows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from anyio.streams.memory import MemoryObjectSendStream

from purger.engine.checkpoints import Write
from purger.engine.retries import RetryNotice
from purger.pacing.pacer import Clock, Pacer
from purger.state.sqlite import RatePoint

__all__ = ["RateEstimate"]

#: Seconds between ETA estimates, and the weight of the newest rate in the smoothing.
_ETA_EVERY: Final = 5.0
_ETA_SMOOTHING: Final = 0.2
#: Seconds between the rate points committed to the state (``purger status``'s history).
_HISTORY_EVERY: Final = 10.0


class RateEstimate:
    """The rate and ETA of one run, from the targets it sent (``targets``) and what each
    shard has left (``left``)."""

    def __init__(
        self,
        *,
        clock: Clock,
        pacer: Pacer,
        workers: int,
        targets: Callable[[], int],
        left: Callable[[], list[int]],
    ) -> None:
        self._clock = clock
        self._pacer = pacer
        self._workers = workers
        self._targets = targets
        self._left = left
        self.rate = self.rate_now = 0.0
        self.eta: float | None = None
        self._points: list[RatePoint] = []

    def take_points(self) -> list[RatePoint]:
        """The rate points gathered since the last call."""
        points, self._points = self._points, []
        return points

    def status(self, targets: int, retry: RetryNotice | None) -> dict[str, str]:
        """What the state keeps of them for ``purger status``."""
        return {
            "rate": f"{self.rate:.3f}",
            "eta_s": "" if self.eta is None else f"{self.eta:.1f}",
            "targets": str(targets),
            # ``purger status`` shows it: an unreachable API is the first thing to see.
            "last_error": "" if retry is None else f"{retry.seen_at} {retry.describe()}",
        }

    async def keep(self, checkpoints: MemoryObjectSendStream[Write]) -> None:
        """Every few seconds: the observed rate (smoothed over about a minute) and the time
        left at it, from what each shard has left; the tail counts (the biggest shard left
        goes no faster than one worker's share of the rate). Every few of them, a point of
        the rate history, committed even while nothing else is (a pause)."""
        sent, at = self._targets(), self._clock.now()
        last_point = at
        while True:
            await self._clock.sleep(_ETA_EVERY)
            now = self._clock.now()
            instant = (self._targets() - sent) / (now - at) if now > at else 0.0
            sent, at = self._targets(), now
            weight = _ETA_SMOOTHING if self.rate else 1.0
            self.rate = weight * instant + (1 - weight) * self.rate
            self.rate_now = instant
            left = self._left()
            if not left:
                self.eta = 0.0
            elif self.rate <= 0:
                self.eta = None
            else:
                busy = max(1, min(self._workers, sum(1 for n in left if n > 0)))
                self.eta = max(sum(left) / self.rate, max(left) * busy / self.rate)
            if now - last_point >= _HISTORY_EVERY:
                last_point = now
                self._points.append(
                    RatePoint(
                        rate=self.rate,
                        allowed=self._pacer.targets.rate,
                        targets=self._targets(),
                        held=self._pacer.holds,
                    )
                )
                await checkpoints.send(Write())
