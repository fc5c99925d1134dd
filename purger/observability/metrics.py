"""purger's own Prometheus metrics, read from a live run's :class:`Snapshot`.

A custom collector rather than counters the engine bumps: the snapshot already holds every
figure (the live view and the JSON log read the same one), so the run's hot path pays
nothing and a scrape computes the families from the latest snapshot. Labels are bounded:
the run's constants, a signal's configured name, a shard state, a pause cause; never a
name, key or URL.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from purger.engine.monitor import Snapshot

__all__ = ["Labels", "RunLabels", "SnapshotCollector", "registry_for"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunLabels:
    """What does not change during a run: shown once, in ``purger_run_info``."""

    run_id: str
    provider: str
    #: ``soft`` or ``hard``.
    purge: str
    #: ``run``, ``resume``, ``retry-failed``, ``simulation``.
    mode: str


#: The run's labels, or how to read them once the run has begun (``None``: not yet).
Labels = RunLabels | Callable[[], RunLabels | None]


class SnapshotCollector(Collector):
    """Metric families from the latest snapshot ``read()`` returns (``None``: not started,
    and only ``purger_run_info`` is exposed); nothing before the run's labels are known."""

    def __init__(self, labels: Labels, read: Callable[[], Snapshot | None]) -> None:
        self._labels = labels
        self._read = read

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registering must not take a snapshot of a run that has not started.
        return iter(())

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | InfoMetricFamily]:
        labels = self._labels if isinstance(self._labels, RunLabels) else self._labels()
        if labels is None:
            return
        info = InfoMetricFamily("purger_run", "The run being purged.")
        info.add_metric(
            [],
            {
                "run_id": labels.run_id,
                "provider": labels.provider,
                "purge": labels.purge,
                "mode": labels.mode,
            },
        )
        yield info
        snapshot = self._read()
        if snapshot is not None:
            yield from _families(snapshot)


def registry_for(labels: Labels, read: Callable[[], Snapshot | None]) -> CollectorRegistry:
    """A registry of its own (not the process-global one) holding the run's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(labels, read))
    return registry


def _gauge(name: str, documentation: str, value: float, unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value, unit=unit)


def _families(s: Snapshot) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    targets = CounterMetricFamily(
        "purger_targets", "Targets settled by outcome.", labels=["outcome"]
    )
    targets.add_metric(["purged"], s.targets_done)
    targets.add_metric(["failed"], s.failures)
    yield targets
    yield _gauge("purger_targets_planned", "Targets the run will purge in all.", s.targets_total)
    yield _gauge("purger_elapsed_seconds", "Seconds since the run started.", s.elapsed)
    yield _gauge("purger_observed_targets_per_second", "Targets purged per second now.", s.rate_now)
    yield _gauge(
        "purger_allowed_targets_per_second",
        "Targets per second the pacer allows now.",
        s.allowed_rate,
    )
    yield _gauge(
        "purger_ceiling_targets_per_second", "The operator's ceiling (+Inf: none).", s.max_rate
    )
    yield _gauge("purger_calls_in_flight", "API calls under way.", s.in_flight)
    yield _gauge("purger_concurrency_limit", "Calls allowed in flight now.", s.concurrency)
    eta = math.nan if s.eta_s is None else s.eta_s
    yield _gauge("purger_eta_seconds", "Seconds left at the current rate (NaN: unknown).", eta)
    paused = GaugeMetricFamily("purger_paused", "1 while paused, by cause.", labels=["cause"])
    paused.add_metric(["health"], float(s.health_paused))
    paused.add_metric(["operator"], float(s.operator_paused))
    yield paused
    shards = GaugeMetricFamily("purger_shards", "Shards by state.", labels=["state"])
    done = s.shards_done
    shards.add_metric(["done"], done)
    shards.add_metric(["pending"], len(s.shards) - done)
    yield shards
    yield from _signal_families(s)


def _signal_families(s: Snapshot) -> Iterator[GaugeMetricFamily]:
    value = GaugeMetricFamily(
        "purger_signal_value", "A health signal's last reading.", labels=["signal"]
    )
    limit = GaugeMetricFamily("purger_signal_limit", "A health signal's limit.", labels=["signal"])
    pressure = GaugeMetricFamily(
        "purger_signal_pressure", "A signal's value / limit (1: at its limit).", labels=["signal"]
    )
    for signal in s.signals:
        value.add_metric([signal.name], math.nan if signal.value is None else signal.value)
        limit.add_metric([signal.name], signal.limit)
        pressure.add_metric([signal.name], math.nan if signal.pressure is None else signal.pressure)
    yield value
    yield limit
    yield pressure
