"""purger's own log warnings (a health read that failed unexpectedly, an ambiguous
signal) go through the run's output while it runs: a JSON `warning` event in JSON mode, a
`warning: ...` line in text mode; never plain text on stderr between JSON lines."""

from __future__ import annotations

import io
import json
import logging

import anyio
import pytest
from rich.console import Console

from purger.cli.logs import JsonLog, TextLog
from tests.engine.test_monitor import live_run

pytestmark = pytest.mark.anyio

SIGNALS = logging.getLogger("purger.health.reader")


def fail_a_read() -> None:
    try:
        raise ValueError("bad JSON at line 1")
    except ValueError:
        SIGNALS.warning("health read of %s failed unexpectedly", "http://m:9090", exc_info=True)


async def present_and_warn(present, live) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(present, live)
        await anyio.sleep(0.05)
        fail_a_read()
        tg.cancel_scope.cancel()


async def test_a_warning_is_a_json_event_and_nothing_reaches_stderr(tmp_path, capsys):
    live, _, _, store = live_run(tmp_path)
    out = io.StringIO()
    await present_and_warn(JsonLog(out, 10.0).present, live)
    store.close()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    warnings = [e for e in events if e["event"] == "warning"]
    assert [w["message"] for w in warnings] == [
        "health read of http://m:9090 failed unexpectedly: ValueError: bad JSON at line 1"
    ]
    assert warnings[0]["run_id"] == "r1"
    assert capsys.readouterr().err == ""
    assert logging.getLogger("purger").handlers == []  # the run's output only while it runs


async def test_a_warning_is_one_progress_style_line_in_text_mode(tmp_path, capsys):
    live, _, _, store = live_run(tmp_path)
    err = io.StringIO()
    await present_and_warn(TextLog(Console(file=err, width=200), 10.0).present, live)
    store.close()
    lines = err.getvalue().splitlines()
    assert lines[1:] == [
        "warning: health read of http://m:9090 failed unexpectedly: ValueError: bad JSON at line 1"
    ]
    assert capsys.readouterr().err == ""
