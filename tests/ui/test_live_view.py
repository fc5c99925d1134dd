"""The live view, rendered to a string console: what an operator must see."""

from __future__ import annotations

import io
from dataclasses import replace

from rich.console import Console

from purger.engine.monitor import ControllerView, RetryView, SignalView, Snapshot
from purger.engine.run import ShardState
from purger.health.control import Action, ControlState, Decision
from purger.ui.live_view import live_view


def shard(id_: int, start: str, limit: str | None, done: int, total: int) -> ShardState:
    return ShardState(
        id=id_,
        start=start,
        limit=limit,
        weight=float(total),
        targets_done=done,
        targets_total=total,
        done=done == total,
    )


CUT = Decision(
    state=ControlState(rate=350.0, slow_start=False, ceiling=450.0),
    action=Action.CUT,
    reason="origin p99 at 1.30 of its limit: x0.7 of 500/s",
    pressure=1.3,
)
HOLD = replace(CUT, action=Action.HOLD, reason="pressure in the deadband", pressure=0.9)
SNAPSHOT = Snapshot(
    run_id="0123456789ab",
    mode="run",
    elapsed=754.0,
    targets_done=5_300,
    targets_total=9_000,
    failures=2,
    last_failure="project/bad: HTTP 400 from fastly: invalid key",
    shards=(
        shard(4, "p", "pe", 1_200, 3_000),
        shard(0, "", "c", 2_000, 2_000),
        shard(1, "c", "g", 2_000, 2_000),
        shard(2, "g", "p", 100, 1_000),
        shard(3, "pe", None, 0, 1_000),
    ),
    rate_now=312.0,
    rate_smoothed=340.0,
    allowed_rate=350.0,
    max_rate=500.0,
    min_rate=5.0,
    in_flight=3,
    concurrency=8,
    signals=(
        SignalView(name="origin p99", value=0.45, limit=0.5, critical=2.0, pressure=0.9, age=12.4),
        SignalView(
            name="origin errors",
            value=None,
            limit=0.01,
            critical=None,
            pressure=None,
            age=None,
            error="HTTP 503 from http://prometheus:9090",
        ),
    ),
    pressure=0.9,
    controller=ControllerView(
        phase="recovering", rate=350.0, last_change=CUT, last_change_age=95.0, latest=HOLD
    ),
    operator_paused=False,
    health_paused=False,
    stopping=None,
    eta_s=620.0,
)


def render(snapshot: Snapshot, **kwargs) -> str:
    console = Console(file=io.StringIO(), width=110, color_system=None)
    console.print(live_view(snapshot, title="purger run 0123456789ab: fastly SVC", **kwargs))
    return console.file.getvalue()


def test_done_shards_are_folded_and_the_rest_listed_heaviest_first():
    """Two shards done: counted, not listed; the others in the order given, with counts."""
    text = render(SNAPSHOT)
    assert "shards, heaviest first: 2 of 5 done (folded)" in text
    assert "['', 'c')" not in text
    assert "['c', 'g')" not in text
    lines = [line for line in text.splitlines() if "/ 3,000" in line or "/ 1,000" in line]
    assert [line.split()[0] for line in lines] == ["4", "2", "3"]
    assert "1,200 / 3,000" in text


def test_rates_flight_eta_and_failures_are_shown():
    """Now and allowed rates, the ceiling, calls in flight, ETA, and the failures."""
    text = render(SNAPSHOT)
    assert "5,300 / 9,000 targets (59%), ETA 10 min 20 s, elapsed 12 min 34 s\npurging\n" in text
    assert (
        "targets/s now 312/s, over a minute 340/s, allowed 350/s, ceiling 500/s (min 5/s)" in text
    )
    assert "calls in flight 3/8" in text
    assert "2 failed (last: project/bad: HTTP 400 from fastly: invalid key)" in text


def test_each_signal_shows_value_limit_and_age_and_why_it_is_unknown():
    """A signal's value, limit, critical limit, pressure and age; an unknown one, why."""
    text = render(SNAPSHOT)
    row = next(line for line in text.splitlines() if line.startswith("origin p99"))
    assert row.split() == ["origin", "p99", "0.45", "0.5", "2", "0.90", "12", "s"]
    row = next(line for line in text.splitlines() if line.startswith("origin errors"))
    assert row.split()[2:] == ["unknown", "0.01", "-", "-", "-", "HTTP", "503", "from",
                               "http://prometheus:9090"]  # fmt: skip


def test_the_controller_state_and_its_last_decision_with_the_reason():
    """Phase, the last change (how long ago, why) and the last tick's reason."""
    text = render(SNAPSHOT)
    assert "controller: recovering at 350/s, pressure 0.90" in text
    assert (
        "last change 1 min 35 s ago: cut -> 350/s: origin p99 at 1.30 of its limit: x0.7 of 500/s"
    ) in text
    assert "last tick: hold: pressure in the deadband" in text


def test_a_health_pause_shows_its_reason_and_an_operator_pause_shows_beside_it():
    """Both pauses, each named: the operator's, and the health's with its reason."""
    paused = replace(
        CUT,
        state=ControlState(rate=200.0, paused=True, slow_start=False),
        action=Action.PAUSE,
        reason="paused: origin p99 past the critical limit",
    )
    controller = replace(SNAPSHOT.controller, phase="paused", latest=paused)
    snapshot = replace(SNAPSHOT, health_paused=True, operator_paused=True, controller=controller)
    text = " ".join(render(snapshot).split())
    assert (
        "PAUSED by operator (p resumes); PAUSED by health: paused: origin p99 past the "
        "critical limit"
    ) in text
    only_health = render(replace(snapshot, operator_paused=False))
    assert "PAUSED by operator" not in only_health
    assert "PAUSED by health" in only_health
    waiting = replace(paused, action=Action.HOLD, reason="paused: healthy for 10 s of 30")
    later = replace(controller, last_change=paused, latest=waiting)
    text = " ".join(render(replace(snapshot, controller=later)).split())
    assert (
        "PAUSED by health: paused: origin p99 past the critical limit (healthy for 10 s of 30)"
    ) in text


def test_a_stop_shows_that_calls_in_flight_are_finishing():
    """After q or SIGINT: stopping, and why."""
    text = " ".join(render(replace(SNAPSHOT, stopping="q pressed")).split())
    assert "STOPPING: q pressed; finishing calls in flight" in text


def test_keys_are_listed_with_the_last_key_s_effect():
    """On a terminal, the keys and what the last one did."""
    text = render(SNAPSHOT, keys=True, message="ceiling 625/s")
    assert "p pause/resume" in text
    assert "+ faster (x1.25)" in text
    assert "- slower (x0.8)" in text
    assert "q stop (resumable)" in text
    assert "ceiling 625/s" in text
    assert "p pause/resume" not in render(SNAPSHOT)


def test_without_signals_the_pace_is_said_to_be_fixed():
    """No --signal: no health table, and the view says what paces the run."""
    text = render(replace(SNAPSHOT, signals=(), controller=None, pressure=None))
    assert "critical" not in text
    assert "no health signals" in text


def test_names_are_never_read_as_markup():
    """A shard boundary or a reason that looks like rich markup is shown as it is."""
    odd = replace(
        SNAPSHOT,
        shards=(shard(7, "[red]x", "[/]", 1, 2),),
        last_failure="k/[bold]: no",
    )
    text = render(odd)
    assert "['[red]x', '[/]')" in text
    assert "k/[bold]: no" in text


def test_many_shards_waiting_are_counted_in_one_line():
    """More shards than fit: the first ten and a count of the rest."""
    many = tuple(shard(i, f"n{i:02d}", f"n{i + 1:02d}", 0, 10) for i in range(25))
    text = render(replace(SNAPSHOT, shards=many))
    assert "... 15 more shards waiting" in text


def test_an_api_that_does_not_answer_is_on_the_screen_with_host_error_and_next_retry():
    """No call succeeded since the retry: NO ANSWER with host, error, attempt, next retry;
    once calls succeed again it fades to 'retried', then goes (half a minute later)."""
    retry = RetryView(
        error="fastly: ConnectError: All connection attempts failed",
        host="api.fastly.com",
        attempt=3,
        attempts=8,
        next_in_s=2.04,
        age_s=1.0,
        answering=False,
        retries=17,
    )
    text = " ".join(render(replace(SNAPSHOT, retry=retry)).split())  # the line may wrap
    assert (
        "NO ANSWER, retrying: fastly: ConnectError: All connection attempts failed "
        "(api.fastly.com; attempt 3 of 8, next in 2.0 s); 17 retries so far"
    ) in text
    assert "retried: fastly" in render(replace(SNAPSHOT, retry=replace(retry, answering=True)))
    gone = render(replace(SNAPSHOT, retry=replace(retry, answering=True, age_s=60.0)))
    assert "ConnectError" not in gone
