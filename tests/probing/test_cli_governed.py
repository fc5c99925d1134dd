"""Probes are governed like purges: a signal past its critical limit pauses them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest

from purger.cli.scan import Governance, _scan
from purger.cli.verify import _verify
from purger.health.control import ControlSettings
from purger.health.signals import parse_signal
from purger.probing.prober import ProbeSettings
from purger.probing.targets import ProbeTarget
from purger.state.sqlite import RunRecord
from tests.probing.fake_node import Table, fake_node
from tests.probing.test_cli_scan_verify import HOST, invoke

CRITICAL_READS = 6


class _Status(ThreadingHTTPServer):
    daemon_threads = True
    table: Table
    #: How many probes the node had seen at each health reading.
    seen: list[int]


class _Handler(BaseHTTPRequestHandler):
    server: _Status

    def do_GET(self) -> None:
        with self.server.table.lock:
            self.server.seen.append(len(self.server.table.gets))
            reads = len(self.server.seen)
        # Past critical for the first readings, then healthy: the probes pause, then go on.
        p99 = 5.0 if reads <= CRITICAL_READS else 0.01
        body = json.dumps({"latency": {"p99": p99}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def status_server(table: Table) -> Iterator[tuple[str, list[int]]]:
    server = _Status(("127.0.0.1", 0), _Handler)
    server.table, server.seen = table, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/status", server.seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def governance(status: str) -> Governance:
    """A signal that pauses at once and resumes 0.3 s after the origin is healthy (the
    CLI's controller waits 30 s: the same governor, a shorter wait)."""
    signal = parse_signal(
        f"name=p99,source=json,url={status},limit=0.5,critical=2,kind=latency,query=latency.p99"
    )
    control = ControlSettings(
        initial_rate=20, min_rate=10, max_rate=20, feedback_delay=0.2, tick=0.1, resume_after=0.3
    )
    return (signal,), control


@pytest.mark.parametrize("command", ["scan", "verify"])
def test_a_signal_past_critical_pauses_the_probes(command: str) -> None:
    table = Table(answers={(HOST, f"/pypi/n{i}/json"): (200, None) for i in range(40)})
    work = [(ProbeTarget(f"http://{HOST}/pypi/n{i}/json", f"n{i}", ()), None) for i in range(40)]
    with fake_node(table) as node, status_server(table) as (status, seen):
        via = [(target, node) for target, _ in work]
        if command == "scan":
            tally = anyio.run(_scan, via, ProbeSettings(), 20.0, 1, 5.0, governance(status))
            assert tally.probes == 40
        else:
            record = RunRecord(
                fingerprint="f", provider="null", provider_options={}, key_templates=(),
                url_templates=(), shards=(), purger_version="0",
            )  # fmt: skip
            outcome, _ = anyio.run(
                _verify, via, ProbeSettings(), record, (), False, 0, 0.0, 20.0, 1, 5.0,
                governance(status),
            )  # fmt: skip
            assert len(outcome.probes) == 40
    assert len(table.gets) == 40
    # The first reading pauses the probes (at 20/s, 40 take 2 s): between the readings
    # after it, while the signal is past critical, no probe reaches the node.
    assert seen[2] == seen[CRITICAL_READS - 1] < 40


@pytest.mark.parametrize("command", ["scan", "verify"])
def test_scan_and_verify_take_the_health_options(tmp_path: Path, command: str) -> None:
    """--signal is parsed and checked as for run: a bad one is a usage error."""
    names = tmp_path / "names.txt"
    names.write_text("n1\n")
    where = ("--out", str(tmp_path / "bad.txt")) if command == "scan" else ("--state", "x")
    result = invoke(
        command, str(names), "--url-template", f"http://{HOST}/{{name}}", *where,
        "--signal", "name=x,source=json", "--tick", "0.1",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "query=" in result.stderr
