"""An unreachable API is said at once, not after minutes of "0 targets in 0 calls": the
JSON log's `warning` event, the progress lines and `purger status` name the host, the
error, the attempt and when the next one is."""

from __future__ import annotations

import json
import socket

import pytest
from typer.testing import CliRunner

from purger.cli import app

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "FASTLY_API_TOKEN": "t0k3n-for-tests"}


@pytest.fixture
def dead_port() -> int:
    """A loopback port nobody listens on: every connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def names(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(f"n{i}" for i in range(40)) + "\n")
    return path


def run_against(port: int, names, state, *extra: str):
    args = [
        "run", str(names), "--provider", "fastly", "--service-id", "SVC",
        "--key-template", "k/{name}", "--api-base", f"http://127.0.0.1:{port}",
        "--state", str(state), "--yes", "--max-duration", "2", "--drain-timeout", "1",
        "--progress-interval", "0.5",
        *extra,
    ]  # fmt: skip
    return CliRunner().invoke(app, args, env=ENV)


def test_the_json_log_warns_of_each_retry_with_host_error_attempt_and_next(
    dead_port, names, tmp_path
):
    result = run_against(dead_port, names, tmp_path / "s.sqlite", "--log-format", "json")
    assert result.exit_code == 3, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    warnings = [e for e in events if e["event"] == "warning" and e.get("kind") == "retry"]
    assert warnings, events
    first = warnings[0]
    assert first["host"] == f"127.0.0.1:{dead_port}"
    assert "ConnectError" in first["error"]
    assert first["attempt"] >= 1
    assert first["attempts"] == 8
    assert first["next_retry_s"] >= 0
    assert first["retries"] >= 1
    assert f"127.0.0.1:{dead_port}" in first["message"]
    # Said before the run gives up or stops, not only in its last words.
    kinds = [e["event"] for e in events]
    assert kinds.index("warning") < kinds.index("stop")
    progress = [e for e in events if e["event"] == "progress"]
    assert progress
    assert progress[-1]["retries"] >= 1
    assert progress[-1]["api_answering"] is False
    assert "ConnectError" in progress[-1]["last_retry"]


def test_progress_lines_and_status_show_the_error(dead_port, names, tmp_path):
    state = tmp_path / "s.sqlite"
    result = run_against(dead_port, names, state)
    assert result.exit_code == 3, result.output
    lines = result.stderr.splitlines()
    retrying = [line for line in lines if line.startswith("warning: retrying: fastly:")]
    assert retrying, result.stderr
    assert f"(127.0.0.1:{dead_port}; attempt " in retrying[0]
    assert "next in " in retrying[0]
    assert "retries so far" in retrying[0]
    progress = [line for line in lines if " targets in " in line and "no answer:" in line]
    assert progress, result.stderr
    text = CliRunner().invoke(app, ["status", "--state", str(state)], env=ENV)
    last = [line for line in text.stdout.splitlines() if line.startswith("last error: ")]
    assert len(last) == 1, text.output
    assert "ConnectError" in last[0]
    document = json.loads(
        CliRunner().invoke(app, ["status", "--state", str(state), "--json"], env=ENV).stdout
    )
    assert "ConnectError" in document["last_error"]
    assert f"127.0.0.1:{dead_port}" in document["last_error"]
