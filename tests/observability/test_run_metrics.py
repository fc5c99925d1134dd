"""`purger run --metrics-*`: a run publishes its own metrics, and a metrics output that is
wrong at the start is a usage error before anything is sent."""

from __future__ import annotations

import socket

from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from purger.cli import app
from tests.cli.test_cli_run import assert_one_line_error, names, null_run  # noqa: F401


def values(text: str, name: str, **labels: str) -> list[float]:
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]


def test_the_textfile_holds_the_finished_runs_counts(names, tmp_path):  # noqa: F811
    """At the end the textfile says what the run purged: every target, none failed, no
    shard pending, with the run's id and provider in purger_run_info."""
    textfile = tmp_path / "purger.prom"
    result = null_run(names, tmp_path / "s.sqlite", "--metrics-textfile", str(textfile))
    assert result.exit_code == 0, result.output
    text = textfile.read_text()
    assert values(text, "purger_targets_total", outcome="purged") == [100]
    assert values(text, "purger_targets_total", outcome="failed") == [0]
    assert values(text, "purger_targets_planned") == [100]
    assert values(text, "purger_shards", state="pending") == [0]
    assert values(text, "purger_run_info", provider="null", purge="soft", mode="run") == [1]


def test_a_metrics_port_in_use_is_refused_before_anything_is_sent(names, tmp_path):  # noqa: F811
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = null_run(names, tmp_path / "s.sqlite", "--metrics-port", str(port))
    assert_one_line_error(result, 2, f"--metrics-port: cannot listen on 127.0.0.1:{port}")


def test_bad_metrics_options_are_one_line_errors(names, tmp_path):  # noqa: F811
    state = tmp_path / "s.sqlite"
    assert_one_line_error(null_run(names, state, "--metrics-port", "70000"), 2, "--metrics-port")
    assert_one_line_error(
        null_run(names, state, "--metrics-textfile", str(tmp_path / "no" / "x.prom")),
        2,
        "no such directory",
    )
    assert_one_line_error(
        null_run(names, state, "--metrics-pushgateway", "not a url"), 2, "--metrics-pushgateway"
    )
    assert not state.exists()


def test_status_prints_a_finished_runs_metrics_from_its_state(names, tmp_path):  # noqa: F811
    """``purger status --format prometheus`` reads the state: what the run purged, where it
    stands, in the text format node_exporter and Prometheus parse."""
    state = tmp_path / "s.sqlite"
    assert null_run(names, state).exit_code == 0
    result = CliRunner().invoke(app, ["status", "--state", str(state), "--format", "prometheus"])
    assert result.exit_code == 0, result.output
    assert values(result.stdout, "purger_targets_total", outcome="purged") == [100]
    assert values(result.stdout, "purger_run_status", status="done") == [1]
    assert values(result.stdout, "purger_run_status", status="running") == [0]
    assert values(result.stdout, "purger_shards", state="pending") == [0]
    assert values(result.stdout, "purger_run_info", provider="null")
