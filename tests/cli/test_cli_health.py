"""`purger probe`, `--signal`/`--signals` on `purger run`, and signal files."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from purger.cli import app
from purger.config.job import load_signals
from purger.errors import InputError, UsageError
from purger.state.sqlite import StateStore

STATUS = "http://origin.example/status"


def signal(limit: float = 0.5, critical: float = 2.0, name: str = "p99") -> str:
    return (
        f"name={name},source=json,url={STATUS},limit={limit},critical={critical},"
        "kind=latency,query=latency.p99"
    )


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_probe_of_a_healthy_origin_exits_0(httpx_mock):
    """Every signal fresh and under its limit: a table with 'ok', exit 0."""
    httpx_mock.add_response(url=STATUS, json={"latency": {"p99": 0.2}})
    result = invoke("probe", "--signal", signal())
    assert result.exit_code == 0, result.output
    assert "p99" in result.stdout
    assert "0.40" in result.stdout  # pressure 0.2 / 0.5
    assert "ok" in result.stdout


def test_probe_over_the_limit_or_unknown_exits_1(httpx_mock):
    """Over the limit, or unreadable: exit 1, saying which and why."""
    httpx_mock.add_response(url=STATUS, json={"latency": {"p99": 0.7}})
    over = invoke("probe", "--signal", signal())
    assert over.exit_code == 1
    assert "over limit" in over.stdout

    httpx_mock.add_response(url=STATUS, status_code=503)
    down = invoke("probe", "--signal", signal())
    assert down.exit_code == 1
    assert "unknown" in down.stdout
    assert "503" in down.stdout


def test_probe_json_shape(httpx_mock):
    """--json: one object per signal with value, limit, critical, pressure, age and error."""
    httpx_mock.add_response(url=STATUS, json={"latency": {"p99": 1.0}})
    result = invoke("probe", "--signal", signal(), "--json")
    assert result.exit_code == 1  # over the limit
    (reading,) = json.loads(result.stdout)
    assert reading["signal"] == "p99"
    assert reading["value"] == 1.0
    assert (reading["limit"], reading["critical"]) == (0.5, 2.0)
    assert reading["pressure"] == pytest.approx(2.0)
    assert reading["error"] is None
    assert reading["age_s"] is not None


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((), "at least one --signal"),
        (("--signal", "name=x,source=json"), "query="),
        (("--signal", signal(limit=0)), "limit must be > 0"),
        (("--signals", "missing.toml"), "cannot read"),
    ],
)
def test_probe_usage_errors_exit_2(args, fragment, tmp_path, monkeypatch):
    """Bad signals are one-line usage errors, exit 2, before anything is read."""
    monkeypatch.chdir(tmp_path)
    result = invoke("probe", *args)
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr
    assert "Traceback" not in result.output


def test_health_past_critical_pauses_the_run(tmp_path, httpx_mock):
    """A run governed by a signal past its critical limit pauses: nothing more is purged,
    the decision is shown, and the time limit ends it resumably (exit 3)."""
    httpx_mock.add_response(url=STATUS, json={"latency": {"p99": 5.0}}, is_reusable=True)
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"n{i}" for i in range(400)) + "\n")
    state = tmp_path / "state.sqlite"
    result = invoke(
        "run", str(names), "--provider", "null", "--key-template", "k/{name}",
        "--state", str(state), "--rate", "200", "--signal", signal(),
        "--tick", "0.05", "--feedback-delay", "0.2", "--max-duration", "1.5",
        "--shards", "4", "--workers", "1", "--drain-timeout", "1", "--yes",
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "control: pause" in result.stderr
    assert "past the critical limit" in result.stderr
    with StateStore.open(state) as store:
        assert store.summary().targets_done < 400


def test_signals_file_is_read_and_checked(tmp_path):
    """[[signal]] tables become signals; an unknown key is named, never ignored."""
    good = tmp_path / "signals.toml"
    good.write_text(
        '[[signal]]\nname = "p99"\nsource = "json"\nurl = "http://o.example/s"\n'
        'query = "a.b"\nlimit = 0.5\ncritical = 2.0\nkind = "latency"\n'
    )
    (spec,) = load_signals(good)
    assert (spec.name, spec.limit, spec.critical, spec.query) == ("p99", 0.5, 2.0, "a.b")

    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace("limit = 0.5", "limt = 0.5"))
    with pytest.raises(UsageError, match=r"signal\[1\]\.limt: unknown key"):
        load_signals(bad)
    bad.write_text(good.read_text().replace("limit = 0.5", 'limit = "fast"'))
    with pytest.raises(UsageError, match=r"signal\[1\]\.limit: must be a number"):
        load_signals(bad)
    bad.write_text("[[signal]\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_signals(bad)
    bad.write_text("[other]\nx = 1\n")
    with pytest.raises(UsageError, match="unknown table or key 'other'"):
        load_signals(bad)


def test_demo_purges_every_sample_name_and_reports():
    """purger demo runs the whole simulated purge (here at full speed) and sums it up."""
    result = invoke("demo", "--speed", "0")
    assert result.exit_code == 0, result.output
    assert "done: 102,114 targets purged" in result.stdout
    assert "controller decisions" in result.stdout
    assert "origin p99" in result.stdout  # the live view's last frame
    assert "origin capacity" in result.stdout
