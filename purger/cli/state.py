"""``purger status`` and ``purger failures``: read a run's state file."""

from __future__ import annotations

import errno
import fcntl
import json
import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from purger.cli._app import (
    ExitCode,
    _exit_codes,
    app,
)
from purger.observability.state_metrics import state_exposition
from purger.state.postgres import PostgresStore
from purger.state.status import status_document
from purger.state.stores import StateRef
from purger.ui.status import render_status

StateArg = Annotated[
    str,
    typer.Option(
        "--state",
        help="The run's SQLite state file, or its postgresql://user@host:port/db.",
        metavar="FILE|URL",
    ),
]
RunNameOpt = Annotated[
    str | None,
    typer.Option("--run-name", help="With a postgresql:// state: the run (name or id)."),
]
PasswordFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-password-file",
        help="With a postgresql:// state: a file holding the password (else PGPASSWORD).",
        metavar="FILE",
    ),
]


class RunState(StrEnum):
    """Where a run stands, as ``purger status`` says it."""

    RUNNING = "running"
    PAUSED = "paused"  # running, new calls held (by the operator or health)
    STOPPED = "stopped"  # not running, not finished: resumable
    DONE = "done"
    FAILED = "failed"  # finished, with failed targets recorded


def run_state(document: Mapping[str, object], *, in_use: bool) -> RunState:
    """The run's state from its status document and whether a run holds its lock."""
    if in_use:
        history = document.get("rate_history")
        last = history[-1] if isinstance(history, list) and history else None
        held = isinstance(last, dict) and bool(last.get("held"))
        return RunState.PAUSED if held else RunState.RUNNING
    total, done = document.get("shards_total"), document.get("shards_done")
    if document.get("run") is None or not total or done != total:
        return RunState.STOPPED
    return RunState.FAILED if document.get("failures") else RunState.DONE


def lock_held(state: Path) -> bool:
    """Whether a run holds the state's lock (``FILE.lock``). Read from ``/proc/locks``
    where there is one, which disturbs nobody; else by taking a shared lock for an
    instant (a run starting at that very instant would be told the state is in use)."""
    lock = Path(f"{state}.lock")
    try:
        found = lock.stat()
    except OSError:
        return False  # no run ever took it
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        return _probe(lock)
    key = f"{os.major(found.st_dev):02x}:{os.minor(found.st_dev):02x}:{found.st_ino}"
    return any(
        fields[1] == "FLOCK" and key in fields
        for fields in (line.split() for line in table.splitlines())
        if len(fields) > 5
    )


def _probe(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as error:
        return error.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)  # closing drops the shared lock, if taken
    return False


def status_of(state: StateRef) -> dict[str, object]:
    """The status document, with the run's state (``status``), the last error a call
    met (``last_error``), and no ETA unless it runs."""
    with state.open(readonly=True) as store:
        document = status_document(store, str(state))
        last_error = store.status().get("last_error") or None
        # A database: the run goes while a runner holds a live lease on a shard not done.
        in_use = store.leased() > 0 if isinstance(store, PostgresStore) else None
        if isinstance(store, PostgresStore):
            document["runners"] = store.runners()
    if in_use is None:
        in_use = lock_held(state.path)
    situation = run_state(document, in_use=in_use)
    if situation not in (RunState.RUNNING, RunState.PAUSED):
        document["eta_s"] = None  # nothing is left to wait for, or nothing is moving
    return {"status": str(situation), **document, "last_error": last_error}


class StatusFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    PROMETHEUS = "prometheus"


@app.command()
def status(
    state: StateArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    fmt: Annotated[
        StatusFormat,
        typer.Option(
            "--format", help="text, json, or prometheus (the run's metrics, text exposition)."
        ),
    ] = StatusFormat.TEXT,
    run_name: RunNameOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Where a run stands (running, paused, stopped, done, failed), from its state file:
    targets, failures, the last error, rate and ETA, the shards not done. Safe while the
    run is going (reads without taking its lock).

    [b]Example:[/] purger status --state purge.sqlite
    """
    out = Console()
    err = Console(stderr=True)
    with _exit_codes(err):
        document = status_of(StateRef(spec=state, run=run_name, password_file=password_file))
        if as_json or fmt is StatusFormat.JSON:
            typer.echo(json.dumps(document, indent=1))
        elif fmt is StatusFormat.PROMETHEUS:
            typer.echo(state_exposition(document), nl=False)
        else:
            render_status(out, document)


@app.command()
def failures(
    state: StateArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the failures as JSON.")] = False,
    run_name: RunNameOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """The targets the provider refused for good, with its reason (exit 1 when there are
    any).

    [b]Example:[/] purger failures --state purge.sqlite
    """
    err = Console(stderr=True)
    with _exit_codes(err):
        where = StateRef(spec=state, run=run_name, password_file=password_file)
        with where.open(readonly=True) as store:
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
