"""Backend health: what a signal is. A :class:`SignalSpec` names one reading of the
origin (a Prometheus query, a ``/metrics`` expression, a JSON path) and its thresholds; a
:class:`Sample` is one reading of it; the text form (``parse_signal``/``format_signal``) is
what the CLI and job files carry. Reading them is :mod:`purger.health.reader`'s job.

A reading that failed, found no data or cannot be trusted is *unknown*: ``value`` is None
and ``error`` says why. Unknown is never healthy (algorithms.md A.10, pitfalls 1 and 5).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypeVar

import httpx

from purger.errors import UsageError
from purger.health.answers import parse_json_path
from purger.health.exposition import parse_expression
from purger.model import redact_url

__all__ = [
    "Direction",
    "Sample",
    "SignalKind",
    "SignalSpec",
    "SourceKind",
    "format_signal",
    "parse_signal",
]

_E = TypeVar("_E", bound=StrEnum)


class SourceKind(StrEnum):
    """Where a signal is read: a Prometheus server, a /metrics page, or a JSON document."""

    PROMETHEUS = "prometheus"
    SCRAPE = "scrape"
    JSON = "json"


class Direction(StrEnum):
    """Which way is better: LOWER for latency and errors, HIGHER for headroom."""

    LOWER = "lower"
    HIGHER = "higher"


class SignalKind(StrEnum):
    """What a signal measures, so the controller can treat errors harder than latency."""

    LATENCY = "latency"
    ERRORS = "errors"
    SATURATION = "saturation"
    OTHER = "other"


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalSpec:
    """One signal and its thresholds: ``limit`` is pressure 1.0, where slowing down starts;
    ``critical``, when set, is where the run pauses. Checked here so a typo fails at start."""

    name: str
    source: SourceKind
    url: str
    query: str
    limit: float
    critical: float | None = None
    direction: Direction = Direction.LOWER
    kind: SignalKind = SignalKind.OTHER

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise UsageError("signal: name must not be empty")
        where = f"signal {self.name!r}"
        # TOML hands us plain strings; StrEnum compares equal, but `is` checks would not.
        for key, enum in (("source", SourceKind), ("direction", Direction), ("kind", SignalKind)):
            object.__setattr__(self, key, _choice(where, key, getattr(self, key), enum))
        if not (math.isfinite(self.limit) and self.limit > 0):
            raise UsageError(f"{where}: limit must be > 0")
        if self.critical is not None:
            lower = self.direction is Direction.LOWER
            beyond = self.critical > self.limit if lower else 0 < self.critical < self.limit
            if not (math.isfinite(self.critical) and beyond):
                side = "above limit" if lower else "> 0 and below limit"
                raise UsageError(
                    f"{where}: critical must be {side} ({self.limit:g}) "
                    f"for a {self.direction}-is-better signal"
                )
        try:
            url: httpx.URL | None = httpx.URL(self.url)
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise UsageError(
                f"{where}: url must be http(s)://host..., got {redact_url(self.url)!r}"
            )
        if not self.query.strip():
            raise UsageError(f"{where}: query must not be empty")
        try:
            if self.source is SourceKind.SCRAPE:
                parse_expression(self.query)
            elif self.source is SourceKind.JSON:
                parse_json_path(self.query)
        except ValueError as exc:
            raise UsageError(f"{where}: query: {exc}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One reading of one signal. ``value`` None is unknown and ``error`` says why.
    ``observed_at`` dates the data point itself, so the caller can tell stale from fresh."""

    signal: SignalSpec
    value: float | None
    observed_at: float | None
    error: str | None = None

    @property
    def pressure(self) -> float | None:
        """1.0 at ``limit``, above it past the limit; None when unknown (never "healthy")."""
        value = self.value
        if value is None or math.isnan(value):
            return None
        if self.signal.direction is Direction.HIGHER:
            return math.inf if value <= 0 else self.signal.limit / value
        return value / self.signal.limit

    def age(self, now: float) -> float | None:
        """Seconds since the data point; negative when the source's clock runs ahead."""
        return None if self.observed_at is None else now - self.observed_at


# --- the text form of a signal --------------------------------------------------------

_KEYS: Final = ("name", "source", "url", "limit", "critical", "direction", "kind", "query")
_QUERY_START: Final = re.compile(r"(?:^|,)\s*query\s*=")
# A key after query= means query was not last. PromQL label matchers are never followed
# by a bare value (`code="5"`, `code=~"5.."`), so this does not fire on real queries.
_KEY_IN_QUERY: Final = re.compile(r",\s*(" + "|".join(_KEYS) + r")\s*=(?!\s*[=~\"'`])")


def parse_signal(text: str) -> SignalSpec:
    """A :class:`SignalSpec` from its text form (CLI flag or TOML string).

    Comma-separated ``key=value`` items with ``query=`` last: the query runs to the end of
    the text, so PromQL keeps its commas. Required: ``name``, ``source`` (prometheus,
    scrape, json), ``url``, ``limit``, ``query``; optional ``critical``, ``direction``
    (lower, higher) and ``kind`` (latency, errors, saturation, other). Blanks around keys
    and values are dropped; values may contain ``=`` but not ``,`` (in a URL write ``%2C``)::

        name=origin p99,source=prometheus,url=http://127.0.0.1:9090,limit=0.25,critical=1,
        kind=latency,query=histogram_quantile(0.99, sum(rate(x_bucket[30s])) by (le))
    """
    label = repr(text if len(text) <= 60 else text[:57] + "...")
    found = _QUERY_START.search(text)
    if found is None:
        raise UsageError(f"signal {label}: missing query= (it must be the last item)")
    head, query = text[: found.start()], text[found.end() :].strip()
    if misplaced := _KEY_IN_QUERY.search(query):
        raise UsageError(
            f"signal {label}: query= must be the last item, but {misplaced.group(1)}= "
            "follows it (everything after query= is the query)"
        )
    fields: dict[str, str] = {}
    for item in head.split(",") if head.strip() else []:
        key, equals, value = (part.strip() for part in item.partition("="))
        if not equals:
            problem = "an empty item (two commas?)" if not key else f"{item.strip()!r}"
            raise UsageError(f"signal {label}: {problem} is not key=value")
        if key not in _KEYS:
            raise UsageError(f"signal {label}: unknown key {key!r}; keys: {', '.join(_KEYS)}")
        if key in fields:
            raise UsageError(f"signal {label}: {key}= is given twice")
        if not value:
            raise UsageError(f"signal {label}: {key}= is empty")
        fields[key] = value
    if missing := [k for k in ("name", "source", "url", "limit") if k not in fields]:
        raise UsageError(f"signal {label}: missing {', '.join(k + '=' for k in missing)}")
    where = f"signal {fields['name']!r}"
    return SignalSpec(
        name=fields["name"],
        source=_choice(where, "source", fields["source"], SourceKind),
        url=fields["url"],
        query=query,
        limit=_number(where, "limit", fields["limit"]),
        critical=_number(where, "critical", fields["critical"]) if "critical" in fields else None,
        direction=_choice(where, "direction", fields.get("direction", "lower"), Direction),
        kind=_choice(where, "kind", fields.get("kind", "other"), SignalKind),
    )


def format_signal(spec: SignalSpec) -> str:
    """The text form of ``spec``, so that ``parse_signal(format_signal(spec)) == spec``."""
    for key, value in (("name", spec.name), ("url", spec.url), ("query", spec.query)):
        if value != value.strip() or (key != "query" and "," in value):
            raise UsageError(f"signal {spec.name!r}: {key} has a comma or outer blanks")
    if _KEY_IN_QUERY.search(spec.query):
        raise UsageError(f"signal {spec.name!r}: the query looks like more key=value items")
    items = [f"name={spec.name}", f"source={spec.source}", f"url={spec.url}"]
    items.append(f"limit={spec.limit!r}")
    if spec.critical is not None:
        items.append(f"critical={spec.critical!r}")
    items += [f"direction={spec.direction}", f"kind={spec.kind}", f"query={spec.query}"]
    return ",".join(items)


def _choice(where: str, key: str, value: object, enum: type[_E]) -> _E:
    try:
        return enum(str(value))
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise UsageError(f"{where}: {key} must be one of {choices}, got {value!r}") from None


def _number(where: str, key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UsageError(f"{where}: {key} must be a number, got {text!r}")
    return value
