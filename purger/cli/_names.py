"""Names and plans for the commands: a names source read and normalized as
:class:`~purger.cli._options.NamesOptions` say, or a plan file with its names checked."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Final

import httpx
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from purger import __version__
from purger.cli._names_options import NamesOptions, PlanNames
from purger.errors import UsageError
from purger.launch.build import check_names_match, weight_spec_of
from purger.names.nameset import NameSet, Normalization, Record, build_name_set, rows_by_name
from purger.names.sources import (
    SAMPLE_NAME,
    NamesSource,
    RawRows,
    fetch_simple_index,
    no_columns_message,
    read_records,
    redact_url,
)
from purger.planning.document import read_plan
from purger.planning.plan import Plan, make_plan
from purger.ui.report import render_skipped

__all__ = ["load_names", "plan_and_names"]

_NAMES_URL_TIMEOUT: Final = httpx.Timeout(60.0, connect=10.0)


def load_names(
    source: str | None, names: NamesOptions, err: Console, *, columns: tuple[str, ...] = ()
) -> tuple[NameSet, str]:
    """Read and normalize names from exactly one source; return them and where they came from.

    ``columns`` are the table columns the templates name: the source must have them, and
    the name set keeps their cells per row (``NameSet.rows``).
    """
    given = [
        flag
        for flag, on in (
            ("SOURCE", source),
            ("--names-url", names.names_url),
            ("--sample", names.sample),
        )
        if on
    ]
    if len(given) != 1:
        raise UsageError(
            "give exactly one names source: a file, '-' for stdin, --names-url URL or --sample"
            + (f" (got {', '.join(given)})" if given else "")
        )
    weight = names.weight
    raw_rows: RawRows = {}
    if names.names_url is not None:
        if weight.column is not None:
            raise UsageError(
                "--weight-column needs a TSV or CSV source; --names-url has names only"
            )
        where = redact_url(names.names_url)
        if columns:
            raise UsageError(no_columns_message(columns, "--names-url"))
        records: Iterable[Record] = _download(names.names_url, err)
    else:
        names_source = (
            NamesSource.sample(weight_column=weight.column)
            if names.sample
            else NamesSource(
                path=source or "-",
                format=names.fmt,
                name_column=names.name_column,
                weight_column=weight.column,
            )
        )
        names_source = replace(names_source, columns=columns)
        where = names_source.where
        records = read_records(names_source, stdin=sys.stdin.buffer, rows=raw_rows)
    name_set = build_name_set(
        records,
        where=where,
        normalization=names.normalization,
        weight=weight,
        strict=names.strict,
    )
    if columns:
        name_set = replace(name_set, rows=rows_by_name(raw_rows, names.normalization))
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


def _is_plan_file(argument: str) -> bool:
    return argument != "-" and argument.lower().endswith(".json") and Path(argument).is_file()


def plan_and_names(
    plan_or_names: str | None,
    names: NamesOptions,
    plan_names: PlanNames,
    *,
    workers: int | None,
    err: Console,
    columns: tuple[str, ...] = (),
) -> tuple[Plan, NameSet]:
    """A plan file and its names (from ``--names`` when they moved; checked to be the
    ones it was made from), or a names source planned on the fly for ``workers``."""
    if plan_or_names is not None and _is_plan_file(plan_or_names):
        the_plan = read_plan(Path(plan_or_names))
        source = plan_names.path or the_plan.source
        if names.names_url is None and not names.sample and source in (None, "<stdin>"):
            raise UsageError("this plan's names came from stdin: give them with --names FILE")
        on_sample = names.sample or (names.names_url is None and source == SAMPLE_NAME)
        as_planned = replace(
            names,
            sample=on_sample,
            weight=weight_spec_of(the_plan.weight),
            normalization=Normalization(the_plan.normalization),
        )
        name_set, where = load_names(
            None if on_sample or names.names_url else source, as_planned, err, columns=columns
        )
        check_names_match(the_plan, name_set, where)
        return the_plan, name_set
    name_set, where = load_names(plan_or_names, names, err, columns=columns)
    render_skipped(name_set, err)
    return make_plan(name_set, names.plan_settings(workers), source=where), name_set
