"""``purger status`` and ``purger failures``: read a run's state file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from purger.cli._app import (
    ExitCode,
    _exit_codes,
    app,
)
from purger.state.sqlite import StateStore, status_document
from purger.ui.report import (
    render_status,
)

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
