"""``purger demo``: a whole purge against the simulated CDN and origin."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Annotated, Final

import typer
from rich.console import Console
from rich.live import Live

from purger.cli._app import (
    _exit_codes,
    app,
)
from purger.cli.logs import snapshot_line
from purger.config.schema import Setting, check_value
from purger.engine.monitor import Snapshot
from purger.errors import UsageError
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
from purger.sim import demo as demo_world
from purger.sim.oracle import judge
from purger.sim.purge import origin_signals, simulate_purge
from purger.ui.live_view import live_view
from purger.ui.report import format_duration

# Checked by the job file's rules (NaN, infinity and negatives refused) though no file sets them.
_SPEED: Final = Setting(key="demo.speed", kind="float", flag="--speed", minimum=0,
                        meaning="virtual seconds per real second")  # fmt: skip
_SEED: Final = Setting(key="demo.seed", kind="int", flag="--seed", minimum=0,
                       meaning="the simulation's random seed")  # fmt: skip


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
        for setting, value in ((_SPEED, speed), (_SEED, seed)):
            if (problem := check_value(setting, value)) is not None:
                raise UsageError(f"{setting.flag}: {problem}")
        spec = WeightSpec(column="download_rank", transform=WeightTransform.ZIPF_RANK)
        name_set = build_name_set(
            read_records(NamesSource.sample(weight_column="download_rank")),
            where=SAMPLE_NAME,
            weight=spec,
        )
        the_plan = make_plan(name_set, PlanSettings(workers=16), source=SAMPLE_NAME)
        config, control = demo_world.config(seed), demo_world.CONTROL
        title = (
            f"purger demo: {the_plan.total_count:,} PyPI names in {len(the_plan.shards)} shards, "
            "16 workers, hard purge through a simulated CDN; the origin slows down at "
            f"t = {demo_world.SLOWDOWN_AT:g} s"
        )
        show, view = _presenter(out, title)
        with view:
            result = simulate_purge(
                plan=the_plan,
                name_set=name_set,
                config=config,
                control=control,
                signals=origin_signals(
                    config,
                    p99_limit=demo_world.LIMITS.p99_limit,
                    p99_critical=demo_world.LIMITS.p99_critical,
                ),
                concurrency=demo_world.CONCURRENCY,
                hard=True,  # every purged object is fetched again: the origin feels it
                observer=show,
                speed=speed or None,
            )
        if out.is_terminal:
            out.line()
        verdict = judge(result, demo_world.LIMITS)
        elapsed = result.outcome.statistics.elapsed
        pauses = sum(1 for _, d in result.decisions if d.action == "pause")
        out.print(
            f"done: {result.outcome.statistics.targets:,} targets purged in "
            f"{format_duration(elapsed)} (virtual), {len(result.decisions)} controller "
            f"decisions, {pauses} pause(s); origin p99 over its 0.5 s limit in "
            f"{1 - verdict.under_share:.1%} of seconds, over its 2 s critical limit for "
            f"{verdict.longest_over_critical:.0f} s at most",
            highlight=False,
            soft_wrap=True,
        )
        best = demo_world.best_safe_pace(
            the_plan, name_set, seed, start=the_plan.total_count / elapsed
        )
        out.print(
            f"best safe pace, found in hindsight by {len(best.tried)} fixed-rate runs: "
            f"{best.rate:,.0f} targets/s, {format_duration(best.verdict.seconds)}; "
            f"this run took {elapsed / best.verdict.seconds:.2f}x as long",
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
