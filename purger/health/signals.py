"""Backend health: read the origin's signals (a Prometheus server, a ``/metrics`` page, a
JSON status document) into :class:`Sample` values that the controller turns into a rate.

A reading that failed, found no data or cannot be trusted is *unknown*: ``value`` is None
and ``error`` says why. Unknown is never healthy (algorithms.md A.10, pitfalls 1 and 5).
Prometheus stamps an instant query's result with the evaluation time, not the sample's, so
a second query, ``timestamp(QUERY)``, dates the samples and a dead exporter shows up as old.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cache
from typing import Final, TypeVar

import anyio
import httpx

from purger.errors import UsageError
from purger.health.exposition import VALUE, Exposition, evaluate, parse_exposition, parse_expression
from purger.model import redact_url, scrub, url_secrets

__all__ = [
    "Direction",
    "HealthReader",
    "Sample",
    "SignalKind",
    "SignalSpec",
    "SourceKind",
    "format_signal",
    "parse_signal",
]

_log = logging.getLogger(__name__)
_E = TypeVar("_E", bound=StrEnum)
_K = TypeVar("_K")
_V = TypeVar("_V")
_Labels = tuple[tuple[str, str], ...]


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
                _parse_path(self.query)
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


# --- JSON documents --------------------------------------------------------------------


@cache
def _parse_path(text: str) -> tuple[str, ...]:
    steps = tuple(text.split("."))
    if not all(steps):
        raise ValueError(f"path {text!r} has an empty step")
    return steps


def _follow(document: object, path: tuple[str, ...]) -> float | str:
    here = document
    for i, step in enumerate(path):
        where = ".".join(path[:i]) or "the top level"
        if isinstance(here, dict):
            if step not in here:
                return f"no key {step!r} at {where}"
            here = here[step]
        elif isinstance(here, list) and re.fullmatch(r"-?\d+", step):
            if not -len(here) <= int(step) < len(here):
                return f"index {step} is out of range at {where} ({len(here)} items)"
            here = here[int(step)]
        else:
            return f"{where} is {_json_type(here)}; cannot take {step!r}"
    if isinstance(here, bool) or not isinstance(here, int | float):
        return f"not a number: {'.'.join(path)} is {_json_type(here)}"
    try:
        return float(here)
    except OverflowError:  # an integer past float range
        return math.inf if here > 0 else -math.inf


def _json_type(value: object) -> str:
    names = {bool: "a boolean", str: "a string", dict: "an object", list: "a list"}
    return "null" if value is None else names.get(type(value), "a number")


# --- Prometheus HTTP API ---------------------------------------------------------------

_Points = list[tuple[float, float]]


def _prometheus_result(body: object) -> tuple[str, _Points] | str:
    if not isinstance(body, dict):
        return "not a Prometheus API answer"
    if body.get("status") != "success":
        return f"Prometheus status {body.get('status')!r}{_prometheus_error(body)}"
    data = body.get("data")
    kind = data.get("resultType") if isinstance(data, dict) else None
    result = data.get("result") if isinstance(data, dict) else None
    if kind == "scalar":
        raw = [result]
    elif kind == "vector" and isinstance(result, list):
        raw = [item.get("value") if isinstance(item, dict) else None for item in result]
    else:
        return f"query returned a {kind or 'malformed'} result, not an instant vector or scalar"
    points: _Points = []
    for point in raw:
        if not (isinstance(point, list) and len(point) == 2 and isinstance(point[1], str)):
            return "malformed sample in the answer"
        at, value = point
        if isinstance(at, bool) or not isinstance(at, int | float) or not VALUE.fullmatch(value):
            return "malformed sample in the answer"
        points.append((float(at), float(value)))
    return (kind, points) if points else "query returned no series"


def _prometheus_error(body: object) -> str:
    if not isinstance(body, dict) or "error" not in body:
        return ""
    return f" ({body.get('errorType', 'error')}: {str(body['error'])[:160]})"


def _checked(value: float, direction: Direction) -> float | str:
    """NaN is unknown; an infinity only stands when it is the unhealthy end of the scale."""
    if math.isnan(value):
        return "value is NaN"
    if math.isinf(value) and (value > 0) == (direction is Direction.HIGHER):
        return f"value is {'+' if value > 0 else '-'}Inf"
    return value


# --- the reader ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scraped:
    exposition: Exposition
    at: float


class HealthReader:
    """Reads every signal once per :meth:`read`, concurrently, with one request per URL
    (per query for Prometheus). A failed source becomes an unknown sample, never an
    exception. Keeps each /metrics URL's previous scrape: rates and quantiles need two.

    ``timeout`` bounds each request. ``max_age``, when set, turns samples older than that
    many seconds into unknowns; left None, the controller judges ``Sample.age`` itself.
    """

    def __init__(
        self,
        signals: Sequence[SignalSpec],
        client: httpx.AsyncClient,
        *,
        wall_clock: Callable[[], float] = time.time,
        timeout: float = 5.0,
        max_age: float | None = None,
    ) -> None:
        if not (math.isfinite(timeout) and timeout > 0):
            raise UsageError(f"health timeout must be > 0, got {timeout!r}")
        if max_age is not None and not max_age > 0:
            raise UsageError(f"health max_age must be > 0, got {max_age!r}")
        self._signals = tuple(signals)
        self._client = client
        self._clock = wall_clock
        self._timeout = timeout
        self._max_age = max_age
        self._previous: dict[str, _Scraped] = {}
        self._failed: set[str] = set()
        self._warned: set[SignalSpec] = set()

    async def read(self) -> list[Sample]:
        """One sample per signal, in the order given."""
        queries: dict[tuple[str, str], tuple[list[float], float] | str] = {}
        scrapes: dict[str, _Scraped | str] = {}
        documents: dict[str, tuple[object, float] | str] = {}
        async with anyio.create_task_group() as group:
            for spec in self._signals:
                if spec.source is SourceKind.PROMETHEUS and (spec.url, spec.query) not in queries:
                    queries[spec.url, spec.query] = "not read"
                    group.start_soon(self._into, queries, (spec.url, spec.query), self._query)
                elif spec.source is SourceKind.SCRAPE and spec.url not in scrapes:
                    scrapes[spec.url] = "not read"
                    group.start_soon(self._into, scrapes, spec.url, self._scrape)
                elif spec.source is SourceKind.JSON and spec.url not in documents:
                    documents[spec.url] = "not read"
                    group.start_soon(self._into, documents, spec.url, self._document)
        samples = []
        for spec in self._signals:
            try:
                samples.append(self._sample(spec, queries, scrapes, documents))
            except Exception as exc:  # a health read must not end the run: unknown, and logged
                _log.warning("health signal %r failed unexpectedly", spec.name, exc_info=True)
                error = f"unexpected error: {type(exc).__name__}"
                samples.append(Sample(signal=spec, value=None, observed_at=None, error=error))
        for url, scraped in scrapes.items():  # a rate never spans a failed scrape
            if isinstance(scraped, str):
                self._previous.pop(url, None)
                self._failed.add(url)
            else:
                self._previous[url] = scraped
                self._failed.discard(url)
        if self._max_age is None:
            return samples
        now = self._clock()
        return [_expire(sample, now, self._max_age) for sample in samples]

    def _sample(
        self,
        spec: SignalSpec,
        queries: dict[tuple[str, str], tuple[list[float], float] | str],
        scrapes: dict[str, _Scraped | str],
        documents: dict[str, tuple[object, float] | str],
    ) -> Sample:
        value: float | str
        at: float | None = None
        if spec.source is SourceKind.PROMETHEUS:
            answer = queries[spec.url, spec.query]
            value = answer if isinstance(answer, str) else self._worst(spec, answer[0])
            at = None if isinstance(answer, str) else answer[1]
        elif spec.source is SourceKind.SCRAPE:
            scraped = scrapes[spec.url]
            value = scraped if isinstance(scraped, str) else self.evaluate(spec, scraped)
            at = None if isinstance(scraped, str) else scraped.at
        else:
            document = documents[spec.url]
            if isinstance(document, str):
                value = document
            else:
                value, at = _follow(document[0], _parse_path(spec.query)), document[1]
        if not isinstance(value, str):
            value = _checked(value, spec.direction)
        if isinstance(value, str):
            return Sample(signal=spec, value=None, observed_at=None, error=value)
        return Sample(signal=spec, value=value, observed_at=at)

    def evaluate(self, spec: SignalSpec, scraped: _Scraped) -> float | str:
        before = self._previous.get(spec.url)
        failed = spec.url in self._failed
        return evaluate(
            parse_expression(spec.query),
            scraped.exposition,
            before.exposition if before else None,
            scraped.at - before.at if before else 0.0,
            "previous scrape failed: no rate yet" if failed else "first scrape: no rate yet",
        )

    def _worst(self, spec: SignalSpec, values: list[float]) -> float:
        """Several series are ambiguous; the worst one is the conservative reading."""
        if len(values) > 1 and spec not in self._warned:
            self._warned.add(spec)
            _log.warning(
                "health signal %r: the query returned %d series; using the worst. "
                "Aggregate it (max, sum) to silence this.",
                spec.name,
                len(values),
            )
        known = [v for v in values if not math.isnan(v)] or [math.nan]
        return max(known) if spec.direction is Direction.LOWER else min(known)

    async def _into(
        self, store: dict[_K, _V | str], key: _K, fetch: Callable[[_K], Awaitable[_V | str]]
    ) -> None:
        try:
            store[key] = await fetch(key)
        except Exception as exc:  # a health read must not end the run: unknown, and logged
            _log.warning("health read of %s failed unexpectedly", key, exc_info=True)
            store[key] = f"unexpected error: {type(exc).__name__}"

    async def _query(self, key: tuple[str, str]) -> tuple[list[float], float] | str:
        endpoint, query = key[0].rstrip("/") + "/api/v1/query", key[1]
        answer = await self._prometheus(endpoint, query)
        if isinstance(answer, str) or answer[0] == "scalar":
            return answer if isinstance(answer, str) else ([answer[1][0][1]], answer[1][0][0])
        # On lines of their own, so a trailing "# comment" in the query cannot eat the ")".
        stamps = await self._prometheus(endpoint, f"timestamp(\n{query}\n)")
        if isinstance(stamps, str):
            return f"sample timestamp: {stamps}"
        return [value for _, value in answer[1]], min(stamp for _, stamp in stamps[1])

    async def _prometheus(self, endpoint: str, query: str) -> tuple[str, _Points] | str:
        response = await self._get(endpoint, {"query": query})
        if isinstance(response, str):
            return response
        body = _json(response.content)
        if not response.is_success:
            return f"HTTP {response.status_code}{_prometheus_error(body)}"
        return _prometheus_result(body)

    async def _scrape(self, url: str) -> _Scraped | str:
        response = await self._get(url, accept="text/plain;version=0.0.4")
        if isinstance(response, str) or not response.is_success:
            return response if isinstance(response, str) else f"HTTP {response.status_code}"
        at = self._clock()
        try:
            return _Scraped(parse_exposition(response.text), at)
        except ValueError as exc:
            return str(exc)

    async def _document(self, url: str) -> tuple[object, float] | str:
        response = await self._get(url, accept="application/json")
        if isinstance(response, str) or not response.is_success:
            return response if isinstance(response, str) else f"HTTP {response.status_code}"
        at, document = self._clock(), _json(response.content)
        return "body is not JSON" if document is _NOT_JSON else (document, at)

    async def _get(
        self, url: str, params: dict[str, str] | None = None, *, accept: str | None = None
    ) -> httpx.Response | str:
        headers = {"Accept": accept} if accept else None
        try:
            with anyio.fail_after(self._timeout):
                return await self._client.get(
                    url, params=params, headers=headers, timeout=self._timeout
                )
        except (TimeoutError, httpx.TimeoutException):
            return "timeout"
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            text = f"{type(exc).__name__}: {exc}".rstrip(": ")
            return scrub(text, url_secrets(url), limit=200)


_NOT_JSON: Final = object()


def _json(content: bytes) -> object:
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _expire(sample: Sample, now: float, max_age: float) -> Sample:
    age = sample.age(now)
    if sample.value is None or age is None or age <= max_age:
        return sample
    return replace(sample, value=None, error=f"stale: {age:.0f} s old (max {max_age:g} s)")
