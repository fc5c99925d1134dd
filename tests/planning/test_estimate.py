"""The estimate: each bottleneck against a hand computation, the schedule, the origin load,
PyPI's 2022 method beside the plan, and the CLI's shapes."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from purger.cli import app
from purger.health.control import ControlSettings
from purger.launch.build import PaceOptions
from purger.launch.forecast import forecast
from purger.model import TargetKind
from purger.names.nameset import build_name_set
from purger.names.sources import NamesSource, read_records
from purger.planning.estimate import (
    OriginModel,
    Pace,
    ShardWork,
    Workload,
    estimate,
    governed_seconds,
    refill_seconds,
)
from purger.planning.plan import PlanSettings, make_plan
from purger.planning.targets import parse_templates
from purger.providers.base import RateBucket
from purger.providers.null import NullProvider

KEY = TargetKind.KEY


def work(*shards: tuple[int, int]) -> Workload:
    """Shards given as (targets, calls); weight = targets."""
    items = tuple(ShardWork(id=i, weight=t, targets=t, calls=c) for i, (t, c) in enumerate(shards))
    return Workload(
        targets={KEY: sum(s.targets for s in items)},
        calls={KEY: sum(s.calls for s in items)},
        shards=items,
    )


def pace(**overrides: object) -> Pace:
    base: dict[str, object] = {
        "rate": math.inf,
        "concurrency": 1000,
        "workers": 4,
        "api_latency": 0.0,
    }
    return Pace(**{**base, **overrides})  # type: ignore[arg-type]


def test_bound_by_the_configured_pace():
    """1,000 targets at 10/s take 100 s, and the pace is named as the bottleneck."""
    result = estimate(work((500, 5), (500, 5)), pace(rate=10))
    assert result.duration_s == pytest.approx(100)
    assert result.bottleneck.startswith("configured pace (10 targets/s)")


def test_bound_by_concurrency_times_latency():
    """100 calls of 1 s, 2 in flight: 50 s."""
    result = estimate(work((100, 50), (100, 50)), pace(concurrency=2, api_latency=1.0))
    assert result.duration_s == pytest.approx(50)
    assert result.bottleneck.startswith("concurrency x latency (2 calls x 1 s)")


def test_bound_by_a_provider_bucket_after_its_burst():
    """110 calls through a bucket of 5 calls/s with a burst of 10: (110 - 10) / 5 = 20 s."""
    bucket = RateBucket(per_second=5, burst=10, unit="calls")
    result = estimate(work((1100, 110)), pace(buckets=(bucket,)))
    assert result.bounds["provider limit (5 calls/s, burst 10)"] == pytest.approx(20)
    assert result.bottleneck.startswith("provider limit")


def test_bound_by_origin_capacity():
    """1,000 hard purges, 20 spare origin fetches/s: 50 s; soft purges at 0.2: 10 s."""
    hard = estimate(work((1000, 10)), pace(), OriginModel(capacity=20, fetches_per_target=1))
    assert hard.duration_s == pytest.approx(50)
    assert hard.bottleneck.startswith("origin capacity")
    soft = estimate(work((1000, 10)), pace(), OriginModel(capacity=20, fetches_per_target=0.2))
    assert soft.duration_s == pytest.approx(10)


def test_refill_of_names_asked_for_all_the_time_is_one_fetch_per_purge_at_once():
    """Names asked for far more often than the run lasts are fetched again at once: the
    origin bound is the plain one, names x fetches / capacity."""
    assert refill_seconds(1000, [1e6] * 1000, capacity=20) == pytest.approx(50, rel=0.01)
    assert refill_seconds(1000, [1e6] * 1000, capacity=20, fetches_per_name=0.2) == pytest.approx(
        10, rel=0.01
    )


def test_refill_of_names_nobody_asks_for_costs_nothing():
    """No client asks: nothing is fetched again, the other bounds set the pace."""
    assert refill_seconds(1000, [0.0] * 1000, capacity=20, rate_cap=100) == pytest.approx(10)


def test_refill_when_half_the_names_are_never_asked_for():
    """Half the names fetched again at once, half never: each purge costs half a fetch on
    average, so 20 spare fetches/s let 40 names/s through: 25 s for 1,000."""
    rates = [1e6, 0.0] * 500
    assert refill_seconds(1000, rates, capacity=20) == pytest.approx(25, rel=0.01)


def test_refill_trails_the_purge_of_names_asked_for_once_a_minute():
    """Every name asked once a minute, 1,000 names, 100 spare fetches/s: without trailing
    10 s; but in 10 s only 1 - exp(-1/6) = 15 % of the names purged were fetched again, so
    the run can go several times faster, never faster than the other bounds allow."""
    seconds = refill_seconds(1000, [1 / 60] * 1000, capacity=100, rate_cap=1000)
    assert 1.0 <= seconds < 4.0
    assert refill_seconds(1000, [1 / 60] * 1000, capacity=100) < seconds


@settings(max_examples=60, deadline=None)
@given(
    rates=st.lists(st.floats(0, 100), min_size=1, max_size=40),
    capacity=st.floats(1, 100),
    scale=st.floats(1, 10),
)
def test_refill_more_traffic_never_makes_a_run_shorter(rates, capacity, scale):
    """More client requests mean more fetches per purge sooner; and the figure stays
    between the other bounds alone and every purge fetched again at once."""
    targets = 10 * len(rates)
    base = refill_seconds(targets, rates, capacity=capacity, rate_cap=50)
    busier = refill_seconds(targets, [r * scale for r in rates], capacity=capacity, rate_cap=50)
    assert busier >= base * (1 - 1e-6)
    assert targets / 50 * (1 - 1e-6) <= base <= max(len(rates) / capacity, targets / 50) * 1.01


def test_estimate_with_traffic_names_the_origin_and_is_shorter_than_every_fetch_at_once():
    rates = tuple([1 / 30] * 1000)
    plain = estimate(work((1000, 10)), pace(), OriginModel(capacity=20))
    trailing = estimate(work((1000, 10)), pace(), OriginModel(capacity=20, request_rates=rates))
    assert trailing.bottleneck.startswith("origin capacity")
    assert "next request" in trailing.bottleneck
    assert trailing.duration_s < plain.duration_s


def origin_bound(document: dict[str, object]) -> float:
    """The best pace's bound of an ``estimate --json`` document."""
    bounds = document["bounds"]
    assert isinstance(bounds, dict)
    return next(s for name, s in bounds.items() if name.startswith("origin capacity"))


def test_estimate_cli_traffic_shortens_the_origin_bound_and_refuses_zero(tmp_path):
    names = tmp_path / "names.tsv"
    names.write_text("name\ttraffic\n" + "".join(f"n{i}\t{1 / (i + 1)}\n" for i in range(2000)))
    common = ["estimate", str(names), "--weight-column", "traffic", "--provider", "varnish"]
    common += ["--hard", "--origin-capacity", "20", "--json"]
    plain = CliRunner().invoke(app, common)
    busy = CliRunner().invoke(app, [*common, "--traffic", "100"])
    assert plain.exit_code == 0, plain.output
    assert busy.exit_code == 0, busy.output
    plain_s = origin_bound(json.loads(plain.stdout))
    assert plain_s == pytest.approx(100, rel=0.05)  # 2,000 fetches at 20/s
    assert origin_bound(json.loads(busy.stdout)) < 0.8 * plain_s
    zero = CliRunner().invoke(app, [*common, "--traffic", "0"])
    assert zero.exit_code == 2
    assert "--traffic" in zero.output


def test_governed_run_slow_starts_from_the_initial_rate():
    """An origin far from busy: the controller starts at 10/s and doubles once per feedback
    delay (10 s) counted from the first tick at the new rate (1 s after each raise; the
    first raise waits a delay too): 10/s to 11 s, 20/s to 22 s, 40/s to 33 s, then 80/s:
    110 + 220 + 440 = 770 targets at 33 s, the other 230 at 80/s: 35.9 s for 1,000."""
    control = ControlSettings(initial_rate=10, feedback_delay=10, tick=1)
    seconds = governed_seconds(1000, (), capacity=1e9, control=control)
    assert seconds == pytest.approx(33 + 230 / 80, abs=0.1)
    assert governed_seconds(1000, (), capacity=1e9, control=control, rate_cap=20) == (
        pytest.approx(11 + 890 / 20, abs=0.1)
    )


def test_governed_run_is_cut_by_the_origin_and_settles_under_its_capacity():
    """Every purge fetched again at once, 20 spare fetches/s: a start at 50/s is cut at the
    first tick (pressure 2.5: x0.4, to 20/s), and the run then never goes faster than the
    origin's capacity allows: longer than the best pace (100 s for 2,000) but not by much."""
    control = ControlSettings(initial_rate=50, feedback_delay=10, tick=1)
    seconds = governed_seconds(2000, (), capacity=20, control=control)
    assert 100 < seconds < 150


def test_estimate_with_a_controller_names_backpressure_beside_the_best_pace():
    """The bound the controller sets is in the bounds with the best pace, and sets the
    duration: a faster start shortens it."""
    rates = tuple([1 / 30] * 1000)

    def governed(initial: float) -> float:
        control = ControlSettings(initial_rate=initial, feedback_delay=10, tick=1)
        origin = OriginModel(capacity=20, request_rates=rates, control=control)
        result = estimate(work((1000, 10)), pace(), origin)
        assert result.bottleneck.startswith("backpressure")
        best = next(s for n, s in result.bounds.items() if n.startswith("origin capacity"))
        assert result.duration_s > best
        return result.duration_s

    assert governed(40) < governed(5)


def test_bound_by_the_schedule_tail():
    """A 90-target shard one call at a time at 1 s per call: 90 s, while the global bounds
    say 50 s; the estimate says the schedule, not the pace, sets it."""
    result = estimate(
        work((90, 90), (10, 10)),
        pace(workers=2, concurrency=2, api_latency=1.0, window=1),
    )
    assert result.duration_s == pytest.approx(90)
    assert result.bounds["concurrency x latency (2 calls x 1 s)"] == pytest.approx(50)
    assert result.bottleneck.startswith("the schedule")


def test_workers_share_the_global_rate_and_take_shards_heaviest_first():
    """Two workers share 10 targets/s: 5/s each; four shards, heaviest first, two rounds."""
    result = estimate(work((100, 1), (150, 1), (100, 1), (50, 1)), pace(workers=2, rate=10))
    spans = {s.id: (s.worker, s.start_s, s.end_s) for s in result.spans}
    assert spans[1] == (0, 0.0, pytest.approx(30))  # 150 targets first, at 5/s
    assert spans[0][1:] == (0.0, pytest.approx(20))
    assert spans[2][1] == pytest.approx(20)  # the next heaviest, on the worker freed first
    assert result.duration_s == pytest.approx(40)  # 400 targets / 10/s: no idle tail


def test_origin_load_follows_the_rate():
    """At 10 targets/s and 0.2 fetches per soft-purged target: 2 extra fetches/s."""
    result = estimate(work((100, 10)), pace(rate=10), OriginModel(fetches_per_target=0.2))
    assert result.origin_peak_extra_rps == pytest.approx(2)


PYPI_LIST = Path(
    os.environ.get(
        "PURGER_PYPI_LIST",
        Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pypi-projects.tsv.gz",
    )
)


@pytest.mark.data
def test_first_letter_on_pypi_with_36_workers_is_set_by_p():
    """PyPI 2022 on all names, 36 workers one key at a time: 'p' alone sets the duration,
    about 4.3 x the ideal of that method; the balanced plan is within a few % of its own."""
    if not PYPI_LIST.is_file():
        pytest.skip(f"no PyPI list at {PYPI_LIST} (set PURGER_PYPI_LIST)")
    names = build_name_set(read_records(NamesSource(path=str(PYPI_LIST))), where="pypi")
    plan = make_plan(names, PlanSettings(workers=36))
    templates = parse_templates(["project/{name}"], [])
    result = forecast(
        plan,
        names,
        templates,
        NullProvider(),
        PaceOptions(rate=math.inf, concurrency=36),
        workers=36,
        api_latency=0.25,
    )
    p_names = sum(1 for n in names.names if n[0] == "p")
    assert result.first_letter.duration_s == pytest.approx(p_names * 0.25)
    assert 4.0 < result.first_letter.duration_s / result.first_letter_ideal_s < 4.6
    # The balanced plan is held back by no tail: its duration is its slowest global bound.
    assert result.estimate.duration_s <= 1.05 * max(result.estimate.bounds.values())


def test_estimate_json_has_the_documented_shape():
    """--json: duration, bottleneck, workers, api_calls, shards with worker and times,
    first_letter and origin_peak_extra_rps."""
    result = CliRunner().invoke(
        app,
        ["estimate", "--sample", "--provider", "fastly", "--workers", "8", "--json"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["workers"] == 8
    assert document["bottleneck"]
    assert document["duration_s"] > 0
    least = math.ceil(102_114 / 256)  # full batches of 256 keys, one per shard at worst more
    assert least <= document["api_calls"] <= least + len(document["shards"])
    shard = document["shards"][0]
    assert set(shard) == {"id", "worker", "start_s", "end_s"}
    assert all(0 <= s["worker"] < 8 for s in document["shards"])
    assert max(s["end_s"] for s in document["shards"]) == pytest.approx(
        document["duration_s"], rel=1e-3
    )
    assert document["first_letter"]["duration_s"] > document["duration_s"]
    assert document["origin_peak_extra_rps"] >= 0


def test_dry_run_prints_the_estimate_and_the_2022_comparison(tmp_path):
    """run --dry-run shows the duration, the bottleneck, the chart and PyPI's method."""
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"{c}{i}" for c in "abpp" for i in range(50)) + "\n")
    result = CliRunner().invoke(
        app,
        ["run", str(names), "--provider", "fastly", "--service-id", "S", "--dry-run",
         "--key-template", "k/{name}", "--rate", "10", "--workers", "2"],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "bound by configured pace (10 targets/s)" in result.stdout
    assert "shards per worker over time" in result.stdout
    assert "as PyPI did in 2022" in result.stdout


def test_simulate_runs_the_engine_against_the_simulated_origin(tmp_path):
    """--simulate: the real engine and controller in virtual time; every target is sent."""
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"n{i:05d}" for i in range(3000)) + "\n")
    result = CliRunner().invoke(
        app,
        ["estimate", str(names), "--simulate", "--json", "--seed", "3", "--rate", "400",
         "--feedback-delay", "10"],  # the first raise waits one
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["simulated"] is True
    assert document["targets"] == 3000
    assert document["duration_s"] > 3000 / 400  # never faster than the ceiling
    assert document["decisions"]


def test_simulate_without_json_prints_the_decisions(tmp_path):
    """--simulate as text: the summary and each decision of the controller with its reason
    (it once read a key the document does not have)."""
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"n{i:05d}" for i in range(3000)) + "\n")
    result = CliRunner().invoke(
        app,
        ["estimate", str(names), "--simulate", "--seed", "3", "--rate", "400",
         "--feedback-delay", "10"],  # the first raise waits one
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "simulated (seed 3)" in result.stdout
    assert "slow start" in result.stdout


def test_estimate_with_only_a_url_template_counts_only_urls():
    """--url-template alone: no key template is added behind the operator's back."""
    result = CliRunner().invoke(
        app,
        ["estimate", "--sample", "--provider", "fastly", "--json",
         "--url-template", "https://pypi.org/pypi/{name}/json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["targets"] == {"url": 102_114}
