"""The live run: its snapshot and the operator's levers (pause, ceiling, stop)."""

from __future__ import annotations

import math

import anyio
import pytest

from purger.engine.monitor import OPERATOR, LiveRun
from purger.health.control import ControlSettings
from purger.health.governor import PAUSED_BY_HEALTH, Governor
from purger.planning.plan import PlanSettings, make_plan
from purger.planning.targets import parse_templates
from tests.engine.test_run import make_run, name_set, open_store
from tests.fakes import FakeClock, ScriptedProvider
from tests.health.test_governor import Readings

pytestmark = pytest.mark.anyio


def live_run(tmp_path, *, rate: float = 100.0, governed: bool = False):
    names = name_set(40)
    plan = make_plan(names, PlanSettings(shards=4, workers=2))
    templates = parse_templates(["k/{name}"], [])
    clock = FakeClock()
    store = open_store(tmp_path, plan, templates)
    run = make_run(plan, names, templates, ScriptedProvider(), store, clock)
    pacer = run._pacer
    pacer.targets.rate = rate
    governor = None
    if governed:
        governor = Governor(
            health=Readings(clock),
            pacer=pacer,
            settings=ControlSettings(initial_rate=50, min_rate=5, max_rate=rate),
            clock=clock,
            wall_clock=clock.now,
            targets_sent=lambda: 0,
        )
    live = LiveRun(
        run=run, pacer=pacer, governor=governor, stop=anyio.Event(), min_rate=5, run_id="r1"
    )
    return live, run, pacer, store


async def test_a_snapshot_counts_every_shard_and_the_whole(tmp_path):
    """Before and after the run: totals from the shards, every shard done at the end."""
    live, run, _, store = live_run(tmp_path, rate=math.inf)
    before = live.snapshot()
    assert (before.targets_done, before.targets_total, before.shards_done) == (0, 40, 0)
    assert before.run_id == "r1"
    assert before.controller is None
    await run.execute()
    after = live.snapshot()
    assert (after.targets_done, after.targets_total) == (40, 40)
    assert after.shards_done == len(after.shards) == 4
    store.close()


async def test_the_operator_pause_is_its_own_and_never_lifts_a_health_pause(tmp_path):
    """p pauses and resumes the operator's hold only; the snapshot shows both holds."""
    live, _, pacer, store = live_run(tmp_path, governed=True)
    pacer.hold(PAUSED_BY_HEALTH)
    assert live.toggle_pause() is True
    snapshot = live.snapshot()
    assert (snapshot.operator_paused, snapshot.health_paused) == (True, True)
    assert live.toggle_pause() is False
    assert pacer.holds == (PAUSED_BY_HEALTH,)
    assert live.snapshot().health_paused
    live.pause()
    pacer.release(PAUSED_BY_HEALTH)
    assert pacer.holds == (OPERATOR,)
    store.close()


async def test_the_ceiling_moves_by_steps_never_below_the_minimum(tmp_path):
    """+ and - move the ceiling x1.25 / x0.8; the pacer follows without signals."""
    live, _, pacer, store = live_run(tmp_path, rate=100.0)
    assert live.faster() == 125.0
    assert pacer.targets.rate == 125.0
    assert live.slower() == 100.0
    for _ in range(30):
        live.slower()
    assert live.max_rate == 5
    assert pacer.targets.rate == 5
    store.close()


async def test_with_signals_the_controller_follows_the_ceiling(tmp_path):
    """With a governor, the ceiling is the controller's maximum; its rate comes down."""
    live, _, pacer, store = live_run(tmp_path, rate=100.0, governed=True)
    assert pacer.targets.rate == 50  # the controller's initial rate
    live.set_max_rate(20)
    snapshot = live.snapshot()
    assert (snapshot.max_rate, snapshot.allowed_rate) == (20, 20)
    assert snapshot.controller is not None
    assert snapshot.controller.rate == 20
    live.faster()
    assert pacer.targets.rate == 20  # raising the ceiling does not raise the rate itself
    store.close()


async def test_an_unbounded_ceiling_stays_up_and_comes_down_from_the_rate_seen(tmp_path):
    """--rate inf: + keeps it unbounded; - before any rate was seen changes nothing."""
    live, _, _, store = live_run(tmp_path, rate=math.inf)
    assert math.isinf(live.faster())
    assert math.isinf(live.slower())
    store.close()


async def test_stop_is_graceful_first_and_hurries_the_second_time(tmp_path):
    """The first stop sets the event and stops the run; the second stops the drain."""
    live, run, _, store = live_run(tmp_path)
    live.stop("q pressed")
    assert live._stop.is_set()
    assert run.stopping == "q pressed"
    assert live.snapshot().stopping == "q pressed"
    hurried = []
    run.hurry = lambda: hurried.append(True)
    live.stop("q pressed")
    assert hurried == [True]
    store.close()
