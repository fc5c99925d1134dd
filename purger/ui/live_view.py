"""The live view of a purge (``purger run`` on a terminal, ``purger demo``): rich rendering
of a :class:`~purger.engine.monitor.Snapshot`, and nothing else. Text that comes from outside
(names, signal names, reasons) is never read as markup.
"""

from __future__ import annotations

import math
from typing import Final

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from purger.engine.monitor import FASTER, SLOWER, Snapshot
from purger.ui.report import format_duration, shard_range

__all__ = ["KEYS_HELP", "format_rate", "live_view"]

#: Rows of shards not done shown at most; the rest are counted in one line.
_SHOWN_SHARDS: Final = 10
_BAR_WIDTH: Final = 30
#: Seconds a retried call stays on screen once calls succeed again.
_RETRY_SHOWN_S: Final = 30.0
KEYS_HELP: Final = (
    f"keys: p pause/resume   + faster (x{FASTER:g})   - slower (x{SLOWER:g})   q stop (resumable)"
)


def format_rate(rate: float) -> str:
    """``480/s``, ``1.5/s``, or ``unbounded`` for an infinite rate."""
    if math.isinf(rate):
        return "unbounded"
    return f"{rate:,.0f}/s" if rate >= 10 else f"{rate:.2g}/s"


def live_view(
    snapshot: Snapshot, *, title: str, keys: bool = False, message: str | None = None
) -> RenderableType:
    """Progress overall and per shard (heaviest first, done ones folded), rates, calls in
    flight, each health signal with value, limit and age, the controller's state and last
    decision with its reason, ETA, failures; with ``keys``, the keys and ``message`` (what
    the last key did)."""
    parts: list[RenderableType] = [Text(title, style="bold"), *_progress(snapshot)]
    if snapshot.shards:
        parts.append(_shards(snapshot))
    if snapshot.signals:
        parts.append(_signals(snapshot))
    parts.append(_controller(snapshot))
    parts.extend(Text(note) for note in snapshot.notes)
    if keys:
        parts.append(Text(KEYS_HELP, style="dim"))
        if message:
            parts.append(Text(message, style="cyan"))
    return Group(*parts)


def _state(snapshot: Snapshot) -> Text:
    if snapshot.stopping is not None:
        return Text.assemble(
            ("STOPPING", "bold yellow"), f": {snapshot.stopping}; finishing calls in flight"
        )
    states: list[Text] = []
    if snapshot.operator_paused:
        states.append(Text.assemble(("PAUSED by operator", "bold red"), " (p resumes)"))
    if snapshot.health_paused:
        states.append(
            Text.assemble(("PAUSED by health", "bold red"), f": {snapshot.health_reason}")
        )
    if not states:
        return Text("purging", style="green")
    return Text("; ").join(states)


def _progress(snapshot: Snapshot) -> list[RenderableType]:
    total, done = snapshot.targets_total, snapshot.targets_done
    share = done / total if total else 0.0
    what = "failed targets retried" if snapshot.mode == "retry-failed" else "targets"
    eta = "unknown" if snapshot.eta_s is None else format_duration(snapshot.eta_s)
    head = Text(
        f"{done:,} / {total:,} {what} ({share:.0%}), ETA {eta}, "
        f"elapsed {format_duration(snapshot.elapsed)}"
    )
    ceiling = format_rate(snapshot.max_rate)
    if snapshot.controller is not None:
        ceiling += f" (min {format_rate(snapshot.min_rate)})"
    rates = Text(
        f"targets/s now {format_rate(snapshot.rate_now)}, "
        f"over a minute {format_rate(snapshot.rate_smoothed)}, "
        f"allowed {format_rate(snapshot.allowed_rate)}, ceiling {ceiling}; "
        f"calls in flight {snapshot.in_flight}/{snapshot.concurrency}"
    )
    top = Table.grid(padding=(0, 2))
    top.add_row(
        ProgressBar(total=max(total, 1), completed=min(done, total), width=_BAR_WIDTH), head
    )
    lines: list[RenderableType] = [top, _state(snapshot), rates]
    retry = snapshot.retry
    if retry is not None and (not retry.answering or retry.age_s < _RETRY_SHOWN_S):
        # An API that does not answer must not look like a slow start.
        label = "NO ANSWER, retrying" if not retry.answering else "retried"
        lines.append(
            Text.assemble(
                (label, "bold red" if not retry.answering else "yellow"),
                f": {retry.text}; {retry.retries:,} retries so far",
            )
        )
    if snapshot.failures:
        failed = Text.assemble((f"{snapshot.failures:,} failed", "red"))
        if snapshot.last_failure:
            failed.append(f" (last: {snapshot.last_failure})")
        failed.append("; purger failures --state FILE lists them")
        lines.append(failed)
    return lines


def _shards(snapshot: Snapshot) -> RenderableType:
    done = snapshot.shards_done
    open_shards = [s for s in snapshot.shards if not s.done]
    table = Table(
        title=f"shards, heaviest first: {done} of {len(snapshot.shards)} done (folded)",
        title_justify="left",
        box=None,
        pad_edge=False,
    )
    for column in ("shard", "range", "progress", "targets"):
        table.add_column(column, justify="left" if column in ("range", "progress") else "right")
    for shard in open_shards[:_SHOWN_SHARDS]:
        table.add_row(
            str(shard.id),
            Text(shard_range(shard.start, shard.limit)),
            ProgressBar(
                total=max(shard.targets_total, 1),
                completed=min(shard.targets_done, shard.targets_total),
                width=_BAR_WIDTH,
            ),
            f"{shard.targets_done:,} / {shard.targets_total:,}",
        )
    hidden = len(open_shards) - _SHOWN_SHARDS
    if hidden > 0:
        table.add_row("", Text(f"... {hidden} more shards waiting", style="dim"), "", "")
    return table


def _signals(snapshot: Snapshot) -> RenderableType:
    table = Table(title="health", title_justify="left", box=None, pad_edge=False)
    for column in ("signal", "value", "limit", "critical", "pressure", "age", ""):
        table.add_column(column, justify="left" if column in ("signal", "") else "right")
    for signal in snapshot.signals:
        pressure = signal.pressure
        style = "green" if pressure is not None and pressure < 0.8 else "yellow"
        style = "red" if pressure is None or pressure >= 1 else style
        table.add_row(
            Text(signal.name),
            Text("unknown" if signal.value is None else f"{signal.value:.3g}"),
            f"{signal.limit:g}",
            "-" if signal.critical is None else f"{signal.critical:g}",
            Text("-" if pressure is None else f"{pressure:.2f}", style=style),
            "-" if signal.age is None else f"{signal.age:.0f} s",
            Text(signal.error or "", style="red"),
        )
    return table


def _controller(snapshot: Snapshot) -> RenderableType:
    view = snapshot.controller
    if view is None:
        return Text(
            f"pace: the ceiling ({format_rate(snapshot.max_rate)}) and the provider's limits; "
            "no health signals (--signal) to slow down on"
        )
    pressure = "unknown" if snapshot.pressure is None else f"{snapshot.pressure:.2f}"
    lines = [Text(f"controller: {view.phase} at {format_rate(view.rate)}, pressure {pressure}")]
    change = view.last_change
    if change is None:
        lines.append(Text("  last change: none yet"))
    else:
        age = view.last_change_age
        ago = "" if age is None else f" {format_duration(age)} ago"
        rate = format_rate(change.rate)
        lines.append(Text(f"  last change{ago}: {change.action} -> {rate}: {change.reason}"))
    if view.latest is not None and view.latest is not change:
        lines.append(Text(f"  last tick: {view.latest.action}: {view.latest.reason}"))
    return Group(*lines)
