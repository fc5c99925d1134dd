"""``purger demo``'s world in virtual time (exact, so the figures are the demo's own): the
controller follows the origin's slowdown safely for seeds 1-10, and the summary states the
duration beside the best safe pace found in hindsight."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from purger.cli import app
from purger.names.nameset import NameSet, WeightSpec, WeightTransform, build_name_set
from purger.names.sources import SAMPLE_NAME, NamesSource, read_records
from purger.planning.plan import PlanSettings, make_plan
from purger.sim import demo as world
from purger.sim.oracle import judge
from purger.sim.purge import origin_signals, simulate_purge


@pytest.fixture(scope="module")
def sample() -> NameSet:
    spec = WeightSpec(column="download_rank", transform=WeightTransform.ZIPF_RANK)
    records = read_records(NamesSource.sample(weight_column="download_rank"))
    return build_name_set(records, where=SAMPLE_NAME, weight=spec)


@pytest.mark.parametrize("seed", range(1, 11))
def test_the_demo_keeps_the_origin_p99_under_its_limit(sample, seed):
    """p99 over its limit in at most 5 % of seconds, never over critical for longer than one
    feedback delay, though the origin loses 40 % of its capacity half-way."""
    plan = make_plan(sample, PlanSettings(workers=16), source=SAMPLE_NAME)
    config = world.config(seed)
    result = simulate_purge(
        plan=plan,
        name_set=sample,
        config=config,
        control=world.CONTROL,
        signals=origin_signals(
            config, p99_limit=world.LIMITS.p99_limit, p99_critical=world.LIMITS.p99_critical
        ),
        concurrency=world.CONCURRENCY,
    )
    verdict = judge(result, world.LIMITS)
    assert result.outcome.statistics.targets == len(sample.names)
    assert verdict.under_share >= 0.95, f"seed {seed}: {1 - verdict.under_share:.1%} over"
    assert verdict.longest_over_critical <= world.CONTROL.feedback_delay
    # The slowdown is followed: the allowed rate after it is below the one before it.
    slowdown, delay = world.SLOWDOWN_AT, world.CONTROL.feedback_delay
    before = max(rate for at, rate, _ in result.rates if at < slowdown)
    after = [rate for at, rate, paused in result.rates if at > slowdown + delay and not paused]
    assert max(after) < before


def test_the_demo_summary_states_the_best_safe_pace():
    """The last line: the best safe fixed rate, its duration, and how this run compares."""
    env = {"COLUMNS": "200", "NO_COLOR": "1"}
    result = CliRunner().invoke(app, ["demo", "--speed", "0", "--seed", "1"], env=env)
    assert result.exit_code == 0, result.output
    found = re.search(
        r"best safe pace, found in hindsight by \d+ fixed-rate runs: ([\d,]+) targets/s, "
        r".*; this run took (\d+\.\d\d)x as long",
        result.stdout,
    )
    assert found is not None, result.stdout[-600:]
    assert 0 < float(found.group(2)) <= 1.25
