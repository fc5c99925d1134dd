"""``purger verify``: look through the cache at what a run purged; with ``--repurge``, purge
again what is still stale or looping, round after round. Results go into the run's state."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import anyio
import httpx
import typer
from rich.console import Console

from purger import __version__
from purger.cli._app import ExitCode, _exit_codes, app
from purger.cli._names import load_names
from purger.cli._names_options import NamesFileArg, SourceOptions
from purger.cli._options import with_options
from purger.cli._probe_options import ProbeOptions
from purger.cli._run_options import Health, Signals
from purger.cli.scan import (
    Governance,
    JsonOpt,
    ViaOpt,
    governance_of,
    parse_time,
    render_tally,
)
from purger.errors import UsageError
from purger.planning.targets import Template, bind_rows, columns_of, parse_templates
from purger.probing.governed import governed
from purger.probing.prober import Prober, ProbeSettings, probe_pacer, probe_transport
from purger.probing.targets import ProbeTarget, check_nodes, in_sample, probe_targets
from purger.probing.verify import (
    Repurger,
    VerifyOutcome,
    provider_options_of,
    still_bad_failures,
    verify_rounds,
)
from purger.providers import create_provider
from purger.providers.varnish import parse_tiers
from purger.state.sqlite import RunRecord, StateStore

_AGENT = {"User-Agent": f"purger/{__version__}"}


@app.command()
@with_options
def verify(
    source: NamesFileArg = None,
    *,
    reading: SourceOptions,
    signals: Signals,
    health: Health,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="The run's SQLite state file.", metavar="FILE"),
    ] = None,
    via: ViaOpt = None,
    url_template: Annotated[
        list[str] | None,
        typer.Option(
            "--url-template",
            help="URL per name to probe (default: the run's URL templates; needed for key runs).",
        ),
    ] = None,
    fraction: Annotated[
        float | None,
        typer.Option("--sample", help="Probe this fraction of the targets (0-1).", metavar="F"),
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Probe every target (the default).")] = False,
    purged_at: Annotated[
        str | None,
        typer.Option(
            "--purged-at",
            help="Judge freshness against TIME (default: when the run started).",
            metavar="TIME",
        ),
    ] = None,
    repurge: Annotated[
        bool,
        typer.Option("--repurge", help="Purge again what is stale or looping, then probe again."),
    ] = False,
    rounds: Annotated[
        int, typer.Option("--rounds", help="With --repurge: rounds at most.", min=1)
    ] = 3,
    round_wait: Annotated[
        float,
        typer.Option("--round-wait", help="With --repurge: seconds from a re-purge to its probes."),
    ] = 2.0,
    soft_grace: Annotated[
        float,
        typer.Option(
            "--soft-grace",
            help="Probe a stale answer again after SECONDS (a soft purge's one stale answer).",
        ),
    ] = 1.0,
    probe: ProbeOptions,
    as_json: JsonOpt = False,
) -> None:
    """Probe the targets of the run in --state through the cache (every node of a Varnish
    run unless --via is given) and record each result in the state. Exit 0 when all are
    fresh, 1 when some are still bad (listed by 'purger failures').

    [b]Example:[/] purger verify names.txt --state purge.sqlite --repurge --rounds 3
    """
    err = Console(stderr=True)
    with _exit_codes(err):
        if state is None:
            raise UsageError("--state FILE is required: the run to verify")
        if not state.is_file():
            raise UsageError(f"no state at {state}")
        if fraction is not None and (every or not 0 < fraction <= 1):
            raise UsageError("give --sample F with 0 < F <= 1, or --all, not both")
        if not 0 <= round_wait < float("inf"):
            raise UsageError(f"--round-wait must be >= 0 seconds, not {round_wait}")
        probe.check_pace()
        with StateStore.open(state) as store:
            record = store.load_run()
            if record is None:
                raise UsageError(f"{state} records no run to verify")
            templates = parse_templates((), url_template or record.url_templates or _no_urls())
            nodes = check_nodes(via or _run_nodes(record))
            since = parse_time(purged_at, "--purged-at") if purged_at else _started(record)
            settings = probe.settings(
                purged_at=since,
                soft_grace=soft_grace,
            )
            keys = parse_templates(record.key_templates, ()) if record.key_templates else ()
            name_set, _ = load_names(
                source, reading.names(sample=False), err, columns=columns_of((*templates, *keys))
            )
            templates = bind_rows(templates, name_set.rows)
            targets = [
                t
                for t in probe_targets(name_set.names, templates, name_set.aliases)
                if in_sample(t.url, fraction if fraction is not None else 1.0)
            ]
            work = [(t, node) for t in targets for node in (nodes or (None,))]
            keys = bind_rows(keys, name_set.rows)
            outcome, repurger = anyio.run(
                _verify, work, settings, record, keys, repurge, rounds, round_wait, probe.rate,
                probe.concurrency, probe.timeout, governance_of(signals, health, probe.rate),
            )  # fmt: skip
            targets_of = repurger.targets_of if repurger else _own_url
            still_bad = still_bad_failures(outcome, record.shards, targets_of)
            store.record_verification(outcome.verifications(), still_bad)
        _report(outcome, len(work), len(still_bad), repurger, as_json=as_json)
    raise typer.Exit(ExitCode.FAILED_TARGETS if still_bad else ExitCode.OK)


def _report(
    outcome: VerifyOutcome,
    checked: int,
    still_bad: int,
    repurger: Repurger | None,
    *,
    as_json: bool,
) -> None:
    """Counts after the last round (and before the first re-purge), as a table or JSON."""
    final = outcome.final()
    if as_json:
        document = {
            "checked": checked,
            "rounds": outcome.rounds,
            "still_bad": still_bad,
            "first_look": dict(outcome.first.by_class),
            **final.to_json(),
        }
        typer.echo(json.dumps(document, indent=1))
        return
    out = Console()
    if outcome.rounds:
        render_tally(outcome.first, "verify: first look", out)
    render_tally(final, f"verify: {checked} probes, {outcome.rounds} re-purges", out)
    err = Console(stderr=True)
    for refused in repurger.refused if repurger else ():
        err.print(f"re-purge refused: {refused}", highlight=False, markup=False)


async def _verify(
    work: list[tuple[ProbeTarget, str | None]],
    settings: ProbeSettings,
    record: RunRecord,
    keys: tuple[Template, ...],
    repurge: bool,
    rounds: int,
    round_wait: float,
    rate: float,
    concurrency: int,
    request_seconds: float,
    governance: Governance,
) -> tuple[VerifyOutcome, Repurger | None]:
    pacer = probe_pacer(rate, concurrency)
    outcome = VerifyOutcome()  # its probes, as they end, are what the controller sees achieved
    async with (
        probe_transport(concurrency) as transport,
        httpx.AsyncClient(transport=transport, timeout=request_seconds, headers=_AGENT) as client,
        governed(pacer, *governance, lambda: len(outcome.probes)),
    ):
        prober = Prober(transport, pacer, settings, timeout=request_seconds)
        repurger = None
        if repurge:
            options = provider_options_of(record.provider_options, record.provider)
            provider = create_provider(options, client, os.environ)
            repurger = Repurger(provider, probe_pacer(rate, concurrency), keys)
        await verify_rounds(
            prober,
            work,
            workers=concurrency,
            repurge=repurger,
            rounds=rounds if repurge else 0,
            round_wait=round_wait,
            outcome=outcome,
        )
    return outcome, repurger


def _no_urls() -> tuple[str, ...]:
    raise UsageError("this run purged keys, which cannot be fetched: give --url-template")


def _run_nodes(record: RunRecord) -> tuple[str, ...]:
    """A Varnish run's nodes, every node of every tier: verify looks at each one."""
    if record.provider != "varnish":
        return ()
    options = provider_options_of(record.provider_options, record.provider)
    tiers = parse_tiers(options.tiers)
    return options.endpoints + tuple(node for _, nodes in tiers for node in nodes)


def _started(record: RunRecord) -> float:
    if record.created_at is None:
        raise UsageError("the state does not say when the run started: give --purged-at TIME")
    return datetime.fromisoformat(record.created_at).timestamp()


def _own_url(target: ProbeTarget) -> list[str]:
    return [target.url]
