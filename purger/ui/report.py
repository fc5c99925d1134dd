"""Rendering for people: rich tables and summary lines. No decisions are made here."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Table

from purger.health.signals import Direction, Sample
from purger.launch.forecast import Forecast
from purger.model import redact_url
from purger.names.nameset import NameSet
from purger.planning.estimate import Estimate
from purger.planning.plan import Comparison, Plan
from purger.providers import ProviderOptions

__all__ = [
    "format_duration",
    "format_weight",
    "provider_label",
    "render_forecast",
    "render_plan",
    "render_probe",
    "render_simulation",
    "render_skipped",
    "render_summary",
    "shard_range",
]

_SHOWN_SKIPPED = 3


def format_weight(value: float) -> str:
    """``13,849`` for whole or large weights, four significant digits for small ones."""
    if float(value).is_integer() or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def shard_range(start: str, limit: str | None) -> str:
    """``['p', 'pe')``: a shard's half-open range of names."""
    low = repr(start) if start else "start"
    high = repr(limit) if limit is not None else "end"
    return f"[{low}, {high})"


def render_skipped(name_set: NameSet, console: Console) -> None:
    """Warn about names that were skipped as invalid (on the diagnostics console)."""
    if not name_set.invalid:
        return
    shown = ", ".join(repr(n) for n in name_set.invalid_examples[:_SHOWN_SKIPPED])
    more = "" if name_set.invalid <= _SHOWN_SKIPPED else ", ..."
    console.print(
        f"[yellow]skipped {name_set.invalid:,} invalid {name_set.normalization} names[/] "
        f"({shown}{more}); --strict makes this an error",
        highlight=False,
        soft_wrap=True,
    )


def render_plan(
    plan: Plan,
    console: Console,
    *,
    name_set: NameSet | None = None,
    comparison: Comparison | None = None,
) -> None:
    """The shard table, then the summary an operator reads before purging."""
    table = Table(title=f"plan {plan.fingerprint[:12]}", title_justify="left")
    table.add_column("shard", justify="right")
    table.add_column("range")
    table.add_column("count", justify="right")
    table.add_column("weight", justify="right")
    table.add_column("share", justify="right")
    for shard in plan.shards:
        table.add_row(
            str(shard.id),
            shard_range(shard.start, shard.limit),
            f"{shard.count:,}",
            format_weight(shard.weight),
            f"{100 * shard.weight / plan.total_weight:.2f} %",
        )
    console.print(table)

    if name_set is not None:
        merged = f"; {name_set.merged:,} merged into names already seen" if name_set.merged else ""
        console.print(
            f"{plan.total_count:,} names from {plan.source or 'input'} "
            f"({name_set.records:,} rows{merged}), normalize {plan.normalization}, "
            f"weight {plan.weight} (total {format_weight(plan.total_weight)})",
            highlight=False,
            soft_wrap=True,
        )
    weights = [s.weight for s in plan.shards]
    mean = plan.total_weight / len(plan.shards)
    console.print(
        f"{len(plan.shards)} shards; heaviest {format_weight(max(weights))} = "
        f"{max(weights) / mean:.3f} x the mean {format_weight(mean)}",
        highlight=False,
        soft_wrap=True,
    )
    if plan.heavy_names:
        console.print(
            f"{len(plan.heavy_names)} name(s) heavier than a shard, each in a shard of its own: "
            + ", ".join(plan.heavy_names[:10])
            + (", ..." if len(plan.heavy_names) > 10 else ""),
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f"{plan.settings.workers} workers taking shards heaviest first: makespan "
        f"{plan.makespan_ratio:.3f} x its lower bound "
        "(the larger of total / workers and the heaviest name)",
        highlight=False,
        soft_wrap=True,
    )
    for line in _prefix_lines(plan.prefix_shards):
        console.print(line, highlight=False)
    if comparison is not None:
        console.print(
            f"by first character (PyPI 2022): {comparison.first_letter_shards} shards, makespan "
            f"{comparison.first_letter_ratio:.2f} x the ideal total / {comparison.workers} "
            f"('{comparison.heaviest_prefix}' alone weighs "
            f"{100 * comparison.heaviest_weight / plan.total_weight:.1f} %); "
            f"this plan: {comparison.plan_ratio:.2f} x",
            highlight=False,
            soft_wrap=True,
        )


def _prefix_lines(prefix_shards: Sequence[tuple[str, int]]) -> list[str]:
    """``p: 15 shards (py: 8, pe: 2, pyt: 2)``, one line per first character."""
    lines: list[str] = []
    tops = [(p, n) for p, n in prefix_shards if len(p) == 1]
    for top, count in sorted(tops, key=lambda item: (-item[1], item[0])):
        inner = sorted(
            ((p, n) for p, n in prefix_shards if len(p) > 1 and n > 2 and p.startswith(top)),
            key=lambda item: (len(item[0]), -item[1], item[0]),
        )
        detail = ", ".join(f"{p}: {n}" for p, n in inner[:8])
        lines.append(f"{top}: {count} shards" + (f" ({detail})" if detail else ""))
    return lines


def render_forecast(
    console: Console,
    *,
    provider: str,
    soft: bool,
    templates: Sequence[str],
    shards: int,
    names: int,
    forecast: Forecast,
) -> None:
    """What a run would send, how long it would take and why, a chart of the shards per
    worker, and PyPI's 2022 method beside it. Nothing was sent."""
    est = forecast.estimate

    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    say(
        f"estimate (nothing sent): provider {provider}, {'soft' if soft else 'hard'} purge, "
        f"{names:,} names in {shards} shards, templates {', '.join(templates)}"
    )
    for line in _workload_lines(forecast):
        say(line)
    for bound, seconds in sorted(est.bounds.items(), key=lambda item: -item[1]):
        say(f"  {format_duration(seconds):>10}  {bound}")
    if est.origin_peak_extra_rps:
        say(f"extra origin load: up to {est.origin_peak_extra_rps:,.0f} fetches/s while purging")
    _render_gantt(console, est)
    first = forecast.first_letter
    if forecast.first_letter_ideal_s > 0:
        ratio = first.duration_s / forecast.first_letter_ideal_s
        say(
            f"as PyPI did in 2022 (one shard per first character, one target per call, "
            f"{est.workers} workers one call at a time): {format_duration(first.duration_s)}, "
            f"{ratio:.1f} x that method's ideal of "
            f"{format_duration(forecast.first_letter_ideal_s)}; "
            f"this plan: {format_duration(est.duration_s)}"
        )


def provider_label(options: ProviderOptions) -> str:
    """``fastly service SVC``, ``varnish http://a:6081, http://b:6081``: the provider and
    what of it a purge reaches, so that an operator sees a wrong service before it is hit."""
    details = {
        "fastly": f"service {options.service_id}",
        "cloudflare": f"zone {options.zone_id}",
        "akamai": f"{options.network} network, {options.akamai_key_type}s, {options.akamai_action}",
        "varnish": ", ".join(redact_url(e) for e in options.endpoints),
    }
    label = options.name
    if details.get(options.name):
        label += f" {details[options.name]}"
    if options.api_base:
        label += f" (via {redact_url(options.api_base)})"
    return label


def _workload_lines(forecast: Forecast) -> list[str]:
    """Targets and API calls by kind, then the duration and what bounds it."""
    est, workload = forecast.estimate, forecast.workload
    lines = [
        f"  {kind}s: {workload.targets[kind]:,} targets in {workload.calls[kind]:,} API calls"
        for kind in sorted(workload.targets)
    ]
    duration = format_duration(est.duration_s)
    lines.append(f"duration {duration} with {est.workers} workers, bound by {est.bottleneck}")
    return lines


def render_summary(
    console: Console,
    *,
    action: str,
    provider: str,
    soft: bool,
    templates: Sequence[str],
    state: str,
    forecast: Forecast,
) -> None:
    """What ``purger run`` is about to send, before it asks to proceed: ``action`` (what
    and where: names and shards, a resume, a retry of failures), the provider and its
    service, zone or endpoints, soft or hard, templates, targets by kind, the estimate."""

    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    say(f"about to purge through {provider}, {'soft' if soft else 'hard'} purge: {action}")
    say(f"  templates: {', '.join(templates)}")
    say(f"  state: {state}")
    for line in _workload_lines(forecast):
        say(f"  {line.strip()}")


_GANTT_WIDTH = 60
_GANTT_ROWS = 24
_MARKS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _render_gantt(console: Console, est: Estimate) -> None:
    """One row per worker, one character per time slice: the shard it works on then."""
    if not est.spans or est.duration_s <= 0:
        return
    scale = est.duration_s / _GANTT_WIDTH
    rows: dict[int, list[str]] = {}
    turns: dict[int, int] = {}
    for span in est.spans:
        row = rows.setdefault(span.worker, ["."] * _GANTT_WIDTH)
        first = min(_GANTT_WIDTH - 1, int(span.start_s / scale))
        last = max(first, min(_GANTT_WIDTH - 1, math.ceil(span.end_s / scale) - 1))
        mark = _MARKS[span.id % len(_MARKS)]
        # Alternate case along a row, so that two shards in a row stay two.
        turns[span.worker] = turns.get(span.worker, 0) + 1
        mark = mark.upper() if turns[span.worker] % 2 == 0 else mark
        for i in range(first, last + 1):
            row[i] = mark
    table = Table(
        title="shards per worker over time (mark = shard id mod 36)", title_justify="left"
    )
    table.add_column("worker", justify="right")
    table.add_column(f"0 .. {format_duration(est.duration_s)}")
    for worker in sorted(rows)[:_GANTT_ROWS]:
        table.add_row(str(worker), "".join(rows[worker]))
    console.print(table)
    if len(rows) > _GANTT_ROWS:
        console.print(f"... {len(rows) - _GANTT_ROWS} more workers", highlight=False)


def render_simulation(console: Console, document: Mapping[str, object]) -> None:
    """``purger estimate --simulate``: the purge run against the simulated origin."""

    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    duration = document["duration_s"]
    assert isinstance(duration, float | int)  # noqa: S101 - simulation_to_json builds it
    say(
        f"simulated (seed {document['seed']}): {format_duration(duration)} for "
        f"{document['targets']:,} targets in {document['api_calls']:,} calls, "
        f"{document['mean_rate']} targets/s on average"
    )
    say(
        f"origin: capacity {document['origin_capacity']} fetches/s, extra load up to "
        f"{document['origin_peak_extra_rps']} fetches/s, p99 up to {document['origin_p99_max_s']} s"
    )
    decisions = document["decisions"]
    assert isinstance(decisions, list)  # noqa: S101
    for decision in decisions[:20]:
        at, action, rate = decision["at_s"], decision["action"], decision["rate"]
        say(f"  {at:>8} s  {action:<6} {rate:>8}/s  {decision['reason']}")
    if len(decisions) > 20:
        say(f"  ... {len(decisions) - 20} more decisions")


def format_duration(seconds: float) -> str:
    """``1 h 02 min``, ``3 min 20 s``, ``12.5 s``."""
    if seconds >= 3600:
        hours, rest = divmod(round(seconds), 3600)
        return f"{hours} h {rest // 60:02d} min"
    if seconds >= 60:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest:02d} s"
    return f"{seconds:.1f} s"


def render_probe(samples: Sequence[Sample], now: float, console: Console) -> None:
    """One row per signal: value, limit, pressure, age, and why a reading is unknown."""
    table = Table(title="health", title_justify="left")
    for column in ("signal", "value", "limit", "critical", "pressure", "age", "status"):
        table.add_column(column, justify="left" if column in ("signal", "status") else "right")
    for sample in samples:
        signal, pressure, age = sample.signal, sample.pressure, sample.age(now)
        if pressure is None:
            status = f"[red]unknown[/]: {sample.error}"
        elif signal.critical is not None and (
            sample.value is not None
            and (
                sample.value >= signal.critical
                if signal.direction is Direction.LOWER
                else sample.value <= signal.critical
            )
        ):
            status = "[red]critical[/]"
        elif pressure >= 1:
            status = "[yellow]over limit[/]"
        else:
            status = "[green]ok[/]"
        table.add_row(
            signal.name,
            "-" if sample.value is None else f"{sample.value:.4g}",
            f"{signal.limit:g}",
            "-" if signal.critical is None else f"{signal.critical:g}",
            "-" if pressure is None else f"{pressure:.2f}",
            "-" if age is None else f"{age:.0f} s",
            status,
        )
    console.print(table)
