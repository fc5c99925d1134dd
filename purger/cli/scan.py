"""``purger scan``: probe every target of a names source through the cache and write the
names found bad (loops, errors, too many redirects; stale with ``--stale-before``) to a
names file that ``purger run`` takes as it is: the small blast radius. Its probe options
(``cli/_probe_options.py``) are ``verify``'s too."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import anyio
import typer
from rich.console import Console
from rich.table import Table

from purger.cli._app import ExitCode, _exit_codes, app
from purger.cli._names import load_names
from purger.cli._names_options import NamesFileArg, SourceOptions
from purger.cli._options import with_options
from purger.cli._probe_options import ProbeOptions
from purger.cli._run_options import Health, Signals
from purger.errors import UsageError
from purger.health.control import ControlSettings
from purger.health.signals import SignalSpec
from purger.planning.targets import bind_rows, columns_of, parse_templates
from purger.probing.governed import governed
from purger.probing.prober import Prober, ProbeSettings, probe_pacer, probe_transport
from purger.probing.tally import Tally
from purger.probing.targets import ProbeTarget, check_nodes, probe_targets

#: The health signals and the controller they drive (none: paced by ``--rate`` alone).
Governance = tuple[tuple[SignalSpec, ...], ControlSettings | None]

ViaOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--via",
        help="Probe through this cache node, http://host:port, sending the target's own Host"
        " and path (repeat for each node). Without it, probes go to the URL's host.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")]


def parse_time(text: str, flag: str) -> float:
    """ISO 8601 (UTC when no zone is given) or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: give ISO 8601 (2026-12-02T01:00Z) or epoch") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def render_tally(tally: Tally, title: str, console: Console) -> None:
    """Counts by class, then by node, then a few examples of each bad class."""
    table = Table(title=title, title_justify="left")
    classes = list(tally.by_class)
    table.add_column("node")
    for cls in classes:
        table.add_column(cls, justify="right")
    for node, counts in tally.by_node.items():
        table.add_row(node, *(str(counts.get(cls, 0)) for cls in classes))
    table.add_row("[b]all[/]", *(f"[b]{tally.by_class[cls]}[/]" for cls in classes))
    console.print(table)
    for cls, probes in tally.examples.items():
        for probe in probes:
            console.print(
                f"  {cls}: {probe.target.url} via {probe.node}: {probe.verdict.detail}",
                markup=False,
                highlight=False,
            )


def governance_of(signals: Signals, health: Health, rate: float) -> Governance:
    """The probes' governance: ``--rate`` is the controller's ceiling, as in a run."""
    return signals.specs, health.control(rate) if signals.specs else None


def write_names(path: Path, names: Sequence[str]) -> None:
    """The names file, whole or not at all (written aside, then renamed over)."""
    directory = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.writelines(f"{name}\n" for name in names)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@app.command()
@with_options
def scan(
    source: NamesFileArg = None,
    *,
    reading: SourceOptions,
    signals: Signals,
    health: Health,
    url_template: Annotated[
        list[str] | None,
        typer.Option("--url-template", help="URL per name to probe, e.g. with {name} or {raw}."),
    ] = None,
    via: ViaOpt = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="Write the bad names here, one a line.", metavar="FILE"),
    ] = None,
    stale_before: Annotated[
        str | None,
        typer.Option(
            "--stale-before",
            help="Also bad: objects fetched before TIME (ISO 8601 or epoch seconds).",
            metavar="TIME",
        ),
    ] = None,
    probe: ProbeOptions,
    as_json: JsonOpt = False,
    sample: Annotated[
        bool, typer.Option("--sample", help="Use the bundled sample of real PyPI names.")
    ] = False,
) -> None:
    """Probe every target through the cache; write the names whose probes were not ok
    (redirect_loop, too_many_redirects, error, unreachable; stale with --stale-before) to
    --out, a names file for 'purger run'. Exit 0 when none is bad, 1 when some are.

    [b]Example:[/] purger scan names.txt --url-template 'https://pypi.org/pypi/{raw}/json'
    --via http://10.0.0.5:6081 --via http://10.0.0.6:6081 --out bad.txt
    """
    out = Console()
    err = Console(stderr=True)
    with _exit_codes(err):
        templates = parse_templates((), url_template or ())
        nodes = check_nodes(via or ())
        if out_path is None:
            raise UsageError("--out FILE is required: where the bad names go")
        if not out_path.parent.is_dir():
            raise UsageError(f"--out {out_path}: no such directory {out_path.parent}")
        # Found before the probes, not after: none is wasted. The names are written aside
        # and renamed over, which would put a file where a device or a pipe was.
        if out_path.exists() and not out_path.is_file():
            raise UsageError(f"--out {out_path}: not a regular file (a directory, a device?)")
        probe.check_pace()
        settings = probe.settings(
            purged_at=None if stale_before is None else parse_time(stale_before, "--stale-before"),
        )
        name_set, _ = load_names(
            source, reading.names(sample=sample), err, columns=columns_of(templates)
        )
        templates = bind_rows(templates, name_set.rows)
        targets = list(probe_targets(name_set.names, templates, name_set.aliases))
        work = [(t, node) for t in targets for node in (nodes or (None,))]
        started = time.monotonic()
        governance = governance_of(signals, health, probe.rate)
        tally = anyio.run(
            _scan, work, settings, probe.rate, probe.concurrency, probe.timeout, governance
        )
        seconds = time.monotonic() - started
        bad = [s for spellings in tally.bad_names.values() for s in spellings]
        write_names(out_path, list(dict.fromkeys(sorted(bad))))
        if as_json:
            document = {
                "scanned": tally.probes,
                "bad": len(tally.bad_names),
                "seconds": round(seconds, 3),
                **tally.to_json(),
            }
            typer.echo(json.dumps(document, indent=1))
        else:
            render_tally(tally, f"scan: {tally.probes} probes in {seconds:.1f} s", out)
            err.print(
                f"{len(tally.bad_names)} bad names of {len(name_set.names)} written to {out_path}",
                highlight=False,
                markup=False,
            )
    raise typer.Exit(ExitCode.FAILED_TARGETS if tally.bad_names else ExitCode.OK)


async def _scan(
    work: list[tuple[ProbeTarget, str | None]],
    settings: ProbeSettings,
    rate: float,
    concurrency: int,
    request_seconds: float,
    governance: Governance,
) -> Tally:
    tally = Tally()
    pacer = probe_pacer(rate, concurrency)
    async with (
        probe_transport(concurrency) as transport,
        governed(pacer, *governance, lambda: tally.probes),
    ):
        prober = Prober(transport, pacer, settings, timeout=request_seconds)
        await prober.probe_all(
            work,
            lambda probe: tally.add(probe, bad=not probe.verdict.good),
            workers=concurrency,
        )
    return tally
