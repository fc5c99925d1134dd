"""Health reading: Prometheus, /metrics scrapes and JSON documents become samples; every
failure is an unknown sample with a reason, never an exception and never healthy."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import AsyncIterator, Mapping

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from purger.errors import UsageError
from purger.health.reader import HealthReader
from purger.health.signals import (
    Direction,
    Sample,
    SignalKind,
    SignalSpec,
    SourceKind,
    format_signal,
    parse_signal,
)

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000.0
PROM = "http://prom.test:9090"
METRICS = "http://origin.test:8000/metrics"
STATUS = "http://origin.test:8000/status"
URLS = {SourceKind.PROMETHEUS: PROM, SourceKind.SCRAPE: METRICS, SourceKind.JSON: STATUS}


@pytest.fixture
async def client(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def spec(source: SourceKind, query: str, **fields: object) -> SignalSpec:
    fields.setdefault("name", "s")
    fields.setdefault("url", URLS[source])
    fields.setdefault("limit", 1.0)
    return SignalSpec(source=source, query=query, **fields)  # type: ignore[arg-type]


async def read_one(client: httpx.AsyncClient, signal: SignalSpec, **options: object) -> Sample:
    [sample] = await HealthReader([signal], client, **options).read()  # type: ignore[arg-type]
    return sample


def assert_unknown(sample: Sample, reason: str) -> None:
    assert sample.value is None
    assert sample.pressure is None
    assert sample.error is not None
    assert reason in sample.error


# --- Prometheus --------------------------------------------------------------------------


def vector(*values: str, at: float = NOW) -> dict[str, object]:
    result = [{"metric": {"i": str(i)}, "value": [at, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def fake_prometheus(httpx_mock, answers: Mapping[str, object], base: str = PROM) -> list[str]:
    """Answers each query from ``answers``; ``timestamp(Q)`` is looked up under that key."""
    asked: list[str] = []

    def respond(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        asked.append(query)
        if query.startswith("timestamp("):
            query = f"timestamp({query.removeprefix('timestamp(').removesuffix(')').strip()})"
        answer = answers[query]
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    pattern = re.compile(re.escape(base.rstrip("/")) + r"/api/v1/query\?.*")
    httpx_mock.add_callback(respond, url=pattern, is_reusable=True)
    return asked


async def test_prometheus_vector_is_dated_by_the_samples_own_timestamp(client, httpx_mock):
    """The value comes from the query; observed_at from timestamp(query), not eval time."""
    base = "http://prom.test:9090/prom/"
    asked = fake_prometheus(
        httpx_mock, {"p99": vector("0.2"), "timestamp(p99)": vector(str(NOW - 7))}, base
    )
    sample = await read_one(client, spec(SourceKind.PROMETHEUS, "p99", url=base, limit=0.25))
    assert (sample.value, sample.observed_at, sample.error) == (0.2, NOW - 7, None)
    assert sample.pressure == pytest.approx(0.8)
    assert asked[0] == "p99"
    assert asked[1].startswith("timestamp(")


async def test_prometheus_scalar_needs_no_timestamp_query(client, httpx_mock):
    """A scalar result carries its own time; no second query is sent."""
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [NOW - 1, "3"]}}
    asked = fake_prometheus(httpx_mock, {"scalar(x)": scalar})
    sample = await read_one(client, spec(SourceKind.PROMETHEUS, "scalar(x)"))
    assert (sample.value, sample.observed_at) == (3.0, NOW - 1)
    assert asked == ["scalar(x)"]


@pytest.mark.parametrize(
    ("status", "reason"),
    [(200, "Prometheus status 'error' (bad_data: parse error"), (400, "HTTP 400 (bad_data")],
)
async def test_prometheus_error_status_is_unknown(client, httpx_mock, status, reason):
    """status "error" (as 200 or 4xx) is unknown, with Prometheus's own error text."""
    body = {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}
    fake_prometheus(httpx_mock, {"up(": httpx.Response(status, json=body)})
    assert_unknown(await read_one(client, spec(SourceKind.PROMETHEUS, "up(")), reason)


async def test_prometheus_empty_result_is_unknown(client, httpx_mock):
    """No series (a typo, or a dead exporter past the lookback) is unknown."""
    fake_prometheus(httpx_mock, {"up": vector()})
    assert_unknown(await read_one(client, spec(SourceKind.PROMETHEUS, "up")), "no series")


async def test_prometheus_http_500_is_unknown(client, httpx_mock):
    """A 500 from Prometheus is unknown, reported as the status."""
    httpx_mock.add_response(status_code=500, text="oops")
    sample = await read_one(client, spec(SourceKind.PROMETHEUS, "up"))
    assert_unknown(sample, "HTTP 500")
    assert sample.observed_at is None


async def test_prometheus_timeout_is_unknown(client, httpx_mock):
    """A read timeout is unknown with the reason "timeout"."""
    httpx_mock.add_exception(httpx.ReadTimeout("slow"))
    sample = await read_one(client, spec(SourceKind.PROMETHEUS, "up"))
    assert_unknown(sample, "timeout")
    assert sample.error == "timeout"


async def test_a_hung_server_is_cut_off_at_the_timeout(client, httpx_mock):
    """The reader's own deadline ends a request the transport would let hang."""

    async def hang(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(30)
        return httpx.Response(200)

    httpx_mock.add_callback(hang)
    with anyio.fail_after(5):
        sample = await read_one(client, spec(SourceKind.JSON, "a"), timeout=0.05)
    assert sample.error == "timeout"


async def test_prometheus_timestamp_failure_is_unknown(client, httpx_mock):
    """Without the sample's timestamp the value cannot be trusted: unknown."""
    fake_prometheus(httpx_mock, {"up": vector("1"), "timestamp(up)": httpx.Response(503)})
    sample = await read_one(client, spec(SourceKind.PROMETHEUS, "up"))
    assert_unknown(sample, "sample timestamp: HTTP 503")


@pytest.mark.parametrize(("direction", "worst"), [(Direction.LOWER, 0.4), (Direction.HIGHER, 0.1)])
async def test_prometheus_several_series_take_the_worst_and_oldest(
    client, httpx_mock, caplog, direction, worst
):
    """Several series: the worst value, the oldest timestamp, and one warning per signal."""
    times = (str(NOW - 5), str(NOW - 50), str(NOW - 1))
    fake_prometheus(httpx_mock, {"q": vector("0.1", "0.4", "NaN"), "timestamp(q)": vector(*times)})
    reader = HealthReader([spec(SourceKind.PROMETHEUS, "q", direction=direction)], client)
    with caplog.at_level(logging.WARNING, logger="purger.health.reader"):
        [first] = await reader.read()
        await reader.read()
    assert (first.value, first.observed_at) == (worst, NOW - 50)
    assert [r.getMessage() for r in caplog.records if "3 series" in r.getMessage()] != []
    assert len(caplog.records) == 1


async def test_prometheus_stale_timestamp_is_passed_through(client, httpx_mock):
    """An old sample keeps its old observed_at, so its age shows; max_age makes it unknown."""
    answers = {"up": vector("0.1"), "timestamp(up)": vector(str(NOW - 300))}
    fake_prometheus(httpx_mock, answers)
    signal = spec(SourceKind.PROMETHEUS, "up")
    sample = await read_one(client, signal, wall_clock=Clock())
    assert (sample.value, sample.observed_at, sample.age(NOW)) == (0.1, NOW - 300, 300.0)
    stale = await read_one(client, signal, wall_clock=Clock(), max_age=60.0)
    assert_unknown(stale, "stale: 300 s old (max 60 s)")
    assert stale.observed_at == NOW - 300


@pytest.mark.parametrize(
    ("raw", "direction", "value", "reason"),
    [
        ("NaN", Direction.LOWER, None, "NaN"),
        ("+Inf", Direction.LOWER, math.inf, None),  # p99 past the top bucket: as bad as it gets
        ("+Inf", Direction.HIGHER, None, "+Inf"),  # infinite headroom would read as healthy
        ("-Inf", Direction.LOWER, None, "-Inf"),
    ],
)
async def test_prometheus_nan_and_infinities(client, httpx_mock, raw, direction, value, reason):
    """NaN is unknown; an infinity stands only at the unhealthy end of the signal's scale."""
    fake_prometheus(httpx_mock, {"q": vector(raw), "timestamp(q)": vector(str(NOW))})
    sample = await read_one(client, spec(SourceKind.PROMETHEUS, "q", direction=direction))
    if reason is None:
        assert sample.value == value
        assert sample.pressure == math.inf
    else:
        assert_unknown(sample, reason)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"status": "success", "data": {"resultType": "matrix", "result": []}}, "matrix"),
        ({"status": "success"}, "malformed result"),
        (vector("abc"), "malformed sample"),
        ({"status": "success", "data": {"resultType": "vector", "result": [{}]}}, "malformed"),
        ([1, 2], "not a Prometheus API answer"),
    ],
)
async def test_prometheus_unexpected_bodies_are_unknown(client, httpx_mock, body, reason):
    """A body that is not an instant vector or scalar is unknown, with what was wrong."""
    fake_prometheus(httpx_mock, {"q": body})
    assert_unknown(await read_one(client, spec(SourceKind.PROMETHEUS, "q")), reason)


# --- scrape: the text exposition format --------------------------------------------------

HEADER = """\
# HELP origin_requests_total Requests served.
# TYPE origin_requests_total counter
# TYPE origin_in_flight_requests gauge
"""


def scrape_reader(client, clock: Clock, *queries: str, **fields: object) -> HealthReader:
    signals = [spec(SourceKind.SCRAPE, q, name=f"s{i}", **fields) for i, q in enumerate(queries)]
    return HealthReader(signals, client, wall_clock=clock)


def serve(httpx_mock, *bodies: str) -> None:
    for body in bodies:
        httpx_mock.add_response(url=METRICS, text=body)


async def test_scrape_gauge_sums_the_matching_series(client, httpx_mock):
    """A plain selector is a gauge read now: the sum of the series its labels match."""
    body = HEADER + (
        'origin_in_flight_requests{worker="a"} 3\n'
        'origin_in_flight_requests{worker="b",zone="x"} 4 1700000000000\n'
        "other_metric +Inf\n"
        "yet_another NaN\n"
    )
    serve(httpx_mock, body)
    reader = scrape_reader(
        client, Clock(), "origin_in_flight_requests", 'origin_in_flight_requests{worker="a"}'
    )
    both, one = await reader.read()
    assert (both.value, one.value) == (7.0, 3.0)
    assert both.observed_at == NOW


async def test_scrape_escaped_label_values_are_read(client, httpx_mock):
    """Escaped quotes, backslashes and newlines in label values match as written."""
    serve(httpx_mock, 'hits{path="a\\"b\\\\c\\nd",x="y"} 5\nhits{path="plain"} 1\n')
    reader = scrape_reader(client, Clock(), 'hits{path="a\\"b\\\\c\\nd"}', "hits{path!='plain'}")
    assert [s.value for s in await reader.read()] == [5.0, 5.0]


async def test_scrape_counter_rate_across_two_reads(client, httpx_mock):
    """rate() is the increase over the seconds between this scrape and the previous one."""
    serve(
        httpx_mock,
        HEADER + 'origin_requests_total{code="200"} 100\n',
        HEADER + 'origin_requests_total{code="200"} 400\n',
    )
    clock = Clock()
    reader = scrape_reader(client, clock, "rate(origin_requests_total)")
    [first] = await reader.read()
    assert_unknown(first, "first scrape: no rate yet")
    clock.now += 15
    [second] = await reader.read()
    assert second.value == pytest.approx(300 / 15)
    assert second.observed_at == NOW + 15


async def test_scrape_counter_reset_counts_the_new_value(client, httpx_mock):
    """A counter that went down restarted from 0: its new value is the increase."""
    serve(httpx_mock, "c_total 1000\n", "c_total 30\n")
    clock = Clock()
    reader = scrape_reader(client, clock, "rate(c_total)")
    await reader.read()
    clock.now += 10
    assert [s.value for s in await reader.read()] == [pytest.approx(3.0)]


def histogram(json_counts: tuple[int, ...], simple_counts: tuple[int, ...]) -> str:
    bounds = ("0.1", "0.25", "0.5", "+Inf")
    lines = ["# TYPE origin_request_duration_seconds histogram"]
    for endpoint, counts in (("json", json_counts), ("simple", simple_counts)):
        for le, count in zip(bounds, counts, strict=True):
            lines.append(
                f'origin_request_duration_seconds_bucket{{endpoint="{endpoint}",le="{le}"}} {count}'
            )
    return "\n".join(lines) + "\n"


# Increases between the two scrapes, summed over endpoint: le 0.1: 100, 0.25: 190,
# 0.5: 200, +Inf: 200. p99: rank 198 falls in (0.25, 0.5], 8 of its 10 observations in:
# 0.25 + 0.25 * 8/10 = 0.45. p25: rank 50 in (0, 0.1]: 0.1 * 50/100 = 0.05.
# p95: rank 190 is the top of (0.1, 0.25]: 0.25.
BEFORE = histogram((5, 10, 10, 10), (1, 2, 3, 3))
AFTER = histogram((65, 120, 125, 125), (41, 82, 88, 88))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("histogram_quantile(0.99, origin_request_duration_seconds)", 0.45),
        ("histogram_quantile(0.99, origin_request_duration_seconds_bucket)", 0.45),
        ("histogram_quantile(0.25, origin_request_duration_seconds)", 0.05),
        ("histogram_quantile(0.95, origin_request_duration_seconds_bucket{})", 0.25),
    ],
)
async def test_scrape_histogram_quantile_across_two_reads(client, httpx_mock, query, expected):
    """Bucket increases between scrapes, summed over labels, interpolated as Prometheus does."""
    serve(httpx_mock, BEFORE, AFTER)
    clock = Clock()
    reader = scrape_reader(client, clock, query)
    [first] = await reader.read()
    assert_unknown(first, "first scrape: no rate yet")
    clock.now += 30
    [second] = await reader.read()
    assert second.value == pytest.approx(expected)


async def test_scrape_histogram_quantile_uses_only_matching_series(client, httpx_mock):
    """Label matchers pick the histogram's series before the buckets are summed."""
    serve(httpx_mock, BEFORE, AFTER)
    clock = Clock()
    q = 'histogram_quantile(0.5, origin_request_duration_seconds{endpoint="simple"})'
    reader = scrape_reader(client, clock, q)
    await reader.read()
    clock.now += 30
    # simple's increases: 40, 80, 85, 85; rank 42.5 lies in (0.1, 0.25]: 0.1 + 0.15 * 2.5/40.
    assert [s.value for s in await reader.read()] == [pytest.approx(0.1 + 0.15 * 2.5 / 40)]


async def test_scrape_histogram_without_observations_is_unknown(client, httpx_mock):
    """No observations in the interval: there is no quantile, so it is unknown."""
    serve(httpx_mock, BEFORE, BEFORE)
    clock = Clock()
    reader = scrape_reader(
        client, clock, "histogram_quantile(0.99, origin_request_duration_seconds)"
    )
    await reader.read()
    clock.now += 30
    [sample] = await reader.read()
    assert_unknown(sample, "no observations in the interval")


async def test_scrape_ratio_of_error_counters(client, httpx_mock):
    """ratio(rate(errors), rate(total)): 5xx increase over all requests' increase."""
    serve(
        httpx_mock,
        HEADER + 'origin_requests_total{code="200"} 1000\norigin_requests_total{code="503"} 10\n',
        HEADER + 'origin_requests_total{code="200"} 1090\norigin_requests_total{code="503"} 20\n',
    )
    clock = Clock()
    errors = 'rate(origin_requests_total{code=~"5.."})'
    reader = scrape_reader(
        client, clock, f"ratio({errors}, rate(origin_requests_total))", kind=SignalKind.ERRORS
    )
    await reader.read()
    clock.now += 10
    assert [s.value for s in await reader.read()] == [pytest.approx(10 / 100)]


async def test_scrape_no_error_series_yet_means_no_errors(client, httpx_mock):
    """A counter family with no 5xx series has counted no errors: ratio 0, not unknown."""
    serve(
        httpx_mock,
        HEADER + 'origin_requests_total{code="200"} 5\n',
        HEADER + 'origin_requests_total{code="200"} 9\n',
    )
    clock = Clock()
    query = 'ratio(rate(origin_requests_total{code=~"5.."}), rate(origin_requests_total))'
    reader = scrape_reader(client, clock, query)
    await reader.read()
    clock.now += 10
    assert [s.value for s in await reader.read()] == [0.0]


async def test_scrape_ratio_with_no_requests_is_unknown(client, httpx_mock):
    """0 errors out of 0 requests is no ratio at all: unknown."""
    serve(httpx_mock, "t_total 5\ne_total 1\n", "t_total 5\ne_total 1\n")
    clock = Clock()
    reader = scrape_reader(client, clock, "ratio(rate(e_total), rate(t_total))")
    await reader.read()
    clock.now += 10
    assert_unknown((await reader.read())[0], "denominator is 0")


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ('origin_in_flight_requests{worker="z"}', "no series matches"),
        ("rate(missing_total)", "no metric missing_total"),
    ],
)
async def test_scrape_missing_metrics_are_unknown(client, httpx_mock, query, reason):
    """A gauge with no matching series, or a counter absent from the page, is unknown."""
    serve(httpx_mock, "origin_in_flight_requests 1\n", "origin_in_flight_requests 1\n")
    clock = Clock()
    reader = scrape_reader(client, clock, query)
    await reader.read()
    clock.now += 10
    assert_unknown((await reader.read())[0], reason)


@pytest.mark.parametrize(
    "line",
    [
        'bad{a="b} 1',
        "bad 1 2 3",
        "bad one",
        'bad{a="b",a="c"} 1',
        'bad{a="\\q"} 1',
        '{a="b"} 1',
        "bad 1.5.5",
        "bad 1 1.5",
        "gauge 2",  # the same series twice
        "bad{a=b} 1",
    ],
)
async def test_scrape_malformed_exposition_is_unknown(client, httpx_mock, line):
    """A malformed line makes the whole page unknown, naming the line; the next rate waits."""
    serve(httpx_mock, f"gauge 1\n{line}\n", "c_total 1\n", "c_total 2\n")
    clock = Clock()
    reader = scrape_reader(client, clock, "rate(c_total)")
    [bad] = await reader.read()
    assert_unknown(bad, "bad exposition line 2")
    clock.now += 10
    assert_unknown((await reader.read())[0], "previous scrape failed: no rate yet")
    clock.now += 10
    assert [s.value for s in await reader.read()] == [pytest.approx(0.1)]


async def test_a_rate_never_spans_a_failed_scrape(client, httpx_mock):
    """After a failed scrape the next read has no rate; the one after is a fresh rate."""
    httpx_mock.add_response(url=METRICS, text="c_total 1\n")
    httpx_mock.add_response(url=METRICS, status_code=503)
    serve(httpx_mock, "c_total 500\n", "c_total 502\n")
    clock = Clock()
    reader = scrape_reader(client, clock, "rate(c_total)")
    reasons = []
    for _ in range(3):
        reasons.append((await reader.read())[0].error)
        clock.now += 10
    assert reasons == [
        "first scrape: no rate yet",
        "HTTP 503",
        "previous scrape failed: no rate yet",
    ]
    assert [s.value for s in await reader.read()] == [pytest.approx(0.2)]


async def test_scrape_http_error_is_unknown_for_every_signal_of_the_page(client, httpx_mock):
    """A 503 from /metrics makes each signal read from it unknown."""
    httpx_mock.add_response(url=METRICS, status_code=503)
    reader = scrape_reader(client, Clock(), "a", "rate(b_total)")
    for sample in await reader.read():
        assert_unknown(sample, "HTTP 503")


async def test_scrape_one_request_per_url_per_read(client, httpx_mock):
    """Two signals on one /metrics URL share one request, asking for text format 0.0.4."""
    httpx_mock.add_response(
        url=METRICS,
        match_headers={"Accept": "text/plain;version=0.0.4"},
        text="a 1\nb 2\n",
    )
    reader = scrape_reader(client, Clock(), "a", "b")
    assert [s.value for s in await reader.read()] == [1.0, 2.0]
    assert len(httpx_mock.get_requests()) == 1


# --- JSON documents ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "path", "expected"),
    [
        ({"data": {"p99": 0.2}}, "data.p99", 0.2),
        ({"items": [{"value": 1}, {"value": 7}]}, "items.1.value", 7.0),
        ({"items": [1, 2, 3]}, "items.-1", 3.0),
        ({"big": 10**400}, "big", math.inf),
        ({"data": {}}, "data.p99", "no key 'p99' at data"),
        ({"items": [1]}, "items.3", "index 3 is out of range at items (1 items)"),
        ({"items": [1]}, "items.first", "items is a list; cannot take 'first'"),
        ({"data": {"p99": "0.2"}}, "data.p99", "not a number: data.p99 is a string"),
        ({"data": {"p99": True}}, "data.p99", "not a number: data.p99 is a boolean"),
        ({"data": {"p99": None}}, "data.p99", "not a number: data.p99 is null"),
        ({"data": {"p99": {}}}, "data.p99", "not a number: data.p99 is an object"),
        ([5], "x", "the top level is a list; cannot take 'x'"),
    ],
)
async def test_json_path(client, httpx_mock, document, path, expected):
    """Dotted paths walk keys and list indexes; the end must be a number (not a bool)."""
    httpx_mock.add_response(url=STATUS, content=json.dumps(document).encode())
    sample = await read_one(client, spec(SourceKind.JSON, path), wall_clock=Clock())
    if isinstance(expected, str):
        assert_unknown(sample, expected)
        assert sample.error == expected
    else:
        assert (sample.value, sample.observed_at) == (expected, NOW)


async def test_json_body_that_is_not_json_is_unknown(client, httpx_mock):
    """An HTML error page with status 200 is unknown, not a crash."""
    httpx_mock.add_response(url=STATUS, text="<html>proxy error</html>")
    assert_unknown(await read_one(client, spec(SourceKind.JSON, "a")), "body is not JSON")


async def test_json_one_request_per_url_per_read(client, httpx_mock):
    """Two paths into one document share one request."""
    httpx_mock.add_response(url=STATUS, json={"a": 1, "b": [2]})
    reader = HealthReader([spec(SourceKind.JSON, "a"), spec(SourceKind.JSON, "b.0")], client)
    assert [s.value for s in await reader.read()] == [1.0, 2.0]
    assert len(httpx_mock.get_requests()) == 1


# --- the reader as a whole -----------------------------------------------------------------


async def test_sources_are_read_concurrently_and_samples_keep_signal_order(client, httpx_mock):
    """The JSON read finishes while the Prometheus read waits on it; order is as given."""
    json_seen = anyio.Event()

    async def slow_prometheus(request: httpx.Request) -> httpx.Response:
        await json_seen.wait()  # would never return if the reads were sequential
        if request.url.params["query"].startswith("timestamp("):
            return httpx.Response(200, json=vector(str(NOW)))
        return httpx.Response(200, json=vector("0.5"))

    def status(request: httpx.Request) -> httpx.Response:
        json_seen.set()
        return httpx.Response(200, json={"free": 4})

    httpx_mock.add_callback(
        slow_prometheus, url=re.compile(re.escape(PROM) + ".*"), is_reusable=True
    )
    httpx_mock.add_callback(status, url=STATUS)
    signals = [
        spec(SourceKind.PROMETHEUS, "q", name="p"),
        spec(SourceKind.JSON, "free", name="j", direction=Direction.HIGHER),
    ]
    with anyio.fail_after(5):
        samples = await HealthReader(signals, client, timeout=2).read()
    assert [(s.signal.name, s.value) for s in samples] == [("p", 0.5), ("j", 4.0)]


async def test_an_unexpected_exception_becomes_unknown(client, httpx_mock):
    """Even a failure nobody planned for is an unknown sample, not a crashed run."""

    def explode(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("bug")

    httpx_mock.add_callback(explode)
    sample = await read_one(client, spec(SourceKind.JSON, "a"))
    assert_unknown(sample, "unexpected error: RuntimeError")


async def test_connection_errors_keep_the_reason_but_not_the_password(client, httpx_mock):
    """A connection failure names the error and never echoes a password from the URL."""
    httpx_mock.add_exception(httpx.ConnectError("refused by hunter2"))
    url = "http://user:hunter2@origin.test:8000/status"
    sample = await read_one(client, spec(SourceKind.JSON, "a", url=url))
    assert sample.error == "ConnectError: refused by ***"


@pytest.mark.parametrize(
    ("options", "reason"), [({"timeout": 0}, "timeout"), ({"max_age": 0}, "max_age")]
)
async def test_reader_options_are_checked(client, options, reason):
    """A zero timeout or max_age is a usage error."""
    with pytest.raises(UsageError, match=reason):
        HealthReader([], client, **options)


# --- pressure and age ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "limit", "value", "pressure"),
    [
        (Direction.LOWER, 0.25, 0.5, 2.0),
        (Direction.LOWER, 0.25, 0.0, 0.0),
        (Direction.HIGHER, 10.0, 20.0, 0.5),
        (Direction.HIGHER, 10.0, 5.0, 2.0),
        (Direction.HIGHER, 10.0, 0.0, math.inf),
        (Direction.HIGHER, 10.0, -1.0, math.inf),
        (Direction.LOWER, 1.0, None, None),
        (Direction.LOWER, 1.0, math.nan, None),
    ],
)
def test_pressure(direction, limit, value, pressure):
    """value/limit when lower is better, limit/value when higher is; None when unknown."""
    signal = spec(SourceKind.JSON, "a", limit=limit, direction=direction)
    sample = Sample(signal=signal, value=value, observed_at=None, error=None)
    assert sample.pressure == pressure


def test_age_counts_from_the_data_point():
    """age is now minus observed_at; an unknown sample has no age."""
    signal = spec(SourceKind.JSON, "a")
    assert Sample(signal=signal, value=1, observed_at=NOW - 9).age(NOW) == 9
    assert Sample(signal=signal, value=None, observed_at=None, error="x").age(NOW) is None


# --- SignalSpec and its text form ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"limit": 0}, "signal 's': limit must be > 0"),
        ({"limit": math.nan}, "signal 's': limit must be > 0"),
        ({"limit": 0.25, "critical": 0.2}, "critical must be above limit (0.25)"),
        ({"limit": 0.25, "critical": 0.25}, "critical must be above limit"),
        ({"direction": "higher", "limit": 5, "critical": 6}, "critical must be > 0 and below"),
        ({"direction": "higher", "limit": 5, "critical": 0}, "critical must be > 0 and below"),
        ({"name": " "}, "signal: name must not be empty"),
        ({"url": "ftp://origin.test/x"}, "signal 's': url must be http(s)://host"),
        ({"url": "origin.test:8000"}, "url must be http(s)://host"),
        ({"query": " "}, "signal 's': query must not be empty"),
        ({"query": "rate(x"}, "signal 's': query: unexpected '(x'"),
        ({"query": "rate(x[1m])"}, "drop the range"),
        ({"query": "histogram_quantile(2, x)"}, "quantile in (0, 1]"),
        ({"query": "ratio(a)"}, "ratio() takes two"),
        ({"query": 'a{b=~"("}'}, "bad regular expression"),
        ({"query": "a{b=c}"}, "expected a quoted label value"),
        ({"source": "json", "query": "a..b"}, "path 'a..b' has an empty step"),
        ({"direction": "up"}, "direction must be one of lower, higher, got 'up'"),
    ],
)
def test_signal_spec_is_checked(fields, message):
    """Each bad field is a UsageError naming the signal and the field."""
    base = {"name": "s", "source": "scrape", "url": METRICS, "query": "a", "limit": 1.0}
    with pytest.raises(UsageError, match=re.escape(message)):
        SignalSpec(**(base | fields))


def test_a_bad_url_is_reported_without_its_password():
    """The url error shows the URL without user name or password."""
    with pytest.raises(UsageError, match="url must be http") as caught:
        spec(SourceKind.JSON, "a", url="http://user:secret@/x")
    assert "secret" not in str(caught.value)
    assert "user" not in str(caught.value)


def test_signal_spec_turns_strings_into_enums():
    """Strings from a TOML file become the enums, so identity checks work."""
    signal = SignalSpec(name="s", source="json", url=STATUS, query="a", limit=1, kind="errors")  # type: ignore[arg-type]
    assert signal.source is SourceKind.JSON
    assert signal.kind is SignalKind.ERRORS


EXAMPLE = (
    "name=origin p99, source=prometheus, url=http://127.0.0.1:9090, limit=0.25, critical=1.0,"
    " kind=latency, query=histogram_quantile(0.99, sum(rate("
    "origin_request_duration_seconds_bucket[30s])) by (le))"
)


def test_parse_signal_reads_the_documented_example():
    """key=value items with query last: the query keeps its commas."""
    assert parse_signal(EXAMPLE) == SignalSpec(
        name="origin p99",
        source=SourceKind.PROMETHEUS,
        url="http://127.0.0.1:9090",
        query="histogram_quantile(0.99, sum(rate("
        "origin_request_duration_seconds_bucket[30s])) by (le))",
        limit=0.25,
        critical=1.0,
        kind=SignalKind.LATENCY,
    )


@pytest.mark.parametrize(
    "text",
    [
        EXAMPLE,
        "name=headroom,source=json,url=http://o/s?a=1%2C2,limit=5,critical=1,direction=higher,"
        "query=free",
        "name=errors,source=scrape,url=http://o/metrics,limit=0.01,kind=errors,"
        'query=ratio(rate(origin_requests_total{code=~"5..",endpoint="json"}),'
        " rate(origin_requests_total))",
        'name=a=b,source=prometheus,url=https://p,limit=2,query=up{job="x",limit="y"}',
        'name=b,source=scrape,url=https://p,limit=2,query=up{job="x", url = "y",kind=~"z"}',
    ],
)
def test_parse_signal_round_trips(text):
    """format_signal writes what parse_signal reads back to the same spec."""
    parsed = parse_signal(text)
    assert parse_signal(format_signal(parsed)) == parsed


names = st.text(st.characters(codec="ascii", exclude_characters=","), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    name=names.filter(lambda n: n == n.strip() and n.strip()),
    source=st.sampled_from(SourceKind),
    limit=st.floats(1e-6, 1e6),
    factor=st.one_of(st.none(), st.floats(1.01, 100)),
    direction=st.sampled_from(Direction),
    kind=st.sampled_from(SignalKind),
)
def test_format_then_parse_is_identity(name, source, limit, factor, direction, kind):
    """Any spec whose name has no comma survives format_signal then parse_signal."""
    critical = None
    if factor is not None:
        critical = limit * factor if direction is Direction.LOWER else limit / factor
    query = {SourceKind.JSON: "a.0.b"}.get(source, 'rate(x{a="1,2"})')
    signal = SignalSpec(
        name=name,
        source=source,
        url="http://o:1/m",
        query=query,
        limit=limit,
        critical=critical,
        direction=direction,
        kind=kind,
    )
    assert parse_signal(format_signal(signal)) == signal


GOOD = "name=a,source=prometheus,url=http://p:9090,limit=1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "missing query= (it must be the last item)"),
        (GOOD, "missing query="),
        (
            f"{GOOD.replace(',limit=1', '')},query=up,limit=1",
            "query= must be the last item, but limit= follows",
        ),
        (f"{GOOD},colour=red,query=up", "unknown key 'colour'"),
        (f"{GOOD},name=b,query=up", "name= is given twice"),
        (f"{GOOD},,query=up", "an empty item (two commas?) is not key=value"),
        (f"{GOOD},hard,query=up", "'hard' is not key=value"),
        ("name=,source=prometheus,url=http://p,limit=1,query=up", "name= is empty"),
        ("source=prometheus,url=http://p,query=up", "missing name=, limit="),
        (
            GOOD.replace("prometheus", "prom") + ",query=up",
            "source must be one of prometheus, scrape, json, got 'prom'",
        ),
        (
            GOOD.replace("limit=1", "limit=fast") + ",query=up",
            "signal 'a': limit must be a number, got 'fast'",
        ),
        (f"{GOOD},critical=inf,query=up", "critical must be a number"),
        (f"{GOOD},direction=up,query=up", "direction must be one of lower, higher"),
        (f"{GOOD},kind=cpu,query=up", "kind must be one of latency, errors, saturation, other"),
        (f"{GOOD},query=", "signal 'a': query must not be empty"),
        (f"{GOOD},critical=0.5,query=up", "critical must be above limit"),
        (GOOD.replace("prometheus", "scrape") + ",query=rate(x[30s])", "drop the range"),
        (GOOD.replace("http://p:9090", "p:9090") + ",query=up", "url must be http(s)"),
    ],
)
def test_parse_signal_rejects_malformed_text(text, message):
    """Every malformed signal is a UsageError that says what is wrong."""
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_signal(text)


def test_format_signal_refuses_what_it_cannot_write():
    """A comma in the name cannot be written in the text form: a UsageError, not bad text."""
    with pytest.raises(UsageError, match="comma"):
        format_signal(spec(SourceKind.JSON, "a", name="a,b"))


# --- properties ----------------------------------------------------------------------------


def run_reads(signals, handler, clock: Clock, steps: list[float]) -> list[list[Sample]]:
    """Read once per step, moving the clock by each step first, over a mock transport."""

    async def main() -> list[list[Sample]]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            reader = HealthReader(signals, client, wall_clock=clock, timeout=1)
            out = []
            for step in steps:
                clock.now += step
                out.append(await reader.read())
            return out

    return anyio.run(main)


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, 10**12),
    steps=st.lists(st.tuples(st.integers(0, 10**6), st.floats(0.5, 600)), min_size=1, max_size=6),
)
def test_rate_of_a_non_decreasing_counter_is_delta_over_interval(start, steps):
    """For any non-decreasing counter, each rate() is the increase over the interval."""
    values = [start]
    for increase, _ in steps:
        values.append(values[-1] + increase)
    bodies = iter(f"c_total {v}\n" for v in values)
    clock = Clock()
    reads = run_reads(
        [spec(SourceKind.SCRAPE, "rate(c_total)")],
        lambda request: httpx.Response(200, text=next(bodies)),
        clock,
        [0.0] + [interval for _, interval in steps],
    )
    assert reads[0][0].error == "first scrape: no rate yet"
    for (increase, interval), [sample] in zip(steps, reads[1:], strict=True):
        assert sample.value == pytest.approx(increase / interval, rel=1e-6, abs=1e-9)


TRANSPORT_ERRORS = [
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.PoolTimeout,
    httpx.RemoteProtocolError,
    httpx.DecodingError,
    httpx.TooManyRedirects,
    httpx.UnsupportedProtocol,
]
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
failures = st.one_of(
    st.integers(400, 599).map(lambda status: ("status", status)),
    st.sampled_from(TRANSPORT_ERRORS).map(lambda error: ("raise", error)),
    st.binary(max_size=64).map(lambda body: ("body", body)),
    json_values.map(lambda value: ("body", json.dumps(value).encode())),
)


@settings(max_examples=80, deadline=None)
@given(failure=failures)
def test_any_injected_failure_is_unknown_and_never_raises(failure):
    """4xx/5xx, transport errors and garbage bodies are unknown samples with a reason."""
    how, what = failure

    def handler(request: httpx.Request) -> httpx.Response:
        if how == "raise":
            raise what("injected", request=request)
        if how == "status":
            return httpx.Response(what, json={"status": "success"})
        return httpx.Response(200, content=what)

    signals = [
        spec(SourceKind.PROMETHEUS, "up", name="p"),
        spec(SourceKind.SCRAPE, "origin_in_flight_requests", name="g"),
        spec(SourceKind.SCRAPE, "rate(origin_requests_total)", name="r"),
        spec(SourceKind.JSON, "data.p99", name="j"),
    ]
    for samples in run_reads(signals, handler, Clock(), [0.0, 10.0]):
        assert [s.signal.name for s in samples] == ["p", "g", "r", "j"]
        for sample in samples:
            assert sample.value is None
            assert sample.pressure is None
            assert isinstance(sample.error, str)
            assert sample.error
