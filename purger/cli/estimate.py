"""``purger estimate``: how long, what bounds it, what it costs the origin."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Annotated

import anyio
import typer
from rich.console import Console

from purger.cli._app import (
    FeedbackDelayOpt,
    FormatOpt,
    InitialRateOpt,
    MaxWeightOpt,
    MinRateOpt,
    NameColumnOpt,
    NamesUrlOpt,
    NormalizeOpt,
    SampleOpt,
    ShardsOpt,
    StrictOpt,
    TickOpt,
    WeightColumnOpt,
    WeightTransformOpt,
    _exit_codes,
    _plan_and_names,
    app,
    control_settings,
)
from purger.cli._job import ConfigOpt
from purger.errors import UsageError
from purger.health.control import ControlSettings
from purger.launch.build import PaceOptions
from purger.launch.forecast import (
    DryRunEnv,
    OriginOptions,
    dry_run_options,
    forecast_run,
    forecast_to_json,
    simulation_to_json,
)
from purger.names.nameset import (
    NameSet,
    Normalization,
    WeightSpec,
    WeightTransform,
)
from purger.names.sources import (
    SourceFormat,
)
from purger.planning.plan import (
    Plan,
    PlanSettings,
)
from purger.planning.targets import Template, parse_templates
from purger.providers import PROVIDER_NAMES, ProviderOptions
from purger.sim.cdn import SimConfig
from purger.sim.purge import origin_signals, simulate_purge
from purger.ui.report import (
    render_forecast,
    render_simulation,
)


def _show_forecast(
    the_plan: Plan,
    name_set: NameSet,
    templates: Sequence[Template],
    options: ProviderOptions,
    pace: PaceOptions,
    *,
    workers: int,
    api_latency: float | None,
    origin: OriginOptions | None,
    as_json: bool,
    out: Console,
) -> None:
    """What a run would send and how long it would take; nothing is sent (``purger
    estimate`` and ``purger run --dry-run`` alike: one forecast, the same figures)."""
    result = anyio.run(
        partial(
            forecast_run,
            the_plan,
            name_set,
            templates,
            dry_run_options(options),
            pace,
            workers=workers,
            env=DryRunEnv(os.environ),  # a dry run needs no credentials
            api_latency=api_latency,
            origin=origin,
        )
    )
    if as_json:
        typer.echo(json.dumps(forecast_to_json(result), indent=1))
        return
    render_forecast(
        out,
        provider=options.name,
        soft=result.soft,
        templates=[t.text for t in templates],
        shards=len(the_plan.shards),
        names=the_plan.total_count,
        forecast=result,
    )


@app.command()
def estimate(
    plan_or_names: Annotated[
        str | None,
        typer.Argument(
            help="A plan file from 'purger plan --out', or a names source planned on the fly.",
            show_default=False,
        ),
    ] = None,
    provider: Annotated[
        str, typer.Option("--provider", help=f"CDN API: {', '.join(PROVIDER_NAMES)}.")
    ] = "null",
    key_template: Annotated[
        list[str] | None, typer.Option("--key-template", help="Surrogate key per name.")
    ] = None,
    url_template: Annotated[
        list[str] | None, typer.Option("--url-template", help="URL per name.")
    ] = None,
    rate: Annotated[float, typer.Option("--rate", help="Targets per second at most.")] = 500.0,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="API calls in flight at most.", min=1)
    ] = 8,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Shards at once (default: the plan's).", min=1)
    ] = None,
    api_latency: Annotated[
        float | None,
        typer.Option("--api-latency", help="Seconds per API call (default: the provider's)."),
    ] = None,
    origin_capacity: Annotated[
        float | None,
        typer.Option("--origin-capacity", help="Spare origin fetches/s the refill may use."),
    ] = None,
    hard: Annotated[
        bool, typer.Option("--hard", help="Hard purge: every purged object is fetched again.")
    ] = False,
    traffic: Annotated[
        float | None,
        typer.Option(
            "--traffic",
            help="Client requests/s for these names, shared by the weight column: a purged "
            "object is fetched again at its next request, so the refill trails the purge.",
        ),
    ] = None,
    soft_cost: Annotated[
        float,
        typer.Option(
            "--soft-cost", help="Origin cost of a soft-purged object, as a share of a fetch."
        ),
    ] = 0.2,
    files_cap: Annotated[int, typer.Option("--files-cap", help="Cloudflare URLs per call.")] = 30,
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate",
            help="Run the real engine and controller against a simulated CDN and origin "
            "in virtual time instead of the closed form.",
        ),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="With --simulate: the random seed.")] = 0,
    feedback_delay: FeedbackDelayOpt = 60.0,
    tick: TickOpt = 5.0,
    min_rate: MinRateOpt = 1.0,
    initial_rate: InitialRateOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON.")] = False,
    names: Annotated[
        str | None,
        typer.Option("--names", help="With a plan file: where its names are.", metavar="FILE"),
    ] = None,
    names_url: NamesUrlOpt = None,
    sample: SampleOpt = False,
    fmt: FormatOpt = SourceFormat.AUTO,
    name_column: NameColumnOpt = "name",
    weight_column: WeightColumnOpt = None,
    weight_transform: WeightTransformOpt = WeightTransform.NONE,
    normalize: NormalizeOpt = Normalization.PEP503,
    strict: StrictOpt = False,
    shards: ShardsOpt = None,
    max_weight: MaxWeightOpt = None,
    config: ConfigOpt = None,
) -> None:
    """How long a purge will take, what bounds it, and how much it adds to the origin,
    beside PyPI's 2022 method (one shard per first character, one key per call).

    [b]Example:[/] purger estimate pypi-projects.tsv.gz --provider fastly
    --key-template 'project/{name}' --workers 36 --origin-capacity 400
    """
    out = Console()
    err = Console(stderr=True)
    with _exit_codes(err):
        # Keys by PyPI's template when no template at all is given; never added to URLs.
        default_keys = () if url_template else ("project/{name}",)
        templates = parse_templates(key_template or default_keys, url_template or ())
        pace = PaceOptions(rate=rate, concurrency=concurrency)
        options = ProviderOptions(
            name=provider,
            hard=hard,
            files_cap=files_cap,
            # Placeholders: an estimate needs each provider's limits, not its account.
            service_id="estimate",
            zone_id="estimate",
            endpoints=("http://estimate.invalid",),
        )
        the_plan, name_set = _plan_and_names(
            plan_or_names,
            names=names,
            names_url=names_url,
            sample=sample,
            fmt=fmt,
            name_column=name_column,
            weight=WeightSpec(column=weight_column, transform=weight_transform),
            normalization=normalize,
            strict=strict,
            settings=PlanSettings(workers=workers or 16, shards=shards, max_weight=max_weight),
            err=err,
        )
        if traffic is not None and not traffic > 0:
            raise UsageError(f"--traffic must be > 0 requests/s, not {traffic:g}")
        # Only health signals hold a run to the origin's capacity: the controller they drive
        # is part of the figure (as it is of the simulation).
        control = control_settings(
            rate=rate,
            initial_rate=initial_rate,
            min_rate=min_rate,
            feedback_delay=feedback_delay,
            tick=tick,
        )
        # The refetch cost follows the purge the provider sends (soft or hard, as set).
        origin = OriginOptions(
            capacity=origin_capacity, soft_cost=soft_cost, traffic=traffic, control=control
        )
        if simulate:
            simulation = _Simulation(origin_capacity, hard, seed, control)
            _show_simulation(the_plan, name_set, pace, simulation, as_json, out)
            return
        _show_forecast(
            the_plan,
            name_set,
            templates,
            options,
            pace,
            workers=workers or the_plan.settings.workers,
            api_latency=api_latency,
            origin=origin,
            as_json=as_json,
            out=out,
        )


@dataclass(frozen=True, slots=True)
class _Simulation:
    origin_capacity: float | None
    hard: bool
    seed: int
    control: ControlSettings


def _show_simulation(
    the_plan: Plan,
    name_set: NameSet,
    pace: PaceOptions,
    simulation: _Simulation,
    as_json: bool,
    out: Console,
) -> None:
    """The purge run for real against the simulated CDN and origin, in virtual time."""
    config = SimConfig(
        seed=simulation.seed, capacity=simulation.origin_capacity or SimConfig().capacity
    )
    result = simulate_purge(
        plan=the_plan,
        name_set=name_set,
        config=config,
        control=simulation.control,
        signals=origin_signals(config, p99_limit=0.5, p99_critical=2.0),
        rate=pace.rate,
        concurrency=pace.concurrency,
        hard=simulation.hard,
    )
    document = simulation_to_json(result, config)
    if as_json:
        typer.echo(json.dumps(document, indent=1))
    else:
        render_simulation(out, document)
