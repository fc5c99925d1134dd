"""purger's own metrics: the families a snapshot makes, in Prometheus' text format as
node_exporter and Prometheus parse it, and the three ways out (a page, a textfile)."""

from __future__ import annotations

import math
import threading
from dataclasses import replace

import httpx
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from purger.observability.exporters import serve, write_textfile
from purger.observability.metrics import RunLabels, registry_for
from tests.ui.test_live_view import SNAPSHOT

LABELS = RunLabels(run_id="0123456789ab", provider="fastly", purge="soft", mode="run")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a parsed exposition, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_snapshot_becomes_the_documented_families():
    """The figures of the snapshot come out under their names, with bounded labels."""
    got = samples(generate_latest(registry_for(LABELS, lambda: SNAPSHOT)).decode())
    assert got[("purger_targets_total", (("outcome", "purged"),))] == 5_300
    assert got[("purger_targets_total", (("outcome", "failed"),))] == 2
    assert got[("purger_targets_planned", ())] == 9_000
    assert got[("purger_allowed_targets_per_second", ())] == 350.0
    assert got[("purger_observed_targets_per_second", ())] == 312.0
    assert got[("purger_calls_in_flight", ())] == 3
    assert got[("purger_shards", (("state", "done"),))] == 2
    assert got[("purger_shards", (("state", "pending"),))] == 3
    assert got[("purger_signal_pressure", (("signal", "origin p99"),))] == 0.9
    assert math.isnan(got[("purger_signal_value", (("signal", "origin errors"),))])
    assert got[("purger_paused", (("cause", "health"),))] == 0
    info = (
        ("mode", "run"),
        ("provider", "fastly"),
        ("purge", "soft"),
        ("run_id", "0123456789ab"),
    )
    assert got[("purger_run_info", info)] == 1


def test_no_label_carries_a_target():
    """A shard's names and the last failure's target never become label values."""
    text = generate_latest(registry_for(LABELS, lambda: SNAPSHOT)).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert "project/bad" not in str(sample.labels)
            assert set(sample.labels) <= {"outcome", "state", "cause", "signal", *info_labels()}


def info_labels() -> set[str]:
    return {"run_id", "provider", "purge", "mode"}


def test_before_the_run_starts_only_the_run_info_is_exposed():
    text = generate_latest(registry_for(LABELS, lambda: None)).decode()
    assert [f.name for f in text_string_to_metric_families(text)] == ["purger_run_info"]


def test_unknown_eta_and_a_health_pause_show_as_such():
    paused = replace(SNAPSHOT, eta_s=None, health_paused=True)
    got = samples(generate_latest(registry_for(LABELS, lambda: paused)).decode())
    assert math.isnan(got[("purger_eta_seconds", ())])
    assert got[("purger_paused", (("cause", "health"),))] == 1


def test_the_metrics_page_serves_the_latest_snapshot():
    """``/metrics`` on a free loopback port reads the snapshot at each scrape."""
    current = {"snapshot": SNAPSHOT}
    server = serve(registry_for(LABELS, lambda: current["snapshot"]), "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        first = samples(httpx.get(url, timeout=10).text)
        current["snapshot"] = replace(SNAPSHOT, targets_done=6_000)
        second = samples(httpx.get(url, timeout=10).text)
    finally:
        server.close()
    assert first[("purger_targets_total", (("outcome", "purged"),))] == 5_300
    assert second[("purger_targets_total", (("outcome", "purged"),))] == 6_000


def test_the_textfile_is_never_seen_half_written(tmp_path):
    """A reader looping beside a writer that rewrites the file always parses a whole
    exposition with every family."""
    path = tmp_path / "purger.prom"
    # Many signals make a file big enough that a non-atomic write would be caught mid-way.
    signals = tuple(replace(SNAPSHOT.signals[0], name=f"signal {i}") for i in range(100))
    registry = registry_for(LABELS, lambda: replace(SNAPSHOT, signals=signals))
    write_textfile(path, registry)
    stop = threading.Event()
    writes = 0

    def writer() -> None:
        nonlocal writes
        while not stop.is_set():
            write_textfile(path, registry)
            writes += 1

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    try:
        while reads < 100 or writes < 20:
            got = samples(path.read_text())
            assert got[("purger_targets_planned", ())] == 9_000
            assert got[("purger_signal_value", (("signal", "signal 99"),))] == 0.45
            reads += 1
    finally:
        stop.set()
        thread.join()
    assert not [p for p in tmp_path.iterdir() if p != path]
