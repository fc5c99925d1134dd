"""``purger scan``: probe every target of a names source through the cache and write the
names found bad (loops, errors, too many redirects; stale with ``--stale-before``) to a
names file that ``purger run`` takes as it is: the small blast radius. The probe options
declared here are ``verify``'s too."""

from __future__ import annotations

import json
import math
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
from purger.cli._names_options import SourceOptions
from purger.cli._options import with_options
from purger.config.schema import MAX_CONCURRENCY
from purger.errors import UsageError
from purger.planning.targets import parse_templates
from purger.probing.classify import Freshness
from purger.probing.prober import Prober, ProbeSettings, probe_pacer, probe_transport
from purger.probing.tally import Tally
from purger.probing.targets import ProbeTarget, check_nodes, probe_targets

ViaOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--via",
        help="Probe through this cache node, http://host:port, sending the target's own Host"
        " and path (repeat for each node). Without it, probes go to the URL's host.",
    ),
]
ExpectOpt = Annotated[
    list[int] | None,
    typer.Option("--expect", help="A status that ends a probe well (repeat; default 200)."),
]
MaxRedirectsOpt = Annotated[
    int, typer.Option("--max-redirects", help="Redirects followed per probe at most.", min=0)
]
MissHeaderOpt = Annotated[
    str,
    typer.Option(
        "--miss-header",
        help="'Header: VALUE' that, without an Age, says the node fetched the object (fresh).",
    ),
]
ProbeRateOpt = Annotated[
    float, typer.Option("--rate", help="Probe requests per second at most ('inf': no limit).")
]
ProbeConcurrencyOpt = Annotated[
    int,
    typer.Option(
        "--concurrency",
        help=f"Probe requests in flight at most (1 to {MAX_CONCURRENCY}).",
        min=1,
        max=MAX_CONCURRENCY,  # as purger run's: 100,000 meant minutes of silent start-up
    ),
]
ProbeTimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds for each request.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")]


def probe_settings(
    *,
    expect: Sequence[int] | None,
    max_redirects: int,
    miss_header: str,
    purged_at: float | None,
    soft_grace: float = 0.0,
) -> ProbeSettings:
    """The probe options, checked."""
    name, colon, value = miss_header.partition(":")
    if not colon or not name.strip() or not value.strip():
        raise UsageError(f"--miss-header {miss_header!r}: write it as 'Header: VALUE'")
    statuses = frozenset(expect or (200,))
    if any(not 100 <= s <= 599 for s in statuses):
        raise UsageError(f"--expect takes HTTP statuses (100-599), not {sorted(statuses)}")
    if not 0 <= soft_grace < math.inf:
        raise UsageError(f"--soft-grace must be >= 0 seconds, not {soft_grace}")
    freshness = Freshness(purged_at=purged_at, miss_header=name.strip(), miss_value=value.strip())
    return ProbeSettings(
        expect=statuses, max_redirects=max_redirects, freshness=freshness, soft_grace=soft_grace
    )


def check_pace(rate: float, timeout: float) -> None:
    if not rate > 0:
        raise UsageError(f"--rate must be > 0 (or inf), not {rate}")
    if not 0 < timeout < math.inf:
        raise UsageError(f"--timeout must be > 0 seconds, not {timeout}")


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
    source: Annotated[
        str | None,
        typer.Argument(help="Names file ('-' for stdin), or use --names-url/--sample."),
    ] = None,
    *,
    reading: SourceOptions,
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
    expect: ExpectOpt = None,
    max_redirects: MaxRedirectsOpt = 5,
    miss_header: MissHeaderOpt = "X-Cache: MISS",
    rate: ProbeRateOpt = 500.0,
    concurrency: ProbeConcurrencyOpt = 8,
    timeout: ProbeTimeoutOpt = 10.0,
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
        check_pace(rate, timeout)
        settings = probe_settings(
            expect=expect,
            max_redirects=max_redirects,
            miss_header=miss_header,
            purged_at=None if stale_before is None else parse_time(stale_before, "--stale-before"),
        )
        name_set, _ = load_names(source, reading.names(sample=sample), err)
        targets = list(probe_targets(name_set.names, templates, name_set.aliases))
        work = [(t, node) for t in targets for node in (nodes or (None,))]
        started = time.monotonic()
        tally = anyio.run(_scan, work, settings, rate, concurrency, timeout)
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
) -> Tally:
    tally = Tally()
    async with probe_transport(concurrency) as transport:
        pacer = probe_pacer(rate, concurrency)
        prober = Prober(transport, pacer, settings, timeout=request_seconds)
        await prober.probe_all(
            work,
            lambda probe: tally.add(probe, bad=not probe.verdict.good),
            workers=concurrency,
        )
    return tally
