"""purger's metrics pushed to a real Pushgateway (Debian's prometheus-pushgateway, started
on a free loopback port), the way a Kubernetes CronJob leaves a trace."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.cluster import Missing, _which, run_pushgateway
from purger.observability.exporters import push
from purger.observability.metrics import RunLabels, registry_for
from tests.e2e.conftest import require
from tests.ui.test_live_view import SNAPSHOT

pytestmark = pytest.mark.e2e


@pytest.fixture
def pushgateway() -> Iterator[str]:
    if _which("prometheus-pushgateway") is None:
        require([Missing("prometheus-pushgateway", "prometheus-pushgateway")])
    with run_pushgateway() as url:
        yield url


def pushed(url: str, name: str, **labels: str) -> list[float]:
    """The values of ``name`` on the Pushgateway's page whose labels include ``labels``."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    ]


def test_each_push_replaces_the_runs_group(pushgateway):
    """Every push carries the whole snapshot under the run's grouping key; the last one
    wins, as a cron job's final push should."""
    labels = RunLabels(run_id="feedc0ffee12", provider="varnish", purge="hard", mode="run")
    current = {"snapshot": SNAPSHOT}
    registry = registry_for(labels, lambda: current["snapshot"])
    push(pushgateway, registry, labels.run_id)
    current["snapshot"] = replace(SNAPSHOT, targets_done=9_000, eta_s=0.0)
    push(pushgateway, registry, labels.run_id)
    group = {"job": "purger", "run_id": "feedc0ffee12"}
    assert pushed(pushgateway, "purger_targets_total", outcome="purged", **group) == [9_000]
    assert pushed(pushgateway, "purger_eta_seconds", **group) == [0.0]
    assert pushed(pushgateway, "purger_run_info", provider="varnish", **group) == [1.0]


def test_a_cron_style_run_leaves_its_final_figures_on_the_pushgateway(pushgateway, tmp_path):
    """``purger run --yes --log-format json --metrics-pushgateway URL`` with no terminal, as
    a CronJob runs it: when it has exited, the Pushgateway holds the run's final figures
    under its run id."""
    names = tmp_path / "names.txt"
    names.write_text("".join(f"cron-{i:04d}\n" for i in range(2_000)))
    done = subprocess.run(
        [
            sys.executable, "-m", "purger", "run", str(names), "--yes", "--provider", "null",
            "--key-template", "project/{name}", "--state", str(tmp_path / "s.sqlite"),
            "--rate", "inf", "--log-format", "json", "--metrics-pushgateway", pushgateway,
        ],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    last = json.loads(done.stdout.splitlines()[-1])
    group = {"job": "purger", "run_id": last["run_id"]}
    assert pushed(pushgateway, "purger_targets_total", outcome="purged", **group) == [2_000]
    assert pushed(pushgateway, "purger_shards", state="pending", **group) == [0]
    assert pushed(pushgateway, "purger_run_info", provider="null", **group) == [1.0]
