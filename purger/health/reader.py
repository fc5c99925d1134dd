"""Backend health: read the origin's signals (a Prometheus server, a ``/metrics`` page, a
JSON status document) into :class:`~purger.health.signals.Sample` values that the
controller turns into a rate. A failed source becomes an unknown sample, never an exception.
Prometheus stamps an instant query's result with the evaluation time, not the sample's, so
a second query, ``timestamp(QUERY)``, dates the samples and a dead exporter shows up as old.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import anyio
import httpx

from purger.errors import UsageError
from purger.health.answers import (
    NOT_JSON,
    Points,
    follow_json,
    load_json,
    parse_json_path,
    prometheus_error,
    prometheus_result,
)
from purger.health.exposition import Exposition, evaluate, parse_exposition, parse_expression
from purger.health.signals import Direction, Sample, SignalSpec, SourceKind
from purger.model import scrub, url_secrets

__all__ = ["HealthReader"]

_log = logging.getLogger(__name__)
_K = TypeVar("_K")
_V = TypeVar("_V")


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
                value, at = follow_json(document[0], parse_json_path(spec.query)), document[1]
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

    async def _prometheus(self, endpoint: str, query: str) -> tuple[str, Points] | str:
        response = await self._get(endpoint, {"query": query})
        if isinstance(response, str):
            return response
        body = load_json(response.content)
        if not response.is_success:
            return f"HTTP {response.status_code}{prometheus_error(body)}"
        return prometheus_result(body)

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
        at, document = self._clock(), load_json(response.content)
        return "body is not JSON" if document is NOT_JSON else (document, at)

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


def _checked(value: float, direction: Direction) -> float | str:
    """NaN is unknown; an infinity only stands when it is the unhealthy end of the scale."""
    if math.isnan(value):
        return "value is NaN"
    if math.isinf(value) and (value > 0) == (direction is Direction.HIGHER):
        return f"value is {'+' if value > 0 else '-'}Inf"
    return value


def _expire(sample: Sample, now: float, max_age: float) -> Sample:
    age = sample.age(now)
    if sample.value is None or age is None or age <= max_age:
        return sample
    return replace(sample, value=None, error=f"stale: {age:.0f} s old (max {max_age:g} s)")
