"""``purger plan``: cut a name space into balanced shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from purger.cli._app import (
    FormatOpt,
    MaxWeightOpt,
    NameColumnOpt,
    NamesUrlOpt,
    NormalizeOpt,
    SampleOpt,
    ShardsOpt,
    StrictOpt,
    WeightColumnOpt,
    WeightTransformOpt,
    _exit_codes,
    _load_names,
    app,
)
from purger.cli._job import ConfigOpt
from purger.names.nameset import (
    Normalization,
    WeightSpec,
    WeightTransform,
)
from purger.names.sources import (
    SourceFormat,
)
from purger.planning.document import plan_to_json, write_plan
from purger.planning.plan import PlanSettings, compare_first_letter, make_plan
from purger.ui.report import (
    render_plan,
    render_skipped,
)


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
    config: ConfigOpt = None,
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
