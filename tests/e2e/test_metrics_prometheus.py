"""purger's own metrics scraped by a real Prometheus during a purge of a real Varnish: the
counter Prometheus stored equals what the run purged, the allowed-rate gauge follows the
controller's decisions, and every query of the Grafana dashboard returns data."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from bench.cluster import Cluster, find_missing, free_port, run_cluster
from tests.e2e.conftest import require

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
KEYS = 30_000
FETCHES = "sum(rate(origin_project_requests_total[5s])) or vector(0)"


@pytest.fixture
def scraped() -> Iterator[tuple[Cluster, int]]:
    """Origin + Varnish + Prometheus scraping the origin and purger's metrics port."""
    require(find_missing(prometheus=True))
    port = free_port()
    with run_cluster(prometheus=True, extra_jobs={"purger": [f"127.0.0.1:{port}"]}) as cluster:
        yield cluster, port


def unix(at: str) -> float:
    return datetime.fromisoformat(at).timestamp()


def test_prometheus_sees_the_purge_as_it_was(scraped, tmp_path):
    cluster, port = scraped
    prometheus = cluster.prometheus
    assert prometheus is not None
    names = tmp_path / "names.txt"
    names.write_text("".join(f"metric-{i:05d}\n" for i in range(KEYS)))
    signal = (
        f"name=origin fetches,source=prometheus,url={prometheus.url},limit=100000,"
        f"kind=saturation,query={FETCHES}"
    )
    done = subprocess.run(
        [
            sys.executable, "-m", "purger", "run", str(names), "--yes",
            "--provider", "varnish", "--endpoint", cluster.varnish.url,
            "--key-template", "project/{name}", "--state", str(tmp_path / "s.sqlite"),
            "--rate", "4000", "--initial-rate", "1000", "--feedback-delay", "2", "--tick", "1",
            "--signal", signal, "--log-format", "json",
            "--metrics-port", str(port), "--metrics-linger", "3",
        ],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    start, last = unix(events[0]["at"]), events[-1]
    assert last["event"] == "done"
    end = unix(last["at"])
    # During the linger the page served the final figures: a scrape a second after the end.
    [(_, purged)] = prometheus.query(
        'purger_targets_total{job="purger",outcome="purged"}', at=end + 2
    )
    assert purged == last["targets_done"] == KEYS
    [(info, _)] = prometheus.query('purger_run_info{job="purger"}', at=end + 2)
    assert info["run_id"] == last["run_id"]
    assert info["provider"] == "varnish"

    allowed = prometheus.query_range(
        'purger_allowed_targets_per_second{job="purger"}', start, end + 2, step=0.5
    )
    decisions = [
        (unix(e["at"]), e["rate"]) for e in events if e["event"] == "decision" and e["rate"]
    ]
    assert decisions, "the controller decided nothing"
    # Each rate the controller held for 3 s or more shows on the gauge within that time.
    held = [
        (at, rate)
        for (at, rate), following in zip(decisions, [*decisions[1:], (end, None)], strict=True)
        if following[0] - at >= 3
    ]
    assert held
    for at, rate in held:
        seen = [value for when, value in allowed if at <= when <= at + 3]
        assert any(abs(value - rate) <= 1e-6 * rate for value in seen), (at, rate, seen)

    dashboard = json.loads((ROOT / "docs" / "grafana" / "purger.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(queries) >= 8
    for query in queries:
        assert prometheus.query(query, at=end + 1), query
