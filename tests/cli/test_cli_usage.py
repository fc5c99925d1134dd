"""click's own usage errors keep docs/cli.md's promise: one line starting
``purger: error:`` on stderr and exit 2, for every command; and ``--help`` groups the
options in panels and shows the help text as written."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from purger.cli import app

WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}

USAGE_ERRORS = [
    ["run", "--workers", "0"],
    ["run", "--rate", "abc"],
    ["run", "--sample", "--yes", "true"],
    ["run", "--bogus"],
    ["run", "--log-format", "xml"],
    ["run", "--network", "moon"],
    ["run", "--state"],
    ["run", "--concurrency", "1.5"],
    ["plan", "--bogus"],
    ["plan", "--format", "xls"],
    ["plan", "--normalize", "nfc"],
    ["plan", "a.txt", "b.txt"],
    ["estimate", "--json=yes"],
    ["estimate", "--weight-transform", "log"],
    ["status"],
    ["status", "--state"],
    ["failures", "--bogus"],
    ["demo", "--speed", "abc"],
    ["probe", "--interval", "abc"],
    ["config", "check"],
    ["config", "nosuch"],
    ["nosuch"],
    ["--version=1"],
]


@pytest.mark.parametrize("args", USAGE_ERRORS, ids=" ".join)
def test_usage_errors_are_one_line_and_exit_2(args):
    result = CliRunner().invoke(app, args, env=WIDE)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("purger: error: ")
    assert "╭" not in result.stderr
    assert "Traceback" not in result.output


def test_no_arguments_still_shows_the_help():
    """click raises 'no arguments' as a usage error too: it stays the help, not an error."""
    result = CliRunner().invoke(app, [], env=WIDE)
    assert "Usage: purger" in result.output
    assert "purger: error" not in result.output


def _panels(text: str) -> dict[str, set[str]]:
    """Each boxed panel's title and the flags listed in it."""
    panels: dict[str, set[str]] = {}
    title = None
    for line in text.splitlines():
        if head := re.match(r"\s*╭─ (.+?) ─", line):
            title = head.group(1)
            panels[title] = set()
        elif title is not None and (flag := re.match(r"\s*│ (--[a-z-]+)", line)):
            panels[title].add(flag.group(1))
    return panels


RUN_PANELS = {
    "Names and shards": {"--names-url", "--sample", "--format", "--strict", "--shards"},
    "Targets": {"--key-template", "--url-template"},
    "Provider": {"--provider", "--timeout", "--service-id", "--endpoint", "--api-base"},
    "Pace": {"--rate", "--concurrency"},
    "Health": {"--signal", "--signals", "--min-rate", "--tick"},
    "State": {"--state", "--resume", "--max-duration", "--drain-timeout"},
    "Output": {"--yes", "--log-format", "--progress-interval"},
}


def test_run_help_groups_options_in_panels():
    result = CliRunner().invoke(app, ["run", "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    panels = _panels(result.stdout)
    for title, flags in RUN_PANELS.items():
        assert flags <= panels.get(title, set()), title
    assert panels["Options"] <= {"--config", "--help"}


@pytest.mark.parametrize("command", ["run", "probe"])
def test_help_keeps_literal_brackets(command):
    """Rich markup took [[signal]] for a tag and printed nothing of it."""
    result = CliRunner().invoke(app, [command, "--help"], env=WIDE)
    assert "TOML file of [[signal]] tables." in result.stdout
