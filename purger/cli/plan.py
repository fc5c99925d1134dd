"""``purger plan``: cut a name space into balanced shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from purger.cli._app import NAMES_PANEL, OUTPUT_PANEL, _exit_codes, app
from purger.cli._job import ConfigOpt
from purger.cli._names import load_names
from purger.cli._names_options import NamesOptions
from purger.cli._options import number, number_value, with_options
from purger.planning.document import plan_to_json, write_plan
from purger.planning.plan import compare_first_letter, make_plan
from purger.ui.report import render_plan, render_skipped


@app.command()
@with_options
def plan(
    source: Annotated[
        str | None,
        typer.Argument(
            help="Names file (text, .tsv, .csv; .gz too), or '-' for stdin.", show_default=False
        ),
    ] = None,
    *,
    names: NamesOptions,
    workers: Annotated[
        str, number("plan.workers", "Workers that will take shards heaviest first.", NAMES_PANEL)
    ] = "16",
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the plan document as JSON.", rich_help_panel=OUTPUT_PANEL
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the plan document to FILE.",
            metavar="FILE",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
    first_letter: Annotated[
        bool,
        typer.Option(
            "--compare-first-letter",
            help="Also show the makespan of one shard per first character (PyPI 2022).",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Cut a name space into balanced shards by prefix.

    [b]Example:[/] purger plan projects.tsv.gz --weight-column download_rank
    --weight-transform zipf-rank --workers 16 --out plan.json
    """
    out_console = Console()
    err = Console(stderr=True)
    with _exit_codes(err):
        settings = names.plan_settings(number_value("plan.workers", workers))
        name_set, where = load_names(source, names, err)
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
