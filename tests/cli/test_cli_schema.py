"""One schema for flags, ``PURGER_*`` variables and job files: a bad number gives the same
one-line message through all three (after the flag's, the variable's or the file's name),
exit 2, and nothing is created or sent."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from purger.cli import app
from purger.config.schema import MAX_CONCURRENCY, setting_of

WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}

# key, the value as a flag's or a variable's text, the message; the job file writes the
# same text as TOML (nan, inf and big integers are TOML too), except where a third is given.
BAD: list[tuple[str, str, str] | tuple[str, str, str, str]] = [
    ("pacing.max_rate", "0", "must be > 0, got 0"),
    ("pacing.max_rate", "-1", "must be > 0, got -1"),
    ("pacing.max_rate", "nan", "must be a number > 0, got NaN"),
    ("pacing.max_rate", "-inf", "must be a number > 0, got -Infinity"),
    ("pacing.max_rate", "abc", 'must be a number, got "abc"', '"abc"'),
    ("pacing.concurrency", "0", "must be >= 1, got 0"),
    ("pacing.concurrency", "100000", f"must be <= {MAX_CONCURRENCY}, got 100000"),
    ("pacing.concurrency", str(10**20), f"must be <= {MAX_CONCURRENCY}, got {10**20}"),
    ("pacing.min_rate", "0", "must be > 0, got 0"),
    ("pacing.min_rate", "-1", "must be > 0, got -1"),
    ("pacing.min_rate", "nan", "must be a number > 0, got NaN"),
    ("pacing.initial_rate", "0", "must be > 0, got 0"),
    ("pacing.feedback_delay", "nan", "must be a number > 0, got NaN"),
    ("pacing.tick", "-1", "must be > 0, got -1"),
    ("plan.workers", "0", "must be >= 1, got 0"),
    ("plan.shards", "0", "must be >= 1, got 0"),
    ("plan.max_weight", "-1", "must be > 0, got -1"),
    ("provider.timeout", "0", "must be > 0, got 0"),
    ("provider.timeout", "-1", "must be > 0, got -1"),
    ("provider.timeout", "nan", "must be a number > 0, got NaN"),
    ("provider.timeout", "inf", "must be a finite number, got Infinity"),
    ("provider.files_cap", "0", "must be >= 1, got 0"),
    ("provider.files_cap", "501", "must be <= 500, got 501"),
    ("run.max_duration", "0", "must be > 0, got 0"),
    ("run.max_duration", "-1", "must be > 0, got -1"),
    ("run.max_duration", "nan", "must be a number > 0, got NaN"),
    ("run.drain_timeout", "-1", "must be >= 0, got -1"),
    ("run.drain_timeout", "nan", "must be a number >= 0, got NaN"),
    ("run.progress_interval", "0", "must be > 0, got 0"),
    ("run.progress_interval", "nan", "must be a number > 0, got NaN"),
    # Not numbers, but checked the same way: URLs.
    (
        "provider.api_base",
        "ftp://x",
        'must be an http:// or https:// URL, got "ftp://x"',
        '"ftp://x"',
    ),
    (
        "provider.endpoints",
        "x:6081",
        'must be http:// or https:// URLs, got "x:6081"',
        '["x:6081"]',
    ),
]
ROUTES = ("flag", "variable", "file")


def _run(tmp_path, *extra: str, env: dict[str, str] | None = None):
    state = tmp_path / "s.sqlite"
    args = ["run", "--sample", "--provider", "null", "--key-template", "p/{name}"]
    result = CliRunner().invoke(
        app, [*args, "--state", str(state), "--yes", *extra], env={**WIDE, **(env or {})}
    )
    return result, state


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", BAD, ids=[f"{c[0]}={c[1]}" for c in BAD])
def test_a_bad_number_is_the_same_one_line_error_by_flag_variable_and_file(tmp_path, case, route):
    key, text, message = case[:3]
    setting = setting_of(key)
    if route == "flag":
        result, state = _run(tmp_path, setting.flag, text)
        where = setting.flag
    elif route == "variable":
        result, state = _run(tmp_path, env={setting.variable: text})
        where = setting.variable
    else:
        job = tmp_path / "job.toml"
        table, name = key.split(".")
        job.write_text(f"[{table}]\n{name} = {case[3] if len(case) > 3 else text}\n")
        result, state = _run(tmp_path, "--config", str(job))
        where = f"{job}: {key}"
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [f"purger: error: {where}: {message}"]
    assert result.stdout == ""
    assert not state.exists()  # nothing created, so nothing sent


# The estimate's model: flags only (docs/config.md says why), checked by the same rules.
MODEL_BAD = [
    ("--origin-capacity", "0", "must be > 0, got 0"),
    ("--origin-capacity", "-1", "must be > 0, got -1"),
    ("--origin-capacity", "nan", "must be a number > 0, got NaN"),
    ("--api-latency", "inf", "must be a finite number, got Infinity"),
    ("--api-latency", "0", "must be > 0, got 0"),
    ("--api-latency", "nan", "must be a number > 0, got NaN"),
    ("--traffic", "0", "must be > 0, got 0"),
    ("--soft-cost", "-1", "must be >= 0, got -1"),
    ("--soft-cost", "nan", "must be a number >= 0, got NaN"),
    ("--seed", "-1", "must be >= 0, got -1"),
    ("--concurrency", "100000", f"must be <= {MAX_CONCURRENCY}, got 100000"),
    ("--workers", "0", "must be >= 1, got 0"),
]


@pytest.mark.parametrize(("flag", "text", "message"), MODEL_BAD)
def test_estimate_refuses_bad_numbers_in_one_line_and_never_prints_nan(flag, text, message):
    result = CliRunner().invoke(app, ["estimate", "--sample", "--json", flag, text], env=WIDE)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [f"purger: error: {flag}: {message}"]
    assert result.stdout == ""


def _no_constants(name: str) -> float:
    raise AssertionError(f"{name} in JSON")


def test_estimate_json_is_strict_json():
    """JSON has no NaN or Infinity; the estimate's --json never holds them."""
    result = CliRunner().invoke(
        app, ["estimate", "--sample", "--json", "--origin-capacity", "400"], env=WIDE
    )
    assert result.exit_code == 0, result.output
    json.loads(result.stdout, parse_constant=_no_constants)


def test_a_good_flag_still_wins_over_a_variable(tmp_path):
    """Flags are read as text now: a good one still overrides the job's value."""
    result = CliRunner().invoke(
        app,
        ["estimate", "--sample", "--json", "--rate", "250"],
        env={**WIDE, "PURGER_PACING_MAX_RATE": "100"},
    )
    assert result.exit_code == 0, result.output
    assert "configured pace (250 targets/s)" in json.loads(result.stdout)["bounds"]
