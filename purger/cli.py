"""The operator's command line. The only place that maps errors to exit codes.

Exit codes (``../shared/DESIGN.md``): 0 done; 1 finished with failed targets; 2 usage,
config or input error; 3 stopped early and resumable; 4 could not start.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Final

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from purger import __version__
from purger.errors import PurgerError, UnavailableError, UsageError
from purger.names import (
    NameSet,
    Normalization,
    Record,
    WeightSpec,
    WeightTransform,
    build_name_set,
)
from purger.plan import PlanSettings, compare_first_letter, make_plan, plan_to_json, write_plan
from purger.report import render_plan, render_skipped
from purger.sources import (
    NamesSource,
    SourceFormat,
    fetch_simple_index,
    read_records,
    redact_url,
)

__all__ = ["ExitCode", "app", "main"]


class ExitCode(IntEnum):
    OK = 0
    FAILED_TARGETS = 1
    USAGE = 2
    STOPPED = 3
    CANNOT_START = 4


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
        err.print(f"purger: error: {error}", highlight=False, markup=False)
        raise typer.Exit(ExitCode.USAGE) from None
    except UnavailableError as error:
        err.print(f"purger: cannot start: {error}", highlight=False, markup=False)
        raise typer.Exit(ExitCode.CANNOT_START) from None
    except PurgerError as error:  # a new branch of the tree without a code yet: still one line
        err.print(f"purger: error: {error}", highlight=False, markup=False)
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


@app.command()
def plan(
    source: Annotated[
        str | None,
        typer.Argument(
            help="Names file (text, .tsv, .csv; .gz too), or '-' for stdin.", show_default=False
        ),
    ] = None,
    names_url: Annotated[
        str | None,
        typer.Option(
            "--names-url", help="Read names from a PEP 691 Simple API index (JSON).", metavar="URL"
        ),
    ] = None,
    sample: Annotated[
        bool, typer.Option("--sample", help="Plan the bundled sample of real PyPI names.")
    ] = False,
    fmt: Annotated[
        SourceFormat, typer.Option("--format", help="Names file layout; auto reads the suffix.")
    ] = SourceFormat.AUTO,
    name_column: Annotated[
        str, typer.Option("--name-column", help="Table column holding the names.")
    ] = "name",
    weight_column: Annotated[
        str | None,
        typer.Option(
            "--weight-column", help="Table column holding weights (default: every name weighs 1)."
        ),
    ] = None,
    weight_transform: Annotated[
        WeightTransform,
        typer.Option(
            "--weight-transform", help="zipf-rank: the column is a popularity rank; weight 1/rank."
        ),
    ] = WeightTransform.NONE,
    normalize: Annotated[
        Normalization,
        typer.Option(
            "--normalize", help="pep503 for PyPI project names, none for other key spaces."
        ),
    ] = Normalization.PEP503,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on invalid names instead of skipping them.")
    ] = False,
    shards: Annotated[
        int | None,
        typer.Option("--shards", help="About this many shards (default: 8 per worker).", min=1),
    ] = None,
    max_weight: Annotated[
        float | None,
        typer.Option("--max-weight", help="Instead of --shards: no shard heavier than this."),
    ] = None,
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


def main() -> None:
    """Console-script entry point."""
    app()
