"""The typer app, exit codes, one-line errors, and what the commands share: names
sources, their options, plan loading.

Exit codes (``../shared/DESIGN.md``): 0 done; 1 finished with failed targets; 2 usage,
config or input error; 3 stopped early and resumable; 4 could not start.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Final

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from purger import __version__
from purger.config.job import load_signals
from purger.errors import PurgerError, UnavailableError, UsageError
from purger.health.control import ControlSettings
from purger.health.signals import SignalSpec, parse_signal
from purger.launch.build import (
    check_names_match,
    weight_spec_of,
)
from purger.names.nameset import (
    NameSet,
    Normalization,
    Record,
    WeightSpec,
    WeightTransform,
    build_name_set,
)
from purger.names.sources import (
    SAMPLE_NAME,
    NamesSource,
    SourceFormat,
    fetch_simple_index,
    read_records,
    redact_url,
)
from purger.planning.document import read_plan
from purger.planning.plan import Plan, PlanSettings, make_plan
from purger.ui.report import (
    render_skipped,
)

_NAMES_URL_TIMEOUT: Final = httpx.Timeout(60.0, connect=10.0)


class ExitCode(IntEnum):
    OK = 0
    FAILED_TARGETS = 1
    USAGE = 2
    STOPPED = 3
    CANNOT_START = 4


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
FeedbackDelayOpt = Annotated[
    float,
    typer.Option(
        "--feedback-delay",
        help="With signals: seconds from a purge to its effect on the metrics (refill + lag).",
    ),
]
TickOpt = Annotated[
    float, typer.Option("--tick", help="With signals: seconds between health readings.")
]
MinRateOpt = Annotated[
    float, typer.Option("--min-rate", help="With signals: never slower than this.")
]
InitialRateOpt = Annotated[
    float | None,
    typer.Option("--initial-rate", help="With signals: start here (default: min(50, --rate))."),
]


def control_settings(
    *, rate: float, initial_rate: float | None, min_rate: float, feedback_delay: float, tick: float
) -> ControlSettings:
    """The controller of a run with signals, from the options ``run`` and ``estimate``
    share; ``--rate`` stays the ceiling: health only ever slows below it."""
    return ControlSettings(
        initial_rate=initial_rate if initial_rate is not None else min(50.0, rate),
        min_rate=min_rate,
        max_rate=rate,
        feedback_delay=feedback_delay,
        tick=tick,
    )


NamesUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--names-url",
        help="Read names from a Simple API index (PEP 691 JSON or PEP 503 HTML).",
        metavar="URL",
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


def _is_plan_file(argument: str) -> bool:
    return argument != "-" and argument.lower().endswith(".json") and Path(argument).is_file()


def _missing(flag: str) -> str:
    raise UsageError(f"{flag} is required")


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


def main() -> None:
    """Console-script entry point."""
    app()
