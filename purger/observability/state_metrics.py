"""A run's metrics from its state (``purger status --format prometheus``): the same names
and labels a live run exposes, for a run that stopped or one read from elsewhere (a cron
host's textfile, a one-off check)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["state_exposition"]


class _StatusCollector(Collector):
    def __init__(self, document: Mapping[str, Any]) -> None:
        self._document = document

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | InfoMetricFamily]:
        doc = self._document
        run = doc.get("run") or {}
        info = InfoMetricFamily("purger_run", "The run recorded in the state.")
        info.add_metric(
            [], {"run_id": doc.get("run_id") or "", "provider": run.get("provider", "")}
        )
        yield info
        status = GaugeMetricFamily(
            "purger_run_status", "1 for where the run stands.", labels=["status"]
        )
        for name in ("running", "paused", "stopped", "done", "failed"):
            status.add_metric([name], float(doc.get("status") == name))
        yield status
        targets = CounterMetricFamily(
            "purger_targets", "Targets settled by outcome.", labels=["outcome"]
        )
        targets.add_metric(["purged"], doc.get("targets_done") or 0)
        targets.add_metric(["failed"], doc.get("failures") or 0)
        yield targets
        shards = GaugeMetricFamily("purger_shards", "Shards by state.", labels=["state"])
        done, total = doc.get("shards_done") or 0, doc.get("shards_total") or 0
        shards.add_metric(["done"], done)
        shards.add_metric(["pending"], total - done)
        yield shards
        rate, eta = doc.get("rate"), doc.get("eta_s")
        yield GaugeMetricFamily(
            "purger_observed_targets_per_second",
            "Targets purged per second, last recorded.",
            value=math.nan if rate is None else rate,
        )
        yield GaugeMetricFamily(
            "purger_eta_seconds",
            "Seconds left while the run goes (NaN: not running, or unknown).",
            value=math.nan if eta is None else eta,
        )


def state_exposition(document: Mapping[str, Any]) -> str:
    """The Prometheus text exposition of ``purger status --json``'s document."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StatusCollector(document))
    return generate_latest(registry).decode()
