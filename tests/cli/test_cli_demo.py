"""`purger demo` without a terminal (a pipe, CI) prints progress lines as it goes, as a
run does, instead of one frame at the end."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from purger.cli import app


def test_without_a_terminal_the_demo_prints_progress_lines():
    result = CliRunner().invoke(app, ["demo", "--speed", "0"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("purger demo: 102,114 PyPI names")
    progress = [line for line in lines if re.match(r"^ +\d+ s  [\d,]+ of 102,114 targets", line)]
    # A line every 30 virtual seconds of a purge of about 9 virtual minutes.
    assert len(progress) >= 10, result.stdout
    done = [int(line.split(" of ")[0].split()[-1].replace(",", "")) for line in progress]
    assert done == sorted(done)
    assert all("controller " in line and "origin capacity" in line for line in progress)
    assert any(line.startswith("done: 102,114 targets purged") for line in lines[-4:])
    assert lines[-1].startswith("best safe pace")
    assert "┏" not in result.stdout  # no live view frame off a terminal
