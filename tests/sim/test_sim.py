"""Simulated CDN and origin: purge wire contract, refill load, latency model, lagged metrics."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio
import httpx
import pytest

from purger.model import Batch, TargetKind
from purger.names.nameset import NameSet, Normalization, WeightSpec
from purger.providers.varnish import VarnishProvider
from purger.sim.cdn import SimConfig, SimStep, SimulatedCDN
from purger.sim.virtual_time import run_in_virtual_time

CDN = "http://cdn.sim"
METRICS = "http://origin.sim/metrics"
TOTAL = 'origin_requests_total{endpoint="json",code="%s"}'
LN100 = math.log(100)
T = TypeVar("T")


def name_set(count: int, weights: Sequence[float] | None = None, prefix: str = "p") -> NameSet:
    names = tuple(f"{prefix}{i:07d}" for i in range(count))
    return NameSet(
        names=names,
        weights=tuple(weights) if weights is not None else (1.0,) * count,
        normalization=Normalization.PEP503,
        weight=WeightSpec(),
        records=count,
        merged=0,
        invalid=0,
    )


def simulate(
    names: NameSet,
    config: SimConfig,
    scenario: Callable[[SimulatedCDN, httpx.AsyncClient], Awaitable[T]],
) -> T:
    """Run ``scenario`` in virtual time against a fresh simulated CDN."""

    async def main() -> T:
        cdn = SimulatedCDN(names, config)
        async with httpx.AsyncClient(transport=cdn) as client:
            return await scenario(cdn, client)

    return run_in_virtual_time(main)


async def purge(
    client: httpx.AsyncClient, names: Sequence[str], *, hard: bool = True
) -> httpx.Response:
    header = "xkey-purge" if hard else "xkey-softpurge"
    keys = " ".join(f"project/{name}" for name in names)
    return await client.request("PURGE", CDN + "/", headers={header: keys})


async def sleep_until(when: float) -> None:
    await anyio.sleep(max(0.0, when - anyio.current_time()))


def parse(text: str) -> dict[str, float]:
    """Prometheus text exposition -> {'name{labels}': value}."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            samples[series] = float(value)
    return samples


async def scrape(client: httpx.AsyncClient) -> dict[str, float]:
    response = await client.get(METRICS)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def requests_total(samples: dict[str, float]) -> float:
    return samples[TOTAL % "200"] + samples[TOTAL % "503"]


def histogram_quantile(q: float, before: dict[str, float], after: dict[str, float]) -> float:
    """Prometheus' histogram_quantile over the increase between two scrapes."""
    prefix = 'origin_request_duration_seconds_bucket{le="'
    buckets = sorted(
        (float(series[len(prefix) : -2]), after[series] - before[series])
        for series in after
        if series.startswith(prefix)
    )
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    raise AssertionError("unreachable: the +Inf bucket holds every fetch")


def extra_fetches(history: Sequence[SimStep], baseline: float, step: float = 1.0) -> float:
    """Refetches the history shows on top of the baseline."""
    return sum((row.load - baseline) * step for row in history)


def test_key_purge_answers_the_bench_vcl_contract():
    """xkey-purge counts known project keys (space or comma separated) after api_latency."""

    async def scenario(cdn, client):
        keys = "project/p0000000 project/p0000001,project/nope all-json"
        response = await client.request("PURGE", CDN + "/", headers={"xkey-purge": keys})
        return response, anyio.current_time()

    response, now = simulate(name_set(3), SimConfig(api_latency=0.25), scenario)
    assert response.status_code == 200
    assert response.reason_phrase == "Purged 2"
    assert response.headers["X-Purged-Count"] == "2"
    assert json.loads(response.content) == {"status": "ok", "purged": 2}
    assert now == 0.25


def test_soft_purge_answers_softpurged():
    """xkey-softpurge answers "Softpurged N" like the bench VCL; an unknown key alone counts 0."""

    async def scenario(cdn, client):
        return await purge(client, ["p0000000"], hard=False), await purge(client, ["zz"])

    soft, unknown = simulate(name_set(1), SimConfig(), scenario)
    assert (soft.reason_phrase, soft.headers["X-Purged-Count"]) == ("Softpurged 1", "1")
    assert (unknown.status_code, unknown.headers["X-Purged-Count"]) == (200, "0")


def test_url_purge_counts_only_the_canonical_json_url():
    """PURGE /pypi/<name>/json counts 1 for a known name; other paths and spellings count 0."""
    paths = [
        *("/pypi/p0000000/json", "/pypi/nope/json", "/pypi/P0000001/json"),
        *("/simple/p0000001/", "/pypi/p0000001/json?x=1", "/pypi/p0000001/json"),
    ]

    async def scenario(cdn, client):
        counts = []
        for path in paths:
            response = await client.request("PURGE", CDN + path, headers={"Host": "pypi.org"})
            assert response.status_code == 200
            counts.append(int(response.headers["X-Purged-Count"]))
        return counts

    assert simulate(name_set(2), SimConfig(), scenario) == [1, 0, 0, 0, 0, 1]


def test_anything_else_is_404():
    """GETs to the CDN, other origin paths, other methods and other hosts answer 404."""

    async def scenario(cdn, client):
        requests = [
            ("GET", CDN + "/pypi/p0000000/json"),
            ("GET", "http://origin.sim/healthz"),
            ("POST", METRICS),
            ("PURGE", "http://other.sim/"),
            ("GET", "http://cdn.sim/metrics"),
        ]
        return [(await client.request(method, url)).status_code for method, url in requests]

    assert simulate(name_set(1), SimConfig(), scenario) == [404] * 5


def test_the_varnish_adapter_reads_the_simulated_counts():
    """The real Varnish adapter purges keys and URLs through the simulation and reads counts."""

    async def scenario(cdn, client):
        provider = VarnishProvider(client=client, endpoints=[CDN], hard=True)
        keys = Batch(TargetKind.KEY, ("project/p0000000", "project/p0000001", "project/x"))
        url = Batch(TargetKind.URL, ("https://pypi.org/pypi/p0000002/json",))
        return (await provider.purge(keys)).purged, (await provider.purge(url)).purged

    assert simulate(name_set(3), SimConfig(), scenario) == (2, 1)


def test_an_evicted_name_purged_again_counts_zero_and_costs_nothing():
    """Until refetched, a hard-purged name is not cached: a retry counts 0 and adds no load;
    a hard purge of a soft-purged (stale) name counts 1 and makes its refetch a full one."""
    config = SimConfig(request_rate=1.0, baseline_load=0.0)  # r = 0.5/s: mean delay 2 s

    async def scenario(cdn, client):
        first = await purge(client, ["p0000000"])
        again = await purge(client, ["p0000000"])
        stale = await purge(client, ["p0000001"], hard=False)
        upgraded = await purge(client, ["p0000001"])
        await anyio.sleep(200)
        later = await purge(client, ["p0000000"])  # refetched by now: cached again
        counts = [int(r.headers["X-Purged-Count"]) for r in (first, again, stale, upgraded)]
        return counts, int(later.headers["X-Purged-Count"]), cdn.history

    counts, later, history = simulate(name_set(2), config, scenario)
    assert counts == [1, 0, 1, 1]
    assert later == 1
    assert extra_fetches(history, 0.0) == pytest.approx(2.0)  # one full fetch per name


def test_same_seed_same_history_and_metrics():
    """Two runs with one seed give identical histories and scrapes; another seed differs."""
    names = name_set(5000, [1.0 / rank for rank in range(1, 5001)])

    def run(seed: int) -> tuple[tuple[SimStep, ...], str]:
        async def scenario(
            cdn: SimulatedCDN, client: httpx.AsyncClient
        ) -> tuple[tuple[SimStep, ...], str]:
            for start in range(0, 5000, 256):
                batch = names.names[start : start + 256]
                await purge(client, batch, hard=start % 512 == 0)
                await anyio.sleep(1.7)
            await anyio.sleep(120)
            return tuple(cdn.history), (await client.get(METRICS)).text

        return simulate(names, SimConfig(seed=seed), scenario)

    first, second, other = run(7), run(7), run(8)
    assert first == second
    assert first[0] != other[0]
    assert len(first[0]) == 155  # 20 batches x 1.75 s + 120 s, whole steps
    assert sum(row.purged_targets for row in first[0]) == 5000


def test_hard_purge_load_arrives_later_one_fetch_per_name():
    """Purging 5,000 names adds 5,000 origin fetches, none before the purge, about 1/r later."""
    names = name_set(50_000)  # r = 5000 / 50000 = 0.1/s: mean delay 10 s

    async def scenario(cdn, client):
        await sleep_until(100.0)
        for start in range(0, 5000, 250):
            await purge(client, names.names[start : start + 250])  # 20 x 0.05 s: done by 101
        await sleep_until(400.0)
        return cdn.history

    history = simulate(names, SimConfig(), scenario)
    assert all(row.load == 300.0 for row in history[:100])
    extra = [(row.time + 0.5, row.load - 300.0) for row in history[100:]]
    assert sum(load for _, load in extra) == pytest.approx(5000.0)
    centroid = sum(t * load for t, load in extra) / 5000.0
    assert centroid - 100.5 == pytest.approx(10.0, rel=0.05)


def test_soft_purge_costs_soft_cost_of_a_hard_one():
    """A soft purge's refill is a revalidation: soft_cost of a fetch per name."""
    names = name_set(50_000)

    async def scenario(cdn, client):
        for start in range(0, 5000, 250):
            await purge(client, names.names[start : start + 250], hard=False)
        await anyio.sleep(300.0)
        return cdn.history

    history = simulate(names, SimConfig(soft_cost=0.25), scenario)
    assert extra_fetches(history, 300.0) == pytest.approx(0.25 * 5000)


def test_popular_names_make_a_miss_storm_unpopular_ones_a_trickle():
    """The same number of names costs the same fetches, but popular ones return at once."""
    weights = [100.0] * 1000 + [1.0] * 100_000  # r = 2.5/s vs 0.025/s
    names = name_set(101_000, weights)

    def extra_by_step(chosen: Sequence[str]) -> list[float]:
        async def scenario(cdn, client):
            for start in range(0, len(chosen), 250):
                await purge(client, chosen[start : start + 250])
            await anyio.sleep(900.0)
            return [row.load - 300.0 for row in cdn.history]

        return simulate(names, SimConfig(), scenario)

    popular = extra_by_step(names.names[:1000])
    unpopular = extra_by_step(names.names[1000:2000])
    assert sum(popular) == pytest.approx(1000.0)
    assert sum(unpopular) == pytest.approx(1000.0, abs=1.0)  # e^-22 of them still pending
    assert max(popular) > 500.0
    assert max(unpopular) < 60.0


def test_metrics_show_a_spike_only_after_metrics_lag():
    """/metrics serves the origin as of metrics_lag ago: the refill shows 15 s late."""
    names = name_set(10_000)  # r = 0.5/s

    async def scenario(cdn, client):
        samples = {}
        await sleep_until(99.95)
        await purge(client, names.names[:1000])  # recorded at 100.0
        for when in (110.0, 115.0, 120.0):
            await sleep_until(when)
            samples[when] = await scrape(client)
        return samples, cdn.history

    samples, history = simulate(names, SimConfig(metrics_lag=15.0), scenario)
    spike = sum(row.load for row in history[100:105])
    assert spike > 1500.0 + 500.0  # the truth already showed it by t = 105
    quiet = requests_total(samples[115.0]) - requests_total(samples[110.0])
    late = requests_total(samples[120.0]) - requests_total(samples[115.0])
    assert quiet == pytest.approx(1500.0, abs=2.0)  # origin's 95..100: baseline only
    assert late == pytest.approx(spike, abs=2.0)  # origin's 100..105
    p99_gauge = "origin_request_latency_p99_seconds"
    assert samples[115.0][p99_gauge] == pytest.approx(0.02 * LN100 / 0.7)
    assert samples[120.0][p99_gauge] == pytest.approx(history[104].p99)


def test_p99_and_errors_rise_as_load_nears_and_passes_capacity():
    """p99 follows s*ln100/(1-u) (flat past u = 0.98); past capacity (u-1)/u fail at timeout."""

    def last_row_and_scrape(baseline: float) -> tuple[SimStep, dict[str, float]]:
        async def scenario(
            cdn: SimulatedCDN, client: httpx.AsyncClient
        ) -> tuple[SimStep, dict[str, float]]:
            await anyio.sleep(30.0)
            return cdn.history[-1], await scrape(client)

        return simulate(name_set(1), SimConfig(baseline_load=baseline), scenario)

    rows = {u: last_row_and_scrape(u * 1000.0) for u in (0.3, 0.9, 0.99, 1.2)}
    assert [rows[u][0].p99 for u in (0.3, 0.9)] == pytest.approx(
        [0.02 * LN100 / 0.7, 0.02 * LN100 / 0.1]
    )
    assert rows[0.99][0].p99 == pytest.approx(0.02 * LN100 / 0.02)
    assert rows[1.2][0].p99 == 10.0
    assert [rows[u][0].error_rate for u in (0.3, 0.9, 0.99)] == [0.0, 0.0, 0.0]
    assert rows[1.2][0].error_rate == pytest.approx(0.2 / 1.2)
    overloaded = rows[1.2][1]
    assert overloaded[TOTAL % "503"] / requests_total(overloaded) == pytest.approx(1 / 6, rel=0.01)
    assert rows[0.9][1][TOTAL % "503"] == 0.0


def test_histogram_follows_the_latency_distribution():
    """histogram_quantile(0.99) lands in the true p99's bucket; _sum/_count is the mean;
    in-flight obeys Little's law; buckets are cumulative and +Inf equals _count."""

    async def scenario(cdn, client):
        await sleep_until(20.0)
        before = await scrape(client)
        await sleep_until(80.0)
        return before, await scrape(client)

    before, after = simulate(name_set(1), SimConfig(baseline_load=700.0), scenario)
    mean, p99 = 0.02 / 0.3, 0.02 * LN100 / 0.3  # 0.0667 s, 0.307 s
    assert 0.25 < histogram_quantile(0.99, before, after) <= 0.5
    assert 0.25 < p99 <= 0.5
    count = "origin_request_duration_seconds_count"
    duration = (
        after["origin_request_duration_seconds_sum"] - before["origin_request_duration_seconds_sum"]
    )
    assert duration / (after[count] - before[count]) == pytest.approx(mean, rel=0.001)
    assert after["origin_in_flight_requests"] == pytest.approx(700.0 * mean)
    buckets = [v for k, v in after.items() if k.startswith("origin_request_duration_seconds_b")]
    assert buckets == sorted(buckets)
    assert buckets[-1] == after[count] == requests_total(after)


def test_capacity_changes_take_effect_at_their_time():
    """A slowdown at t = 50 and a recovery at t = 100 change capacity from those steps on."""
    changes = ((100.0, 2000.0), (50.0, 400.0))  # unsorted on purpose

    async def scenario(cdn, client):
        await anyio.sleep(120.0)
        return cdn.history

    history = simulate(name_set(1), SimConfig(capacity_changes=changes), scenario)
    assert [history[t].capacity for t in (49, 50, 99, 100)] == [1000.0, 400.0, 400.0, 2000.0]
    assert [history[t].utilization for t in (49, 50, 100)] == pytest.approx([0.3, 0.75, 0.15])
    assert history[50].p99 == pytest.approx(0.02 * LN100 / 0.25)
    assert history[49].p99 < history[50].p99 > history[100].p99


def test_metrics_outage_answers_503_and_counters_carry_on():
    """/metrics answers 503 during [start, end); afterwards the counters have kept counting."""

    async def scenario(cdn, client):
        statuses, totals = [], []
        for when in (29.9, 30.0, 59.9, 60.0):
            await sleep_until(when)
            response = await client.get(METRICS)
            statuses.append(response.status_code)
            if response.status_code == 200:
                totals.append(requests_total(parse(response.text)))
        return statuses, totals

    config = SimConfig(metrics_outages=((30.0, 60.0),))
    statuses, totals = simulate(name_set(1), config, scenario)
    assert statuses == [200, 503, 503, 200]
    assert totals[1] - totals[0] == pytest.approx(31 * 300.0, abs=2.0)


def p99_while_purging(per_second: float, limit: float) -> list[float]:
    """True p99 per step while purging 150,000 uniform names at ``per_second``, from t = 60."""
    names = name_set(150_000)  # r = 15000 / 150000 = 0.1/s: mean delay 10 s

    async def scenario(cdn, client):
        batch = 256
        for number, start in enumerate(range(0, len(names.names), batch)):
            await sleep_until(number * batch / per_second)
            await purge(client, names.names[start : start + batch])
        return [row.p99 for row in cdn.history[60:]]

    return simulate(names, SimConfig(request_rate=15_000.0), scenario)


def test_sustainable_purge_rate_holds_p99_at_the_limit():
    """Hard-purging uniform names at the sustainable rate holds the true p99 within 10 % of
    the limit in steady state; at 1.5 times that rate the p99 exceeds it."""
    limit = 0.5
    rate = SimulatedCDN(name_set(1), SimConfig()).sustainable_purge_rate(limit)
    assert rate == pytest.approx(1000.0 * (1 - 0.02 * LN100 / limit) - 300.0)  # about 516/s
    steady = p99_while_purging(rate, limit)
    assert len(steady) > 200
    assert statistics.fmean(steady) == pytest.approx(limit, rel=0.1)
    assert statistics.median(steady) == pytest.approx(limit, rel=0.1)
    too_fast = p99_while_purging(1.5 * rate, limit)
    assert statistics.median(too_fast) > 2 * limit


def test_sustainable_purge_rate_edges():
    """A limit the curve never reaches allows all headroom; no headroom allows nothing."""
    cdn = SimulatedCDN(name_set(1), SimConfig())
    assert cdn.sustainable_purge_rate(5.0) == 700.0  # above the flat 4.6 s at u >= 0.98
    assert cdn.sustainable_purge_rate(0.1) == 0.0  # 0.092 / (1 - 0.3) = 0.13 > 0.1 already
    with pytest.raises(ValueError, match="p99_limit"):
        cdn.sustainable_purge_rate(0.0)


@pytest.mark.parametrize(
    "field", [{"capacity": 0.0}, {"step": 0.0}, {"soft_cost": 1.5}, {"metrics_outages": ((5, 5),)}]
)
def test_config_rejects_values_out_of_range(field):
    """SimConfig names the field that is out of range."""
    with pytest.raises(ValueError, match=f"SimConfig.{next(iter(field))}"):
        SimConfig(**field)


def test_history_outside_the_loop_stops_at_the_last_request():
    """Read after the run, history holds the steps finished by the last request."""

    async def scenario(cdn, client):
        await anyio.sleep(41.5)
        await client.get(METRICS)
        await anyio.sleep(100.0)  # nothing asks: the model is not advanced
        return cdn

    cdn = simulate(name_set(1), SimConfig(), scenario)
    assert len(cdn.history) == 41


def test_smoke_200k_names_in_batches_of_256_with_scrapes():
    """200,000 names purged in batches of 256 while /metrics is scraped every 5 s: every name
    counts once and is refetched once."""
    names = name_set(200_000)  # r = 0.025/s: mean delay 40 s

    async def scenario(cdn, client):
        purged, scrapes = 0, 0
        done = anyio.Event()

        async def scraper() -> None:
            nonlocal scrapes
            while not done.is_set():
                await scrape(client)
                scrapes += 1
                await anyio.sleep(5.0)

        async with anyio.create_task_group() as group:
            group.start_soon(scraper)
            for number, start in enumerate(range(0, len(names.names), 256)):
                await sleep_until(number * 256 / 1000.0)
                response = await purge(client, names.names[start : start + 256])
                purged += int(response.headers["X-Purged-Count"])
            await anyio.sleep(1000.0)
            done.set()
        return purged, scrapes, cdn.history

    purged, scrapes, history = simulate(names, SimConfig(), scenario)
    assert purged == 200_000
    assert sum(row.purged_targets for row in history) == 200_000
    assert extra_fetches(history, 300.0) == pytest.approx(200_000, abs=1.0)
    assert scrapes >= 200
