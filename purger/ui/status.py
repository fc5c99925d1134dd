"""``purger status`` for people, on one screen: where the run stands, totals, the last
error, the rate over time, failures by reason, the shards being purged."""

from __future__ import annotations

import math
from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

from purger.ui.report import format_duration, shard_range

__all__ = ["render_status"]

_HISTORY_ROWS = 8


def _render_history(console: Console, history: object) -> None:
    """The rate over time: at most a dozen points, evenly spaced, the last one included."""
    assert isinstance(history, list)  # noqa: S101 - status_document builds it
    if not history:
        return
    step = max(1, math.ceil(len(history) / _HISTORY_ROWS))
    shown = history[::-1][::step][::-1]
    table = Table(title="rate history", title_justify="left")
    for column in ("at (UTC)", "targets/s", "allowed", "targets", "held by"):
        table.add_column(column, justify="left" if column in ("at (UTC)", "held by") else "right")
    for point in shown:
        allowed = point["allowed"]
        table.add_row(
            str(point["at"]).replace("+00:00", ""),
            f"{point['rate']:,.1f}",
            "unbounded" if allowed is None else f"{allowed:,.0f}",
            f"{point['targets']:,}",
            ", ".join(point["held"]) or "-",
        )
    console.print(table)


#: Rows of shards not done that ``purger status`` lists; failure reasons it lists.
_STATUS_SHARDS = 8
_STATUS_REASONS = 5


def render_status(console: Console, document: Mapping[str, object]) -> None:
    """``purger status`` on one screen: the run and where it stands (running, paused,
    stopped, done, failed), totals, the last error, the rate over time, failures by reason,
    then the shards being purged (done ones folded, waiting ones counted)."""

    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    run = document["run"]
    if not isinstance(run, dict):
        say(f"{document['state']}: no run recorded yet ({document['status']})")
        return
    eta = document["eta_s"]
    rate = document["rate"]
    situation = document["status"]
    say(
        f"{document['state']}: run {document['run_id']} (plan {str(run['fingerprint'])[:12]}) "
        f"on {run['provider']}, started {run['created_at']}"
    )
    moving = situation in ("running", "paused")
    say(
        f"{str(situation).upper()}: {document['shards_done']}/{document['shards_total']} "
        f"shards done, {document['targets_done']:,} targets purged, "
        f"{document['failures']:,} failed"
        + (f", {rate:,.0f}/s" if moving and isinstance(rate, float) else "")
        + (f", ETA {format_duration(eta)}" if moving and isinstance(eta, float) else "")
        + ("; purger run --resume continues it" if situation == "stopped" else "")
    )
    if document.get("last_error"):
        say(f"last error: {document['last_error']}")
    runners = document.get("runners")
    if isinstance(runners, list) and runners:
        say(f"runners ({len(runners)}):")
        for runner in runners:
            say(
                f"  {runner['host']} pid {runner['pid']}: {runner['shards_held']} shards held,"
                f" heartbeat {runner['seconds_since']:g} s ago ({runner['heartbeat']})"
            )
    _render_history(console, document["rate_history"])
    reasons = document["failure_reasons"]
    assert isinstance(reasons, list)  # noqa: S101 - status_document builds it
    if reasons:
        say(f"failures by reason (purger failures --state {document['state']} lists them):")
        for row in reasons[:_STATUS_REASONS]:
            say(f"  {row['count']:>8,}  {row['reason']}")
        if len(reasons) > _STATUS_REASONS:
            say(f"  ... {len(reasons) - _STATUS_REASONS} more reasons")
    shards = document["shards"]
    assert isinstance(shards, list)  # noqa: S101 - status_document builds it
    _render_open_shards(console, shards)


def _render_open_shards(console: Console, shards: list[dict[str, object]]) -> None:
    """The shards begun and not done, a few rows at most; the waiting ones counted."""
    open_shards = [s for s in shards if not s["done"]]
    if not open_shards:
        return
    begun = [s for s in open_shards if s["targets_done"]]
    waiting = len(open_shards) - len(begun)
    console.print(
        f"shards not done: {len(begun)} begun, {waiting} waiting "
        f"({len(shards) - len(open_shards)} done, folded)",
        highlight=False,
        soft_wrap=True,
    )
    table = Table()
    for column in ("shard", "range", "names", "targets done"):
        table.add_column(column, justify="left" if column == "range" else "right")
    for shard in (begun or open_shards)[:_STATUS_SHARDS]:
        table.add_row(
            str(shard["id"]),
            shard_range(
                str(shard["start"]), None if shard["limit"] is None else str(shard["limit"])
            ),
            f"{shard['names']:,}",
            f"{shard['targets_done']:,}",
        )
    shown = min(len(begun or open_shards), _STATUS_SHARDS)
    rest = len(begun or open_shards) - shown
    if rest > 0:
        table.add_row("", f"... {rest} more", "", "")
    console.print(table)
