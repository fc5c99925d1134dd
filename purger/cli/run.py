"""``purger run``: purge a plan, batched, paced, resumable."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from purger.cli._app import (
    ExitCode,
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
    SignalOpt,
    SignalsFileOpt,
    StrictOpt,
    TickOpt,
    WeightColumnOpt,
    WeightTransformOpt,
    _exit_codes,
    _missing,
    _plan_and_names,
    _signals,
    app,
    control_settings,
)
from purger.cli._job import ConfigOpt
from purger.cli.confirm import Declined, confirm_run, is_interactive, recorded_failures
from purger.cli.estimate import _show_forecast
from purger.cli.session import Output, RunRequest, run_with_state
from purger.engine.run import RunSettings
from purger.errors import UsageError
from purger.launch.build import PaceOptions
from purger.names.nameset import (
    Normalization,
    WeightSpec,
    WeightTransform,
)
from purger.names.sources import (
    SourceFormat,
)
from purger.planning.plan import PlanSettings
from purger.planning.targets import parse_templates
from purger.providers import PROVIDER_NAMES, ProviderOptions
from purger.state.sqlite import holds_run


class Network(StrEnum):
    STAGING = "staging"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class AkamaiAction(StrEnum):
    INVALIDATE = "invalidate"
    DELETE = "delete"


class AkamaiKeyType(StrEnum):
    TAG = "tag"
    CPCODE = "cpcode"


@app.command()
def run(
    plan_or_names: Annotated[
        str | None,
        typer.Argument(
            help="A plan file from 'purger plan --out', or a names source planned on the fly.",
            show_default=False,
        ),
    ] = None,
    provider: Annotated[
        str,
        typer.Option(
            "--provider", help=f"CDN API: {', '.join(PROVIDER_NAMES)}.", show_default=False
        ),
    ] = "",
    key_template: Annotated[
        list[str] | None,
        typer.Option("--key-template", help="Surrogate key per name, e.g. 'project/{name}'."),
    ] = None,
    url_template: Annotated[
        list[str] | None,
        typer.Option(
            "--url-template", help="URL per name, e.g. 'https://pypi.org/pypi/{name}/json'."
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="SQLite file recording progress (required).", metavar="FILE"),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run recorded in --state.")
    ] = False,
    resume_or_start: Annotated[
        bool,
        typer.Option(
            "--resume-or-start",
            help="Continue the run in --state if it holds one, else start it (cron jobs).",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Send nothing; print what would be sent and how long."),
    ] = False,
    rate: Annotated[
        float,
        typer.Option("--rate", help="Targets per second at most ('inf': provider limits only)."),
    ] = 500.0,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="API calls in flight at most.", min=1)
    ] = 8,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Shards purged at once (default: the plan's).", min=1),
    ] = None,
    max_duration: Annotated[
        float | None,
        typer.Option("--max-duration", help="Stop cleanly (exit 3, resumable) after SECONDS."),
    ] = None,
    drain_timeout: Annotated[
        float,
        typer.Option("--drain-timeout", help="On a stop, seconds to wait for calls in flight."),
    ] = 30.0,
    api_base: Annotated[
        str | None, typer.Option("--api-base", help="Send API calls here (a proxy or a fake).")
    ] = None,
    hard: Annotated[
        bool, typer.Option("--hard", help="Hard purge (evict) instead of the default soft purge.")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds for each API call.")] = 10.0,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Do not ask before sending (needed without a terminal)."),
    ] = False,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            help="text: the live view on a terminal, else progress lines on stderr; "
            "json: one JSON object a line on stdout.",
        ),
    ] = LogFormat.TEXT,
    progress_interval: Annotated[
        float,
        typer.Option(
            "--progress-interval", help="Seconds between progress lines (or JSON events)."
        ),
    ] = 10.0,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Purge again the targets --state records as failed (same run options).",
        ),
    ] = False,
    service_id: Annotated[str | None, typer.Option("--service-id", help="Fastly service.")] = None,
    zone_id: Annotated[str | None, typer.Option("--zone-id", help="Cloudflare zone.")] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="File holding the Fastly or Cloudflare API token (instead of its variable).",
            metavar="FILE",
        ),
    ] = None,
    files_cap: Annotated[
        int, typer.Option("--files-cap", help="Cloudflare URLs per call: 30, 100 or 500.")
    ] = 30,
    edgerc: Annotated[
        Path | None, typer.Option("--edgerc", help="Akamai credentials file (~/.edgerc).")
    ] = None,
    edgerc_section: Annotated[
        str, typer.Option("--edgerc-section", help="Section of --edgerc.")
    ] = "default",
    network: Annotated[
        Network, typer.Option("--network", help="Akamai network.")
    ] = Network.PRODUCTION,
    akamai_action: Annotated[
        AkamaiAction, typer.Option("--akamai-action", help="Akamai: invalidate (soft) or delete.")
    ] = AkamaiAction.INVALIDATE,
    akamai_key_type: Annotated[
        AkamaiKeyType, typer.Option("--akamai-key-type", help="Akamai keys are tags or cpcodes.")
    ] = AkamaiKeyType.TAG,
    endpoint: Annotated[
        list[str] | None,
        typer.Option("--endpoint", help="Varnish node http://host:port (repeat for each node)."),
    ] = None,
    key_header: Annotated[
        str | None,
        typer.Option("--key-header", help="Varnish header for keys (xkey-softpurge / xkey-purge)."),
    ] = None,
    names: Annotated[
        str | None,
        typer.Option(
            "--names", help="With a plan file: where its names are, if moved.", metavar="FILE"
        ),
    ] = None,
    signal: SignalOpt = None,
    signals_file: SignalsFileOpt = None,
    feedback_delay: FeedbackDelayOpt = 60.0,
    tick: TickOpt = 5.0,
    min_rate: MinRateOpt = 1.0,
    initial_rate: InitialRateOpt = None,
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
    """Purge every name's targets, shard by shard, batched, paced and resumable.

    [b]Example:[/] FASTLY_API_TOKEN=... purger run plan.json --provider fastly
    --service-id SVC --key-template 'project/{name}' --state purge.sqlite
    """
    out = Console()
    err = Console(stderr=True)
    with _exit_codes(err):
        templates = parse_templates(key_template or (), url_template or ())
        pace = PaceOptions(rate=rate, concurrency=concurrency)
        health = _signals(signal, signals_file)
        control = (
            control_settings(
                rate=rate,
                initial_rate=initial_rate,
                min_rate=min_rate,
                feedback_delay=feedback_delay,
                tick=tick,
            )
            if health
            else None
        )
        options = ProviderOptions(
            name=provider or _missing("--provider"),
            api_base=api_base,
            hard=hard,
            timeout=timeout,
            service_id=service_id,
            zone_id=zone_id,
            token_file=token_file,
            files_cap=files_cap,
            edgerc=edgerc,
            edgerc_section=edgerc_section,
            network=network.value,
            akamai_action=akamai_action.value,
            akamai_key_type=akamai_key_type.value,
            endpoints=tuple(endpoint or ()),
            key_header=key_header,
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
        run_settings = RunSettings(
            workers=workers or the_plan.settings.workers,
            max_duration=max_duration,
            drain_timeout=drain_timeout,
        )
        if dry_run:
            _show_forecast(
                the_plan,
                name_set,
                templates,
                options,
                pace,
                workers=run_settings.workers,
                api_latency=None,
                origin=None,
                as_json=False,
                out=out,
            )
            return
        if state is None:
            raise UsageError("--state FILE is required: it records progress so nothing is lost")
        if resume_or_start:
            if resume:
                raise UsageError("--resume and --resume-or-start: one at a time")
            resume = holds_run(state)  # a file that is not a purger state is refused
        elif resume and not state.exists():
            raise UsageError(f"no state at {state} to resume (without --resume a new run starts)")
        if not progress_interval > 0:
            raise UsageError(f"--progress-interval must be > 0, not {progress_interval}")
        failures = None
        if retry_failed:
            if resume or resume_or_start:
                raise UsageError("--retry-failed and --resume: one at a time")
            failures = recorded_failures(state)
            if not failures:
                err.print(f"no failed targets recorded in {state}: nothing to retry")
                raise typer.Exit(ExitCode.OK)
        interactive = is_interactive()
        if not yes:
            try:
                confirm_run(
                    plan=the_plan,
                    name_set=name_set,
                    templates=templates,
                    options=options,
                    pace=pace,
                    workers=run_settings.workers,
                    state=state,
                    resume=resume,
                    failures=failures,
                    interactive=interactive,
                    show=interactive or log_format is LogFormat.TEXT,
                    out=out,
                )
            except Declined:
                err.print("nothing sent", highlight=False)
                raise typer.Exit(ExitCode.USAGE) from None
        code = run_with_state(
            RunRequest(
                path=state,
                resume=resume,
                retry_failed=retry_failed,
                plan=the_plan,
                name_set=name_set,
                templates=templates,
                options=options,
                pace=pace,
                settings=run_settings,
                signals=health,
                control=control,
                min_rate=min_rate,
            ),
            Output(
                out=out,
                err=err,
                json=log_format is LogFormat.JSON,
                live=interactive and log_format is LogFormat.TEXT,
                interval=progress_interval,
            ),
        )
    raise typer.Exit(code)
