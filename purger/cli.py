"""The operator's command line. The only place that maps errors to exit codes.

Exit codes (``../shared/DESIGN.md``): 0 done; 1 finished with failed targets; 2 usage,
config or input error; 3 stopped early and resumable; 4 could not start.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from enum import IntEnum, StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated, Final

import anyio
import httpx
import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from purger import __version__
from purger.config import load_signals
from purger.control import ControlSettings, Decision
from purger.errors import PurgerError, UnavailableError, UsageError
from purger.estimate import OriginModel
from purger.health import HealthReader, Sample, SignalSpec, parse_signal
from purger.launch import (
    DryRunEnv,
    Forecast,
    PaceOptions,
    check_names_match,
    execute_run,
    forecast,
    forecast_to_json,
    simulation_to_json,
    weight_spec_of,
)
from purger.names import (
    NameSet,
    Normalization,
    Record,
    WeightSpec,
    WeightTransform,
    build_name_set,
)
from purger.pacing import AnyioClock
from purger.plan import (
    Plan,
    PlanSettings,
    compare_first_letter,
    make_plan,
    plan_to_json,
    read_plan,
    write_plan,
)
from purger.providers import PROVIDER_NAMES, ProviderOptions, create_provider
from purger.report import (
    demo_view,
    format_duration,
    render_forecast,
    render_plan,
    render_probe,
    render_simulation,
    render_skipped,
    render_status,
)
from purger.run import RunSettings, RunStatistics, RunStatus
from purger.sim import SimConfig
from purger.simulate import Snapshot, origin_signals, simulate_purge
from purger.sources import (
    SAMPLE_NAME,
    NamesSource,
    SourceFormat,
    fetch_simple_index,
    read_records,
    redact_url,
)
from purger.state import StateStore, StateSummary, status_document
from purger.targets import Template, parse_templates

__all__ = ["ExitCode", "app", "main"]


class ExitCode(IntEnum):
    OK = 0
    FAILED_TARGETS = 1
    USAGE = 2
    STOPPED = 3
    CANNOT_START = 4


class Network(StrEnum):
    STAGING = "staging"
    PRODUCTION = "production"


class AkamaiAction(StrEnum):
    INVALIDATE = "invalidate"
    DELETE = "delete"


class AkamaiKeyType(StrEnum):
    TAG = "tag"
    CPCODE = "cpcode"


_NAMES_URL_TIMEOUT: Final = httpx.Timeout(60.0, connect=10.0)

app = typer.Typer(
    name="purger",
    help="Rate-limited, sharded mass cache purges: plan, estimate, run.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold tokens
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"purger {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Rate-limited, sharded mass cache purges: plan, estimate, run."""


@contextmanager
def _exit_codes(err: Console) -> Iterator[None]:
    """Turn purger's errors into one line on stderr and the documented exit code."""
    try:
        yield
    except UsageError as error:
        err.print(f"purger: error: {error}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(ExitCode.USAGE) from None
    except UnavailableError as error:
        err.print(f"purger: cannot start: {error}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(ExitCode.CANNOT_START) from None
    except PurgerError as error:  # a new branch of the tree without a code yet: still one line
        err.print(f"purger: error: {error}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(ExitCode.USAGE) from None


def _load_names(
    *,
    source: str | None,
    names_url: str | None,
    sample: bool,
    fmt: SourceFormat,
    name_column: str,
    weight: WeightSpec,
    normalization: Normalization,
    strict: bool,
    err: Console,
) -> tuple[NameSet, str]:
    """Read and normalize names from exactly one source; return them and where they came from."""
    given = [
        flag
        for flag, on in (("SOURCE", source), ("--names-url", names_url), ("--sample", sample))
        if on
    ]
    if len(given) != 1:
        raise UsageError(
            "give exactly one names source: a file, '-' for stdin, --names-url URL or --sample"
            + (f" (got {', '.join(given)})" if given else "")
        )
    if names_url is not None:
        if weight.column is not None:
            raise UsageError(
                "--weight-column needs a TSV or CSV source; --names-url has names only"
            )
        where = redact_url(names_url)
        records: Iterable[Record] = _download(names_url, err)
    else:
        names_source = (
            NamesSource.sample(weight_column=weight.column)
            if sample
            else NamesSource(
                path=source or "-", format=fmt, name_column=name_column, weight_column=weight.column
            )
        )
        where = names_source.where
        records = read_records(names_source, stdin=sys.stdin.buffer)
    name_set = build_name_set(
        records, where=where, normalization=normalization, weight=weight, strict=strict
    )
    return name_set, where


def _download(url: str, err: Console) -> list[Record]:
    progress = Progress(
        TextColumn("names"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
    )
    task = progress.add_task("download", total=None)
    headers = {"User-Agent": f"purger/{__version__}"}
    with (
        progress,
        httpx.Client(timeout=_NAMES_URL_TIMEOUT, headers=headers, follow_redirects=True) as client,
    ):
        return fetch_simple_index(
            client,
            url,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )


# Options shared by the commands that read names (plan, run), declared once.
NamesUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--names-url", help="Read names from a PEP 691 Simple API index (JSON).", metavar="URL"
    ),
]
SampleOpt = Annotated[
    bool, typer.Option("--sample", help="Use the bundled sample of real PyPI names.")
]
FormatOpt = Annotated[
    SourceFormat, typer.Option("--format", help="Names file layout; auto reads the suffix.")
]
NameColumnOpt = Annotated[
    str, typer.Option("--name-column", help="Table column holding the names.")
]
WeightColumnOpt = Annotated[
    str | None,
    typer.Option(
        "--weight-column", help="Table column holding weights (default: every name weighs 1)."
    ),
]
WeightTransformOpt = Annotated[
    WeightTransform,
    typer.Option(
        "--weight-transform", help="zipf-rank: the column is a popularity rank; weight 1/rank."
    ),
]
NormalizeOpt = Annotated[
    Normalization,
    typer.Option("--normalize", help="pep503 for PyPI project names, none for other key spaces."),
]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Fail on invalid names instead of skipping them.")
]
ShardsOpt = Annotated[
    int | None,
    typer.Option("--shards", help="About this many shards (default: 8 per worker).", min=1),
]
MaxWeightOpt = Annotated[
    float | None,
    typer.Option("--max-weight", help="Instead of --shards: no shard heavier than this."),
]


SignalOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--signal",
        help="A health signal, e.g. 'name=p99,source=scrape,url=http://origin:8000/metrics,"
        "limit=0.5,critical=2,kind=latency,query=origin_request_latency_p99_seconds' (repeat).",
    ),
]
SignalsFileOpt = Annotated[
    Path | None,
    typer.Option("--signals", help="TOML file of [[signal]] tables.", metavar="FILE"),
]


def _signals(texts: Sequence[str] | None, path: Path | None) -> tuple[SignalSpec, ...]:
    specs = [parse_signal(text) for text in texts or ()]
    if path is not None:
        specs += load_signals(path)
    return tuple(specs)


@app.command()
def plan(
    source: Annotated[
        str | None,
        typer.Argument(
            help="Names file (text, .tsv, .csv; .gz too), or '-' for stdin.", show_default=False
        ),
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
    workers: Annotated[
        int, typer.Option("--workers", help="Workers that will take shards heaviest first.", min=1)
    ] = 16,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the plan document as JSON.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the plan document to FILE.", metavar="FILE")
    ] = None,
    first_letter: Annotated[
        bool,
        typer.Option(
            "--compare-first-letter",
            help="Also show the makespan of one shard per first character (PyPI 2022).",
        ),
    ] = False,
) -> None:
    """Cut a name space into balanced shards by prefix.

    [b]Example:[/] purger plan projects.tsv.gz --weight-column download_rank
    --weight-transform zipf-rank --workers 16 --out plan.json
    """
    out_console = Console()
    err = Console(stderr=True)
    with _exit_codes(err):
        weight = WeightSpec(column=weight_column, transform=weight_transform)
        settings = PlanSettings(workers=workers, shards=shards, max_weight=max_weight)
        name_set, where = _load_names(
            source=source,
            names_url=names_url,
            sample=sample,
            fmt=fmt,
            name_column=name_column,
            weight=weight,
            normalization=normalize,
            strict=strict,
            err=err,
        )
        render_skipped(name_set, err)
        the_plan = make_plan(name_set, settings, source=where)
        comparison = compare_first_letter(name_set, the_plan) if first_letter else None
        document = plan_to_json(the_plan, comparison)
        if out is not None:
            write_plan(out, document)
        if as_json:
            typer.echo(json.dumps(document, indent=1))
        else:
            render_plan(the_plan, out_console, name_set=name_set, comparison=comparison)
        if out is not None:
            err.print(f"plan written to {out}", highlight=False, markup=False)


def _is_plan_file(argument: str) -> bool:
    return argument != "-" and argument.lower().endswith(".json") and Path(argument).is_file()


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
    service_id: Annotated[str | None, typer.Option("--service-id", help="Fastly service.")] = None,
    zone_id: Annotated[str | None, typer.Option("--zone-id", help="Cloudflare zone.")] = None,
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
    feedback_delay: Annotated[
        float,
        typer.Option(
            "--feedback-delay",
            help="With signals: seconds from a purge to its effect on the metrics (refill + lag).",
        ),
    ] = 60.0,
    tick: Annotated[
        float, typer.Option("--tick", help="With signals: seconds between health readings.")
    ] = 5.0,
    min_rate: Annotated[
        float, typer.Option("--min-rate", help="With signals: never slower than this.")
    ] = 1.0,
    initial_rate: Annotated[
        float | None,
        typer.Option("--initial-rate", help="With signals: start here (default: min(50, --rate))."),
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
            ControlSettings(
                initial_rate=initial_rate if initial_rate is not None else min(50.0, rate),
                min_rate=min_rate,
                max_rate=rate,  # --rate stays the ceiling: health only ever slows below it
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
        if resume and not state.exists():
            raise UsageError(f"no state at {state} to resume (without --resume a new run starts)")
        code = _run_with_state(
            state,
            resume,
            the_plan,
            name_set,
            templates,
            options,
            pace,
            run_settings,
            err,
            health,
            control,
        )
    raise typer.Exit(code)


def _missing(flag: str) -> str:
    raise UsageError(f"{flag} is required")


def _run_with_state(
    path: Path,
    resume: bool,
    the_plan: Plan,
    name_set: NameSet,
    templates: Sequence[Template],
    options: ProviderOptions,
    pace: PaceOptions,
    settings: RunSettings,
    err: Console,
    health: Sequence[SignalSpec],
    control: ControlSettings | None,
) -> int:
    def on_decision(decision: Decision) -> None:
        pressure = "unknown" if decision.pressure is None else f"{decision.pressure:.2f}"
        err.print(
            f"control: {decision.action} -> {decision.rate:,.0f} targets/s "
            f"(pressure {pressure}): {decision.reason}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )

    def on_resume(summary: StateSummary) -> None:
        err.print(
            f"resuming {path}: {summary.shards_done}/{summary.shards} shards done, "
            f"{summary.targets_done:,} targets purged",
            highlight=False,
        )

    def report(stats: RunStatistics) -> None:
        eta = "ETA unknown" if stats.eta_s is None else f"ETA {format_duration(stats.eta_s)}"
        err.print(
            f"{stats.elapsed:7.0f} s  {stats.targets:,} targets in {stats.batches:,} calls, "
            f"{stats.shards_done}/{stats.shards} shards done, {stats.failures} failed, "
            f"{stats.rate:,.0f}/s, {eta}",
            highlight=False,
            soft_wrap=True,
        )

    outcome, total = anyio.run(
        partial(
            execute_run,
            plan=the_plan,
            name_set=name_set,
            templates=templates,
            options=options,
            env=os.environ,
            pace=pace,
            settings=settings,
            state_path=path,
            resume=resume,
            clock=AnyioClock(),
            report=report,
            on_resume=on_resume,
            signals=health,
            control=control,
            on_decision=on_decision,
        )
    )
    report(outcome.statistics)
    if outcome.status is RunStatus.STOPPED:
        err.print(
            f"stopped: {outcome.reason}; resume with --resume --state {path}", highlight=False
        )
        return ExitCode.STOPPED
    if total.failures:
        err.print(
            f"done, but {total.failures:,} targets failed (listed in {path})", highlight=False
        )
        return ExitCode.FAILED_TARGETS
    err.print(f"done: {total.targets_done:,} targets purged", highlight=False)
    return ExitCode.OK


def _plan_and_names(
    plan_or_names: str | None,
    *,
    names: str | None,
    names_url: str | None,
    sample: bool,
    fmt: SourceFormat,
    name_column: str,
    weight: WeightSpec,
    normalization: Normalization,
    strict: bool,
    settings: PlanSettings,
    err: Console,
) -> tuple[Plan, NameSet]:
    """A plan file and its names (checked to be the ones it was made from), or a names
    source planned on the fly with ``settings``."""
    if plan_or_names is not None and _is_plan_file(plan_or_names):
        the_plan = read_plan(Path(plan_or_names))
        source = names or the_plan.source
        if names_url is None and not sample and source in (None, "<stdin>"):
            raise UsageError("this plan's names came from stdin: give them with --names FILE")
        on_sample = sample or (names_url is None and source == SAMPLE_NAME)
        name_set, where = _load_names(
            source=None if on_sample or names_url else source,
            names_url=names_url,
            sample=on_sample,
            fmt=fmt,
            name_column=name_column,
            weight=weight_spec_of(the_plan.weight),
            normalization=Normalization(the_plan.normalization),
            strict=strict,
            err=err,
        )
        check_names_match(the_plan, name_set, where)
        return the_plan, name_set
    name_set, where = _load_names(
        source=plan_or_names,
        names_url=names_url,
        sample=sample,
        fmt=fmt,
        name_column=name_column,
        weight=weight,
        normalization=normalization,
        strict=strict,
        err=err,
    )
    render_skipped(name_set, err)
    return make_plan(name_set, settings, source=where), name_set


def _show_forecast(
    the_plan: Plan,
    name_set: NameSet,
    templates: Sequence[Template],
    options: ProviderOptions,
    pace: PaceOptions,
    *,
    workers: int,
    api_latency: float | None,
    origin: OriginModel | None,
    as_json: bool,
    out: Console,
) -> None:
    """What a run would send and how long it would take; nothing is sent."""

    async def build() -> tuple[Forecast, bool]:
        async with httpx.AsyncClient() as client:  # never used: nothing is sent
            real = create_provider(options, client, DryRunEnv(os.environ))
            result = forecast(
                the_plan,
                name_set,
                templates,
                real,
                pace,
                workers=workers,
                api_latency=api_latency,
                origin=origin,
            )
            return result, real.limits.soft_purge

    result, soft = anyio.run(build)
    if as_json:
        typer.echo(json.dumps(forecast_to_json(result), indent=1))
        return
    render_forecast(
        out,
        provider=options.name,
        soft=soft,
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
) -> None:
    """How long a purge will take, what bounds it, and how much it adds to the origin,
    beside PyPI's 2022 method (one shard per first character, one key per call).

    [b]Example:[/] purger estimate pypi-projects.tsv.gz --provider fastly
    --key-template 'project/{name}' --workers 36 --origin-capacity 400
    """
    out = Console()
    err = Console(stderr=True)
    with _exit_codes(err):
        templates = parse_templates(key_template or ["project/{name}"], url_template or ())
        pace = PaceOptions(rate=rate, concurrency=concurrency)
        fetches = 1.0 if hard else soft_cost
        origin = OriginModel(capacity=origin_capacity, fetches_per_target=fetches)
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
        if simulate:
            _show_simulation(the_plan, name_set, pace, origin_capacity, hard, seed, as_json, out)
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


def _show_simulation(
    the_plan: Plan,
    name_set: NameSet,
    pace: PaceOptions,
    origin_capacity: float | None,
    hard: bool,
    seed: int,
    as_json: bool,
    out: Console,
) -> None:
    """The purge run for real against the simulated CDN and origin, in virtual time."""
    config = SimConfig(seed=seed, capacity=origin_capacity or SimConfig().capacity)
    control = ControlSettings(
        initial_rate=min(50.0, pace.rate), max_rate=pace.rate, feedback_delay=45
    )
    result = simulate_purge(
        plan=the_plan,
        name_set=name_set,
        config=config,
        control=control,
        signals=origin_signals(config, p99_limit=0.5, p99_critical=2.0),
        rate=pace.rate,
        concurrency=pace.concurrency,
        hard=hard,
    )
    document = simulation_to_json(result, config)
    if as_json:
        typer.echo(json.dumps(document, indent=1))
    else:
        render_simulation(out, document)


StateArg = Annotated[
    Path,
    typer.Option("--state", help="The run's SQLite state file.", metavar="FILE"),
]


@app.command()
def status(
    state: StateArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Progress of a run, from its state file: per shard, targets, failures, rate and ETA.
    Safe while the run is going (reads without taking its lock).

    [b]Example:[/] purger status --state purge.sqlite
    """
    out = Console()
    err = Console(stderr=True)
    with _exit_codes(err):
        with StateStore.open_readonly(state) as store:
            document = status_document(store)
        if as_json:
            typer.echo(json.dumps(document, indent=1))
        else:
            render_status(out, document)


@app.command()
def failures(
    state: StateArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the failures as JSON.")] = False,
) -> None:
    """The targets the provider refused for good, with its reason (exit 1 when there are
    any).

    [b]Example:[/] purger failures --state purge.sqlite
    """
    err = Console(stderr=True)
    with _exit_codes(err):
        with StateStore.open_readonly(state) as store:
            found = store.failures()
        if as_json:
            rows = [
                {"target": f.target, "kind": str(f.kind), "shard": f.shard_id, "reason": f.reason}
                for f in found
            ]
            typer.echo(json.dumps(rows, indent=1))
        else:
            for failure in found:
                typer.echo(f"{failure.kind}\t{failure.target}\t{failure.reason}")
    raise typer.Exit(ExitCode.FAILED_TARGETS if found else ExitCode.OK)


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
        with Live(console=out, auto_refresh=False, transient=False) as live:

            def show(snapshot: Snapshot) -> None:
                live.update(demo_view(snapshot, title=title), refresh=True)

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


@app.command()
def probe(
    signal: SignalOpt = None,
    signals_file: SignalsFileOpt = None,
    interval: Annotated[
        float,
        typer.Option("--interval", help="Seconds between the two scrapes a rate needs."),
    ] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the readings as JSON.")] = False,
) -> None:
    """Read every health signal once and show value, limit, pressure and age: the check
    to run before a purge. Exit 0 when all are fresh and under their limit, 1 otherwise.

    [b]Example:[/] purger probe --signals signals.toml
    """
    out = Console()
    err = Console(stderr=True)
    with _exit_codes(err):
        specs = _signals(signal, signals_file)
        if not specs:
            raise UsageError("give at least one --signal or --signals FILE")
        samples = anyio.run(_probe, specs, interval)
        now = time.time()
        if as_json:
            typer.echo(json.dumps([_sample_json(s, now) for s in samples], indent=1))
        else:
            render_probe(samples, now, out)
        healthy = all(s.pressure is not None and s.pressure < 1 for s in samples)
    raise typer.Exit(ExitCode.OK if healthy else ExitCode.FAILED_TARGETS)


async def _probe(specs: Sequence[SignalSpec], interval: float) -> Sequence[Sample]:
    async with httpx.AsyncClient(headers={"User-Agent": f"purger/{__version__}"}) as client:
        reader = HealthReader(specs, client)
        samples = await reader.read()
        if any(s.value is None and s.error and "no rate yet" in s.error for s in samples):
            await anyio.sleep(interval)  # a rate or a quantile needs a second scrape
            samples = await reader.read()
        return samples


def _sample_json(sample: Sample, now: float) -> dict[str, object]:
    return {
        "signal": sample.signal.name,
        "value": sample.value,
        "limit": sample.signal.limit,
        "critical": sample.signal.critical,
        "pressure": sample.pressure,
        "age_s": sample.age(now),
        "error": sample.error,
    }


def main() -> None:
    """Console-script entry point."""
    app()
