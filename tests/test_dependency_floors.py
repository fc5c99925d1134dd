"""What the floors and caps of pyproject.toml's dependencies protect. .ci/run runs the unit
suite on the lowest releases they allow too (uv's lowest-direct resolution), so a floor
that is too low, or a cap too high, fails here."""

from __future__ import annotations

import os
import re

import anyio
import pytest
from typer.testing import CliRunner

from purger.cli import app
from purger.cli.live import terminal_keys

# typer 0.27+ labels every option with its Python type in --help.
TYPE_LABEL = re.compile(r"<(bool|str|int|float|path|list\[\w+\])>", re.IGNORECASE)


@pytest.mark.anyio
async def test_the_live_view_reads_keys_until_the_terminal_closes():
    """The key reader waits on the descriptor with anyio.wait_readable (anyio 4.7+)."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"p+q")
        os.close(write_end)
        with anyio.fail_after(30):  # a hang fails, not a slow machine
            keys = [key async for key in terminal_keys(read_end)]
    finally:
        os.close(read_end)
    assert keys == ["p", "+", "q"]


@pytest.mark.parametrize("command", [[], ["run"], ["plan"], ["status"], ["config", "check"]])
def test_help_works_and_shows_no_type_labels(command):
    """typer < 0.16 with click >= 8.2 crashes in --help; typer >= 0.27 prints type labels."""
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert not TYPE_LABEL.search(result.output), TYPE_LABEL.findall(result.output)
