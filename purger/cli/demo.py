"""``purger demo``: a whole purge against the simulated CDN and origin."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live

from purger.cli._app import (
    _exit_codes,
    app,
)
from purger.cli.logs import snapshot_line
from purger.engine.monitor import Snapshot
from purger.health.control import ControlSettings
from purger.names.nameset import (
    WeightSpec,
    WeightTransform,
    build_name_set,
)
from purger.names.sources import (
    SAMPLE_NAME,
    NamesSource,
    read_records,
)
from purger.planning.plan import (
    PlanSettings,
    make_plan,
)
from purger.sim.cdn import SimConfig
from purger.sim.purge import origin_signals, simulate_purge
from purger.ui.live_view import live_view
from purger.ui.report import format_duration


@app.command()
def demo(
    speed: Annotated[
        float,
        typer.Option("--speed", help="Virtual seconds per real second (0: as fast as it can)."),
    ] = 20.0,
    seed: Annotated[int, typer.Option("--seed", help="The simulation's random seed.")] = 1,
) -> None:
    """Watch a whole purge with nothing installed: 102,114 real PyPI names with traffic by
    download rank, purged through a simulated CDN in front of a simulated origin, which slows
    down half-way; backpressure follows it. About 40 s.

    [b]Example:[/] purger demo
    """
    out = Console()
    err = Console(stderr=True)
    with _exit_codes(err):
        spec = WeightSpec(column="download_rank", transform=WeightTransform.ZIPF_RANK)
        name_set = build_name_set(
            read_records(NamesSource.sample(weight_column="download_rank")),
            where=SAMPLE_NAME,
            weight=spec,
        )
        the_plan = make_plan(name_set, PlanSettings(workers=16), source=SAMPLE_NAME)
        # Half-way (about 300 virtual seconds in), the origin loses 40 % of its capacity.
        config = SimConfig(seed=seed, request_rate=20_000.0, capacity_changes=((300.0, 600.0),))
        control = ControlSettings(initial_rate=100, feedback_delay=30, tick=5)
        title = (
            f"purger demo: {the_plan.total_count:,} PyPI names in {len(the_plan.shards)} shards, "
            "16 workers, hard purge through a simulated CDN; the origin slows down at t = 300 s"
        )
        show, view = _presenter(out, title)
        with view:
            result = simulate_purge(
                plan=the_plan,
                name_set=name_set,
                config=config,
                control=control,
                signals=origin_signals(config, p99_limit=0.5, p99_critical=2.0),
                concurrency=8,
                hard=True,  # every purged object is fetched again: the origin feels it
                observer=show,
                speed=speed or None,
            )
        if out.is_terminal:
            out.line()
        history = result.history
        over = sum(step.p99 > 0.5 for step in history) / max(1, len(history))
        pauses = sum(1 for _, d in result.decisions if d.action == "pause")
        out.print(
            f"done: {result.outcome.statistics.targets:,} targets purged in "
            f"{format_duration(result.outcome.statistics.elapsed)} (virtual), "
            f"{len(result.decisions)} controller decisions, {pauses} pause(s); origin p99 over "
            f"its 0.5 s limit in {over:.1%} of seconds, peak {max(s.p99 for s in history):.2f} s",
            highlight=False,
            soft_wrap=True,
        )


#: Without a terminal, a progress line every this many virtual seconds (about 1.5 s of a
#: demo at its normal speed).
_LINE_EVERY = 30.0


def _presenter(
    out: Console, title: str
) -> tuple[Callable[[Snapshot], None], AbstractContextManager[object]]:
    """The live view on a terminal; elsewhere (a pipe, CI) progress lines, as a run
    prints them, since a live view off a terminal shows only its last frame."""
    if out.is_terminal:
        live = Live(console=out, auto_refresh=False, transient=False)

        def redraw(snapshot: Snapshot) -> None:
            live.update(live_view(snapshot, title=title), refresh=True)

        return redraw, live
    out.print(title, highlight=False, markup=False, soft_wrap=True)
    said = [-_LINE_EVERY]

    def print_line(snapshot: Snapshot) -> None:
        if snapshot.elapsed - said[0] >= _LINE_EVERY:
            said[0] = snapshot.elapsed
            out.print(snapshot_line(snapshot), highlight=False, markup=False, soft_wrap=True)

    return print_line, nullcontext()
