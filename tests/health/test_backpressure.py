"""Backpressure end to end in virtual time: the real engine, Varnish adapter, health reader
and controller against the simulated CDN and origin (fixed seeds)."""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

import pytest

from purger.health.control import Action, ControlSettings
from purger.health.signals import SignalSpec
from purger.names.nameset import NameSet, Normalization, WeightSpec, WeightTransform, build_name_set
from purger.names.sources import NamesSource, read_records
from purger.planning.plan import PlanSettings, make_plan
from purger.sim.cdn import SimConfig, SimulatedCDN
from purger.sim.purge import SimulationResult, origin_signals, simulate_purge

P99_LIMIT = 0.5
P99_CRITICAL = 2.0
CONTROL = ControlSettings(initial_rate=100, feedback_delay=45, tick=5)
D = CONTROL.feedback_delay


def uniform_names(count: int) -> NameSet:
    return build_name_set(
        [(f"n{i:06d}", None, i) for i in range(count)], where="t", normalization=Normalization.NONE
    )


def signals(config: SimConfig) -> tuple[SignalSpec, ...]:
    return origin_signals(config, p99_limit=P99_LIMIT, p99_critical=P99_CRITICAL)


def simulate(names: NameSet, config: SimConfig, workers: int = 4) -> SimulationResult:
    plan = make_plan(names, PlanSettings(workers=workers))
    return simulate_purge(
        plan=plan, name_set=names, config=config, control=CONTROL, signals=signals(config)
    )


def rate_at(result: SimulationResult, t: float) -> float:
    """The allowed rate in force at virtual time ``t``."""
    return [rate for at, rate, _ in result.rates if at <= t][-1]


def assert_safe(result: SimulationResult, *, over_share: float = 0.05) -> None:
    """p99 over its limit in at most ``over_share`` of ticks; never over critical for
    longer than one feedback delay."""
    history = result.history
    over = sum(step.p99 > P99_LIMIT for step in history) / len(history)
    assert over <= over_share, f"p99 over its limit in {over:.1%} of ticks"
    longest = max(
        (
            len(list(run))
            for above, run in itertools.groupby(s.p99 > P99_CRITICAL for s in history)
            if above
        ),
        default=0,
    )
    step = history[1].time - history[0].time
    assert longest * step <= D


def test_converges_near_the_sustainable_rate_without_oscillating():
    """Steady origin: after 5 feedback delays the achieved purge rate is within 20 % of the
    best sustainable rate, with at most 2 changes of direction per 10 feedback delays."""
    names = uniform_names(400_000)
    config = SimConfig(seed=1, request_rate=60_000.0)
    best = SimulatedCDN(names, config).sustainable_purge_rate(P99_LIMIT)
    result = simulate(names, config)

    end = result.outcome.statistics.elapsed
    window = [s for s in result.history if 5 * D <= s.time < end - D]
    achieved = sum(s.purged_targets for s in window) / (
        len(window) * (window[1].time - window[0].time)
    )
    assert abs(achieved - best) <= 0.2 * best, f"achieved {achieved:.0f}/s, best {best:.0f}/s"

    rates = [rate for at, rate, _ in result.rates if at >= 5 * D]
    moves = [math.copysign(1, b - a) for a, b in itertools.pairwise(rates) if b != a]
    reversals = sum(1 for a, b in itertools.pairwise(moves) if a != b)
    assert reversals <= 2 * math.ceil((end - 5 * D) / (10 * D))
    assert_safe(result)


def test_a_capacity_drop_is_followed_down_and_the_recovery_up():
    """Capacity 1000 -> 700 at 500 s -> 1000 at 1100 s: the rate falls, then rises again."""
    names = uniform_names(300_000)
    config = SimConfig(
        seed=2, request_rate=60_000.0, capacity_changes=((500.0, 700.0), (1100.0, 1000.0))
    )
    result = simulate(names, config)
    before, during = rate_at(result, 480), rate_at(result, 1050)
    after = max(rate for at, rate, _ in result.rates if at > 1100)
    assert during < 0.6 * before
    assert after > 1.5 * during
    assert any(d.action is Action.PAUSE and 500 <= at < 600 for at, d in result.decisions)


def test_missing_metrics_pause_within_the_grace_period_and_resume_after():
    """/metrics down from 400 s to 700 s: paused within the grace period, no raise while
    the data is missing, resumed once it is back and healthy."""
    names = uniform_names(300_000)
    config = SimConfig(seed=3, request_rate=60_000.0, metrics_outages=((400.0, 700.0),))
    result = simulate(names, config)
    pauses = [at for at, d in result.decisions if d.action is Action.PAUSE]
    resumes = [at for at, d in result.decisions if d.action is Action.RESUME]
    assert any(400 <= at <= 400 + CONTROL.grace + 2 * CONTROL.tick for at in pauses)
    assert any(at >= 700 for at in resumes)
    assert not any(d.action is Action.RAISE and 400 <= at < 700 for at, d in result.decisions)
    rate_before = rate_at(result, 399)
    assert all(rate <= rate_before for at, rate, _ in result.rates if 400 <= at < 700)


def zipf_names(source: NamesSource) -> NameSet:
    spec = WeightSpec(column="download_rank", transform=WeightTransform.ZIPF_RANK)
    return build_name_set(read_records(source), where=source.path, weight=spec)


def test_the_bundled_pypi_sample_purges_safely_with_zipf_traffic():
    """102,114 real PyPI names, traffic by download rank: never over critical for longer
    than a feedback delay. The purge is a fifth as long as the whole list's, so the
    overshoot of the first minutes weighs more: over the limit in at most 10 % of ticks."""
    names = zipf_names(NamesSource.sample(weight_column="download_rank"))
    result = simulate(names, SimConfig(seed=7, request_rate=20_000.0), workers=16)
    assert result.outcome.statistics.targets == len(names.names)
    assert_safe(result, over_share=0.10)


PYPI_LIST = Path(
    os.environ.get(
        "PURGER_PYPI_LIST",
        Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pypi-projects.tsv.gz",
    )
)


@pytest.mark.data
def test_the_whole_pypi_list_purges_safely_with_zipf_traffic():
    """All 886,323 PyPI names, zipf-rank traffic: p99 over its limit in at most 5 % of
    ticks, never over critical for more than one feedback delay."""
    if not PYPI_LIST.is_file():
        pytest.skip(f"no PyPI list at {PYPI_LIST} (set PURGER_PYPI_LIST)")
    names = zipf_names(NamesSource(path=str(PYPI_LIST), weight_column="download_rank"))
    result = simulate(names, SimConfig(seed=7, request_rate=20_000.0), workers=16)
    assert result.outcome.statistics.targets == 886_323
    assert_safe(result)
