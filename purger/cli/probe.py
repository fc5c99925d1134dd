"""``purger probe``: read every health signal once."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Annotated

import anyio
import httpx
import typer
from rich.console import Console

from purger import __version__
from purger.cli._app import (
    ExitCode,
    SignalOpt,
    SignalsFileOpt,
    _exit_codes,
    _signals,
    app,
)
from purger.errors import UsageError
from purger.health.reader import HealthReader
from purger.health.signals import Sample, SignalSpec
from purger.ui.report import (
    render_probe,
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
