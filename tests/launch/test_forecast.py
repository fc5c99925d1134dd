"""One forecast for `purger estimate`, `purger run --dry-run` and the summary before a
run: the same plan and options give the same figures, and the origin pays what the
provider's purge (soft or hard, as configured) costs."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from purger.cli import app
from purger.launch.build import PaceOptions
from purger.launch.forecast import OriginOptions, forecast
from purger.names.nameset import build_name_set
from purger.planning.plan import PlanSettings, make_plan
from purger.planning.targets import parse_templates
from purger.providers.null import NullProvider

FASTLY = ("--provider", "fastly", "--key-template", "project/{name}")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


@pytest.fixture
def names(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(f"{c}{i}" for c in "abpq" for i in range(250)) + "\n")
    return path


def origin_load(output: str) -> str:
    found = re.search(r"extra origin load: up to ([\d,]+) fetches/s", output)
    assert found, output
    return found.group(1)


def test_dry_run_and_estimate_print_the_same_origin_load_and_duration(names):
    """The same plan through both commands: the same extra origin load (a soft purge's
    revalidations, 0.2 of a fetch each: 100 fetches/s at 500 targets/s) and duration."""
    estimated = invoke("estimate", str(names), *FASTLY, "--workers", "4")
    dry = invoke("run", str(names), *FASTLY, "--service-id", "SVC", "--workers", "4", "--dry-run")
    assert estimated.exit_code == 0, estimated.output
    assert dry.exit_code == 0, dry.output
    assert origin_load(estimated.stdout) == origin_load(dry.stdout) == "100"
    duration = re.compile(r"^duration .*$", re.MULTILINE)
    assert duration.findall(estimated.stdout) == duration.findall(dry.stdout)


@pytest.mark.parametrize(("hard", "purge"), [((), "soft"), (("--hard",), "hard")])
def test_the_null_provider_s_estimate_says_the_purge_it_was_asked_for(names, hard, purge):
    """The default provider follows --hard like the others: soft unless asked."""
    result = invoke("estimate", str(names), *hard)
    assert result.exit_code == 0, result.output
    assert f"provider null, {purge} purge" in result.stdout
    document = json.loads(invoke("estimate", str(names), *hard, "--json").stdout)
    assert document["purge"] == purge


def test_a_hard_purge_costs_the_origin_a_whole_fetch_per_target(names):
    """Cloudflare purges hard: each purged URL is fetched again whole, whatever
    --soft-cost says (it is the refetch of a soft purge)."""
    result = invoke(
        "estimate", str(names), "--provider", "cloudflare", "--url-template",
        "https://example.org/{name}", "--origin-capacity", "100", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    bounds = json.loads(result.stdout)["bounds"]
    origin = [name for name in bounds if name.startswith("origin capacity")]
    assert origin == ["origin capacity (100 spare fetches/s, 1 per target)"]
    assert bounds[origin[0]] == pytest.approx(1000 / 100)


def test_the_refetch_cost_follows_the_provider_s_purge():
    """The same workload: a soft purge loads the origin soft_cost x what a hard one does."""
    name_set = build_name_set([(f"n{i}", None, i + 1) for i in range(100)], where="test")
    plan = make_plan(name_set, PlanSettings(workers=2))
    templates = parse_templates(["k/{name}"], [])
    pace = PaceOptions(rate=50.0, concurrency=4)
    origin = OriginOptions(soft_cost=0.25)
    loads = [
        forecast(
            plan, name_set, templates, NullProvider(soft=soft), pace, workers=2, origin=origin
        ).estimate.origin_peak_extra_rps
        for soft in (True, False)
    ]
    assert loads == [pytest.approx(12.5), pytest.approx(50.0)]
