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

from purger.cli._app import MODEL_PANEL, OUTPUT_PANEL, PROVIDER_PANEL, _exit_codes, app
from purger.cli._job import ConfigOpt
from purger.cli._names import plan_and_names
from purger.cli._names_options import (
    NamesOptions,
    PlanNames,
    PlanOrNamesArg,
    RunWorkersOpt,
    Targets,
)
from purger.cli._options import number, number_value, with_options
from purger.cli._provider_options import FilesCapOpt, HardOpt
from purger.cli._run_options import Health, PaceOptions
from purger.health.control import ControlSettings
from purger.launch.forecast import (
    DryRunEnv,
    OriginOptions,
    dry_run_options,
    forecast_run,
    forecast_to_json,
    simulation_to_json,
)
from purger.names.nameset import NameSet
from purger.planning.plan import Plan
from purger.planning.targets import Template, bind_rows, columns_of
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
@with_options
def estimate(
    plan_or_names: PlanOrNamesArg = None,
    *,
    names: NamesOptions,
    plan_names: PlanNames,
    targets: Targets,
    pace: PaceOptions,
    health: Health,
    provider: Annotated[
        str,
        typer.Option(
            "--provider",
            help=f"CDN API: {', '.join(PROVIDER_NAMES)}.",
            rich_help_panel=PROVIDER_PANEL,
        ),
    ] = "null",
    hard: HardOpt = False,
    files_cap: FilesCapOpt = "30",
    workers: RunWorkersOpt = None,
    api_latency: Annotated[
        str | None,
        number(
            "estimate.api_latency", "Seconds per API call (default: the provider's).", MODEL_PANEL
        ),
    ] = None,
    origin_capacity: Annotated[
        str | None,
        number(
            "estimate.origin_capacity", "Spare origin fetches/s the refill may use.", MODEL_PANEL
        ),
    ] = None,
    traffic: Annotated[
        str | None,
        number(
            "estimate.traffic",
            "Client requests/s for these names, shared by the weight column: a purged "
            "object is fetched again at its next request, so the refill trails the purge.",
            MODEL_PANEL,
        ),
    ] = None,
    soft_cost: Annotated[
        str,
        number(
            "estimate.soft_cost",
            "Origin cost of a soft-purged object, as a share of a fetch (0 to 1).",
            MODEL_PANEL,
        ),
    ] = "0.2",
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate",
            help="Run the real engine and controller against a simulated CDN and origin "
            "in virtual time instead of the closed form.",
            rich_help_panel=MODEL_PANEL,
        ),
    ] = False,
    seed: Annotated[
        str, number("estimate.seed", "With --simulate: the random seed.", MODEL_PANEL)
    ] = "0",
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the estimate as JSON.", rich_help_panel=OUTPUT_PANEL),
    ] = False,
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
        model = _Model.of(
            workers=workers,
            api_latency=api_latency,
            origin_capacity=origin_capacity,
            traffic=traffic,
            soft_cost=soft_cost,
            seed=seed,
        )
        # Keys by PyPI's template when no template at all is given; never added to URLs.
        templates = targets.templates(default_keys=("project/{name}",))
        options = ProviderOptions(
            name=provider,
            hard=hard,
            files_cap=number_value("provider.files_cap", files_cap),
            # Placeholders: an estimate needs each provider's limits, not its account.
            service_id="estimate",
            zone_id="estimate",
            endpoints=("http://estimate.invalid",),
        )
        the_plan, name_set = plan_and_names(
            plan_or_names,
            names,
            plan_names,
            workers=model.workers,
            err=err,
            columns=columns_of(templates),
        )
        templates = bind_rows(templates, name_set.rows)
        # Only health signals hold a run to the origin's capacity: the controller they drive
        # is part of the figure (as it is of the simulation).
        control = health.control(pace.rate)
        if simulate:
            simulation = _Simulation(model.origin_capacity, hard, model.seed, control)
            _show_simulation(the_plan, name_set, pace, simulation, as_json, out)
            return
        # The refetch cost follows the purge the provider sends (soft or hard, as set).
        origin = OriginOptions(
            capacity=model.origin_capacity,
            soft_cost=model.soft_cost,
            traffic=model.traffic,
            control=control,
        )
        _show_forecast(
            the_plan,
            name_set,
            templates,
            options,
            pace,
            workers=model.workers or the_plan.settings.workers,
            api_latency=model.api_latency,
            origin=origin,
            as_json=as_json,
            out=out,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Model:
    """The estimate's own numbers, each checked by the schema as a flag."""

    workers: int | None
    api_latency: float | None
    origin_capacity: float | None
    traffic: float | None
    soft_cost: float
    seed: int

    @classmethod
    def of(cls, **texts: str | None) -> _Model:
        keys = {"workers": "plan.workers"}
        return cls(
            **{
                name: number_value(keys.get(name, f"estimate.{name}"), text)
                for name, text in texts.items()
            }
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
