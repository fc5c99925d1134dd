"""The Prometheus text exposition format (0.0.4), and the small expression language purger
evaluates between two scrapes of it: a selector (a gauge), ``rate(counter)``,
``histogram_quantile(q, histogram)`` and ``ratio(a, b)``. No Prometheus server needed.

Pure: text in, numbers out. ``health.py`` does the fetching and the timing.
"""

from __future__ import annotations

import itertools
import math
import re
from bisect import bisect_left
from dataclasses import dataclass, replace
from functools import cache
from typing import Final

__all__ = ["VALUE", "Exposition", "Expression", "evaluate", "parse_exposition", "parse_expression"]

Labels = tuple[tuple[str, str], ...]


_NAME: Final = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_MATCHER: Final = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*")
_ESCAPES: Final = {"\\": "\\", '"': '"', "'": "'", "n": "\n"}
#: A sample value as Prometheus writes it (also in its HTTP API's answers).
VALUE: Final = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|nan)", re.I)
_FUNCTION: Final = re.compile(r"\s*(rate|histogram_quantile|ratio)\s*\((.*)\)\s*", re.S)


@dataclass(frozen=True, slots=True)
class Exposition:
    series: dict[str, dict[Labels, float]]
    typed: frozenset[str]  # names from TYPE lines: a family may exist with no series yet

    def has(self, name: str) -> bool:
        return name in self.series or name in self.typed


@dataclass(frozen=True, slots=True)
class _Selector:
    text: str
    metric: str
    matchers: tuple[tuple[str, str, str], ...]

    def select(self, exposition: Exposition) -> dict[Labels, float]:
        family = exposition.series.get(self.metric, {})
        return {labels: v for labels, v in family.items() if self._matches(dict(labels))}

    def _matches(self, labels: dict[str, str]) -> bool:
        for name, op, wanted in self.matchers:
            actual = labels.get(name, "")  # PromQL: a missing label is the empty string
            hit = actual == wanted if op in ("=", "!=") else bool(re.fullmatch(wanted, actual))
            if hit != (op in ("=", "=~")):
                return False
        return True


@dataclass(frozen=True, slots=True)
class _Rate:
    selector: _Selector


@dataclass(frozen=True, slots=True)
class _Quantile:
    q: float
    buckets: _Selector


@dataclass(frozen=True, slots=True)
class _Ratio:
    numerator: _Selector | _Rate
    denominator: _Selector | _Rate


Expression = _Selector | _Rate | _Quantile | _Ratio


def _parse_labels(
    text: str, pos: int, ops: tuple[str, ...], quotes: str
) -> tuple[list[tuple[str, str, str]], int]:
    """``{name="value",...}`` from ``text[pos] == "{"``: (name, op, value) items, end."""
    pairs: list[tuple[str, str, str]] = []
    pos += 1
    while True:
        pos = len(text) - len(text[pos:].lstrip())
        if text.startswith("}", pos):
            return pairs, pos + 1
        found = _MATCHER.match(text, pos)
        if found is None or found.group(2) not in ops:
            raise ValueError(f'expected label{ops[0]}"value" at column {pos + 1}')
        quote, pos = text[found.end() : found.end() + 1], found.end() + 1
        if not quote or quote not in quotes:
            raise ValueError(f"expected a quoted label value at column {pos}")
        value: list[str] = []
        while not text.startswith(quote, pos):
            if pos >= len(text):
                raise ValueError("unterminated label value")
            if text[pos] == "\\":
                escaped = _ESCAPES.get(text[pos + 1 : pos + 2])
                if escaped is None:
                    raise ValueError(f"bad escape in a label value at column {pos + 1}")
                value.append(escaped)
                pos += 2
            else:
                value.append(text[pos])
                pos += 1
        pairs.append((found.group(1), found.group(2), "".join(value)))
        pos = len(text) - len(text[pos + 1 :].lstrip())
        if text.startswith(",", pos):
            pos += 1
        elif not text.startswith("}", pos):
            raise ValueError(f"expected ',' or '}}' at column {pos + 1}")


def parse_exposition(text: str) -> Exposition:
    series: dict[str, dict[Labels, float]] = {}
    typed: set[str] = set()
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if line.startswith("#"):
            words = line.split()
            if len(words) >= 3 and words[1] == "TYPE":
                typed.add(words[2])
            continue
        if not line:
            continue
        try:
            name, labels, value = _parse_sample(line)
            family = series.setdefault(name, {})
            if labels in family:
                raise ValueError(f"duplicate series {name}")
        except ValueError as exc:
            raise ValueError(f"bad exposition line {number}: {exc}") from None
        family[labels] = value
    return Exposition(series, frozenset(typed))


def _parse_sample(line: str) -> tuple[str, Labels, float]:
    labels: Labels
    found = _NAME.match(line)
    if found is None:
        raise ValueError("expected a metric name")
    pos, labels = found.end(), ()
    if line.startswith("{", pos):
        pairs, pos = _parse_labels(line, pos, ("=",), '"')
        if len({pair[0] for pair in pairs}) != len(pairs):
            raise ValueError("a label is repeated")
        labels = tuple(sorted((pair[0], pair[2]) for pair in pairs))
    words = line[pos:].split()
    if not line[pos : pos + 1].isspace() or len(words) not in (1, 2):
        raise ValueError("expected NAME{LABELS} VALUE [TIMESTAMP]")
    if not VALUE.fullmatch(words[0]) or not re.fullmatch(r"-?\d+", [*words, "0"][1]):
        raise ValueError(f"bad value or timestamp {' '.join(words)!r}")
    return found.group(), labels, float(words[0])


@cache
def parse_expression(text: str) -> Expression:
    call = _FUNCTION.fullmatch(text)
    if call is None:
        return _parse_selector(text)
    function, args = call.group(1), _split_args(call.group(2))
    if function == "rate":
        if len(args) != 1:
            raise ValueError("rate() takes one selector")
        return _Rate(_parse_selector(args[0]))
    if function == "ratio":
        parts = [parse_expression(arg) for arg in args]
        match parts:
            case [_Selector() | _Rate() as numerator, _Selector() | _Rate() as denominator]:
                return _Ratio(numerator, denominator)
        raise ValueError("ratio() takes two selectors or rate()s: ratio(errors, total)")
    if len(args) != 2 or not VALUE.fullmatch(args[0]) or not 0 < float(args[0]) <= 1:
        raise ValueError("histogram_quantile() takes a quantile in (0, 1] and a histogram")
    buckets = _parse_selector(args[1])
    if not buckets.metric.endswith("_bucket"):
        buckets = replace(buckets, metric=buckets.metric + "_bucket")
    return _Quantile(float(args[0]), buckets)


def _parse_selector(text: str) -> _Selector:
    text = text.strip()
    found = _NAME.match(text)
    if found is None:
        raise ValueError(f"expected a metric selector, got {text!r}")
    pos = len(text) - len(text[found.end() :].lstrip())
    matchers: list[tuple[str, str, str]] = []
    if text.startswith("{", pos):
        matchers, pos = _parse_labels(text, pos, ("=", "!=", "=~", "!~"), "\"'")
    if text.startswith("[", pos):
        raise ValueError("drop the range [...]: a scrape rate covers the time between two reads")
    if text[pos:].strip():
        raise ValueError(f"unexpected {text[pos:]!r} after the selector")
    for _, op, pattern in matchers:
        if "~" in op:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
    return _Selector(text, found.group(), tuple(matchers))


def _split_args(text: str) -> list[str]:
    """Split at top-level commas, outside brackets and quotes."""
    args, depth, start, quote, skip = [], 0, 0, "", False
    for i, char in enumerate(text):
        if skip:
            skip = False
        elif quote:
            skip, quote = char == "\\", "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "({[" or char in ")}]":
            depth += 1 if char in "({[" else -1
        elif char == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
    return [*args, text[start:].strip()]


def evaluate(
    expr: Expression, now: Exposition, before: Exposition | None, seconds: float, no_rate: str
) -> float | str:
    """The value of ``expr``, or why there is none. Rates use the previous scrape."""
    if isinstance(expr, _Selector):
        values = expr.select(now)
        return sum(values.values()) if values else f"no series matches {expr.text}"
    if isinstance(expr, _Ratio):
        numerator = evaluate(expr.numerator, now, before, seconds, no_rate)
        denominator = evaluate(expr.denominator, now, before, seconds, no_rate)
        if isinstance(numerator, str) or isinstance(denominator, str):
            return numerator if isinstance(numerator, str) else str(denominator)
        return numerator / denominator if denominator else "ratio: the denominator is 0"
    if before is None:
        return no_rate
    if seconds <= 0:
        return "no time passed since the previous scrape"
    if isinstance(expr, _Rate):
        if not now.has(expr.selector.metric):
            return f"no metric {expr.selector.metric} in the exposition"
        # A counter with no series for these labels has counted nothing yet: rate 0.
        return sum(_increases(expr.selector, now, before).values()) / seconds
    return _quantile(expr, _increases(expr.buckets, now, before))


def _increases(selector: _Selector, now: Exposition, before: Exposition) -> dict[Labels, float]:
    """Per-series counter increases; a new series, or a reset, counts from 0."""
    old = selector.select(before)
    return {
        labels: value - old.get(labels, 0.0) if value >= old.get(labels, 0.0) else value
        for labels, value in selector.select(now).items()
    }


def _quantile(expr: _Quantile, increases: dict[Labels, float]) -> float | str:
    """Prometheus's ``bucketQuantile`` over bucket increases summed across other labels."""
    counts: dict[float, float] = {}
    for labels, increase in increases.items():
        le = dict(labels).get("le", "")
        if not VALUE.fullmatch(le) or math.isnan(float(le)):
            return f"{expr.buckets.metric} has a series without a valid le label"
        counts[float(le)] = counts.get(float(le), 0.0) + increase
    bounds = sorted(counts)
    if len(bounds) < 2 or bounds[-1] != math.inf:
        return f'no histogram with an le="+Inf" bucket matches {expr.buckets.text}'
    if any(math.isnan(count) for count in counts.values()):
        return "a bucket count is NaN"
    cumulative = list(itertools.accumulate((counts[b] for b in bounds), max))
    if not cumulative[-1] > 0:
        return "no observations in the interval"
    rank = expr.q * cumulative[-1]
    b = bisect_left(cumulative, rank, hi=len(bounds) - 1)
    if b == len(bounds) - 1:
        return bounds[-2]  # in the +Inf bucket: the highest finite bound, as Prometheus does
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, below = (bounds[b - 1], cumulative[b - 1]) if b else (0.0, 0.0)
    return start + (bounds[b] - start) * (rank - below) / (cumulative[b] - below)
