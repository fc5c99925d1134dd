"""Client traffic through Varnish: async httpx GETs at a steady rate, bounded in count and
time, spread over names by popularity; reports the achieved rate and the hit ratio.

    python bench/traffic.py --url http://127.0.0.1:6081 --rate 500 --count 5000 --duration 30 \
        [--pypi ../shared/data/pypi-projects.tsv.gz --top 20000 | --names 20000 --zipf-s 1.0]

Popularity is zipf-rank from ``download_rank`` in the PyPI TSV when given (weight 1/rank,
unranked names 1/(largest rank + 1), as ``purger plan --weight-transform zipf-rank``),
else a synthetic Zipf over ``n000000``, ``n000001``, ... The pool of connections is split
over several clients: one httpx pool slows down as it grows (varnish-bench.md, P10). This
loop manages about 1,200 GETs/s here; to send a fixed list faster, use ``bench/wrk.py``.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import math
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import anyio
import httpx

__all__ = [
    "Popularity",
    "TrafficReport",
    "load_pypi_popularity",
    "project_path",
    "run_traffic",
    "synthetic_popularity",
]

CONNECTIONS_PER_CLIENT: Final = 5
_TIMEOUT: Final = httpx.Timeout(30.0, connect=5.0)


def project_path(name: str) -> str:
    return f"/pypi/{name}/json"


@dataclass(frozen=True, slots=True)
class Popularity:
    """Names and their cumulative weights, to draw names in proportion to their weight."""

    names: tuple[str, ...]
    cumulative: tuple[float, ...]

    @classmethod
    def of(cls, names: Sequence[str], weights: Sequence[float]) -> Popularity:
        if not names or len(names) != len(weights):
            raise ValueError("need as many weights as names, and at least one name")
        return cls(tuple(names), tuple(itertools.accumulate(weights)))

    def draw(self, rnd: random.Random) -> str:
        point = rnd.random() * self.cumulative[-1]
        return self.names[min(bisect.bisect_right(self.cumulative, point), len(self.names) - 1)]


def synthetic_popularity(count: int, *, s: float = 1.0, prefix: str = "n") -> Popularity:
    """Zipf over ``count`` names: the name of rank r weighs 1/r**s."""
    names = [f"{prefix}{i:06d}" for i in range(count)]
    return Popularity.of(names, [1.0 / (rank**s) for rank in range(1, count + 1)])


def load_pypi_popularity(path: str, *, top: int | None = None) -> Popularity:
    """Zipf-rank weights from the PyPI TSV's ``download_rank`` column; ``top`` keeps only
    the best-ranked names (ranked ones first, then unranked in file order)."""
    from purger.names.nameset import WeightSpec, WeightTransform, build_name_set
    from purger.names.sources import NamesSource, read_records

    source = NamesSource(path=path, weight_column="download_rank")
    spec = WeightSpec(column="download_rank", transform=WeightTransform.ZIPF_RANK)
    name_set = build_name_set(read_records(source), where=path, weight=spec)
    pairs = list(zip(name_set.names, name_set.weights, strict=True))
    if top is not None:
        pairs = sorted(pairs, key=lambda pair: -pair[1])[:top]
    return Popularity.of([n for n, _ in pairs], [w for _, w in pairs])


@dataclass(frozen=True, slots=True)
class TrafficReport:
    sent: int
    errors: int
    elapsed: float
    cache: dict[str, int]  # X-Cache value (HIT, MISS, STALE, ...) -> responses

    @property
    def per_second(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def hit_ratio(self) -> float:
        """Responses served from cache (HIT or STALE) over all answered responses."""
        answered = sum(self.cache.values())
        served = self.cache.get("HIT", 0) + self.cache.get("STALE", 0)
        return served / answered if answered else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed, 3),
            "per_second": round(self.per_second, 1),
            "hit_ratio": round(self.hit_ratio, 4),
            "cache": self.cache,
        }


async def _drive(
    base_url: str,
    jobs: Iterator[tuple[str, float]],
    *,
    concurrency: int,
    host: str | None,
    deadline: float,
) -> TrafficReport:
    """GET each ``(path, not_before)`` from ``jobs`` with ``concurrency`` in flight at most,
    never before its time (``time.monotonic()``) and never after ``deadline``."""
    headers = {"Host": host} if host else {}
    cache: Counter[str] = Counter()
    sent = errors = 0
    started = time.monotonic()
    clients = [
        httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=_TIMEOUT,
            limits=httpx.Limits(
                max_connections=CONNECTIONS_PER_CLIENT,
                max_keepalive_connections=CONNECTIONS_PER_CLIENT,
            ),
        )
        for _ in range(math.ceil(concurrency / CONNECTIONS_PER_CLIENT))
    ]

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent, errors
        for path, not_before in jobs:  # one shared iterator: each job goes to one worker
            now = time.monotonic()
            if not_before >= deadline or now >= deadline:
                return
            if not_before > now:
                await anyio.sleep(not_before - now)
            sent += 1
            try:
                response = await client.get(path)
            except httpx.HTTPError:
                errors += 1
                continue
            cache[response.headers.get("X-Cache", "none")] += 1
            if response.status_code >= 400:
                errors += 1

    try:
        async with anyio.create_task_group() as group:
            for index in range(concurrency):
                group.start_soon(worker, clients[index % len(clients)])
    finally:
        for client in clients:
            await client.aclose()
    return TrafficReport(sent, errors, time.monotonic() - started, dict(cache))


async def run_traffic(
    base_url: str,
    popularity: Popularity,
    *,
    per_second: float,
    count: int,
    duration: float,
    concurrency: int = 20,
    seed: int = 1,
    host: str | None = None,
) -> TrafficReport:
    """GETs of names drawn by popularity, ``per_second`` at most, until ``count`` are sent
    or ``duration`` seconds have passed."""
    if not per_second > 0 or count < 0 or not duration > 0:
        raise ValueError("need per_second > 0, count >= 0 and duration > 0")
    rnd = random.Random(seed)
    start = time.monotonic()
    jobs = ((project_path(popularity.draw(rnd)), start + i / per_second) for i in range(count))
    return await _drive(
        base_url,
        jobs,
        concurrency=concurrency,
        host=host,
        deadline=start + duration,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="Varnish, e.g. http://127.0.0.1:6081")
    parser.add_argument("--rate", type=float, default=500.0, help="GETs per second at most")
    parser.add_argument("--count", type=int, default=5000, help="GETs at most")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds at most")
    parser.add_argument("--concurrency", type=int, default=20, help="GETs in flight at most")
    parser.add_argument("--pypi", help="PyPI TSV with download_rank (zipf-rank popularity)")
    parser.add_argument("--top", type=int, help="with --pypi: only the best-ranked names")
    parser.add_argument("--names", type=int, default=20_000, help="synthetic names")
    parser.add_argument("--zipf-s", type=float, default=1.0, help="synthetic Zipf exponent")
    parser.add_argument("--host", help="Host header (default: the URL's)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    popularity = (
        load_pypi_popularity(args.pypi, top=args.top)
        if args.pypi
        else synthetic_popularity(args.names, s=args.zipf_s)
    )

    async def go() -> TrafficReport:
        return await run_traffic(
            args.url,
            popularity,
            per_second=args.rate,
            count=args.count,
            duration=args.duration,
            concurrency=args.concurrency,
            seed=args.seed,
            host=args.host,
        )

    report = anyio.run(go)
    print(
        f"{report.sent:,} GETs in {report.elapsed:.1f} s = {report.per_second:,.0f}/s, "
        f"hit ratio {report.hit_ratio:.1%}, errors {report.errors}"
    )
    print(json.dumps(report.to_json()))


if __name__ == "__main__":
    main()
