"""Checkpoint throughput of the state stores: PostgreSQL vs SQLite in the same run.

    python -m bench.state_bench [--calls 4000] [--repeat 3] [--out bench/results/state_bench.json]

Per store, calls committed per second at 1 URL per call:
- engine: the real engine (purger.engine.run.Run), the null provider, 1 URL per call, no
  rate limit, 64 calls in flight, 16 workers: its one writer commits, in one transaction,
  every confirmation that arrived while the previous commit ran (group commit);
- serial: one commit per call, one after another, nothing grouped: the store's floor.
And the driver question for PostgreSQL: the same one-row checkpoint transaction by psycopg's
sync connection and by its async one (asyncio), one after another. And leased runners
(purger/state/leases.py): 1, 2 and 4 runners, each on its own connection and thread with
one shard, committing fenced one-call checkpoints one after another: the total per second
(the database's share of several runners; the engine does not claim shards yet).

Durability as in production: SQLite ``synchronous=FULL`` (WAL), PostgreSQL ``fsync=on`` and
``synchronous_commit=on``, both in the system temporary directory (the cluster from
tests/pg.py, on loopback). Prints a table; ``--out`` writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import psycopg

from purger.engine.run import Run, RunSettings, RunStatus
from purger.names.nameset import NameSet, Normalization, build_name_set
from purger.pacing.pacer import AdaptiveLimit, AnyioClock, Pacer, TokenBucket
from purger.planning.plan import Plan, PlanSettings, make_plan
from purger.planning.targets import parse_templates
from purger.providers.null import NullProvider
from purger.state.leases import LeasedStore
from purger.state.postgres import PostgresStore
from purger.state.protocol import Store
from purger.state.sqlite import RunRecord, ShardProgress, StateStore
from tests.pg import PgCluster, run_postgres

SHARDS = 16
IN_FLIGHT = 64
TEMPLATES = parse_templates([], ["https://pypi.org/simple/{name}/"])


def names(count: int) -> NameSet:
    return build_name_set(
        [(f"n{i:07d}", None, i) for i in range(count)],
        where="bench",
        normalization=Normalization.NONE,
    )


def record(plan: Plan) -> RunRecord:
    return RunRecord(
        fingerprint=plan.fingerprint,
        provider="null",
        provider_options={},
        key_templates=(),
        url_templates=tuple(t.text for t in TEMPLATES),
        shards=plan.shards,
        purger_version="bench",
    )


def engine_rate(open_store: Callable[[], Store], calls: int) -> float:
    """Calls per second through the engine, start to last checkpoint."""
    name_set = names(calls)
    plan = make_plan(name_set, PlanSettings(shards=SHARDS, workers=16))

    async def main() -> float:
        clock = AnyioClock()
        with open_store() as store:
            store.start_run(record(plan))
            pacer = Pacer(
                clock=clock,
                targets=TokenBucket(math.inf, 1, clock),
                limit=AdaptiveLimit(IN_FLIGHT, clock=clock),
            )
            run = Run(
                plan=plan,
                name_set=name_set,
                templates=TEMPLATES,
                providers=[NullProvider(max_targets=1)],
                pacer=pacer,
                store=store,
                settings=RunSettings(workers=16),
                clock=clock,
            )
            began = time.perf_counter()
            outcome = await run.execute()
            elapsed = time.perf_counter() - began
            assert outcome.status is RunStatus.DONE  # noqa: S101 - a bench that lost work lies
            assert store.summary().targets_done == calls  # noqa: S101
        return calls / elapsed

    return anyio.run(main)


def serial_rate(open_store: Callable[[], Store], calls: int) -> float:
    """Calls per second at one commit per call."""
    plan = make_plan(names(SHARDS * 4), PlanSettings(shards=SHARDS, workers=16))
    with open_store() as store:
        store.start_run(record(plan))
        began = time.perf_counter()
        for i in range(calls):
            update = ShardProgress(shard_id=i % SHARDS, cursor=f'{{"url": ["n{i}", 0]}}')
            store.commit([update], status={"targets": str(i)})
        return calls / (time.perf_counter() - began)


_CHECKPOINT = "UPDATE purger.shard SET cursor = %s, targets_done = %s WHERE id = %s"


def driver_rates(pg: PgCluster, url: str, calls: int) -> tuple[float, float]:
    """The one-row checkpoint transaction, psycopg sync then async (asyncio)."""
    plan = make_plan(names(SHARDS * 4), PlanSettings(shards=SHARDS, workers=16))
    with PostgresStore.open(url, run="driver", password_file=pg.password_file) as store:
        store.start_run(record(plan))
    with psycopg.connect(url, password=pg.password, autocommit=True) as db:
        began = time.perf_counter()
        for i in range(calls):
            with db.transaction():
                db.execute(_CHECKPOINT, (f"n{i}", i, i % SHARDS))
        sync = calls / (time.perf_counter() - began)

    async def run_async() -> float:
        connection = await psycopg.AsyncConnection.connect(
            url, password=pg.password, autocommit=True
        )
        async with connection as adb:
            began = time.perf_counter()
            for i in range(calls):
                async with adb.transaction():
                    await adb.execute(_CHECKPOINT, (f"n{i}", i, i % SHARDS))
            return calls / (time.perf_counter() - began)

    return sync, asyncio.run(run_async())


def leased_rate(pg: PgCluster, url: str, runners: int, calls: int) -> float:
    """Fenced one-call commits per second, all runners together: each its own connection
    and thread, one leased shard each, committing one after another."""
    plan = make_plan(names(SHARDS * 4), PlanSettings(shards=SHARDS, workers=16))
    run = f"leased{runners}"
    stores = [
        LeasedStore.join(url, run=run, password_file=pg.password_file) for _ in range(runners)
    ]
    stores[0].start_run(record(plan))
    leases = [store.claim()[0].shard_id for store in stores]
    each = calls // runners
    start = threading.Barrier(runners + 1)

    def work(store: LeasedStore, shard: int) -> None:
        start.wait()
        for i in range(each):
            store.commit([ShardProgress(shard_id=shard, cursor=f"n{i}", targets_done=i)])

    threads = [
        threading.Thread(target=work, args=(store, shard))
        for store, shard in zip(stores, leases, strict=True)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    for store in stores:
        store.close()
    return each * runners / elapsed


def measure(calls: int, repeat: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {}

    def note(key: str, value: float) -> None:
        figures.setdefault(key, []).append(value)
        print(f"  {key:<22} {value:10,.0f} calls/s", flush=True)

    with tempfile.TemporaryDirectory() as directory, run_postgres(fsync=True) as pg:
        for round_ in range(repeat):
            print(f"round {round_ + 1}/{repeat}", flush=True)
            url = pg.create_database(f"bench{round_}")
            path = Path(directory) / f"r{round_}"

            def pg_store(run: str, url: str = url) -> Callable[[], Store]:
                return lambda: PostgresStore.open(url, run=run, password_file=pg.password_file)

            def sqlite_store(name: str, path: Path = path) -> Callable[[], Store]:
                return lambda: StateStore.open(path.with_suffix(f".{name}.sqlite"))

            note("sqlite engine", engine_rate(sqlite_store("engine"), calls))
            note("postgres engine", engine_rate(pg_store("engine"), calls))
            note("sqlite serial", serial_rate(sqlite_store("serial"), calls // 4))
            note("postgres serial", serial_rate(pg_store("serial"), calls // 4))
            sync, async_ = driver_rates(pg, url, calls // 4)
            note("psycopg sync 1-row", sync)
            note("psycopg async 1-row", async_)
            for runners in (1, 2, 4):
                note(f"postgres {runners} leased", leased_rate(pg, url, runners, calls // 4))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    figures = measure(args.calls, args.repeat)
    print(f"\n{'':<22} {'median':>10} {'min':>10} {'max':>10}  (calls/s)")
    for key, values in figures.items():
        print(f"{key:<22} {statistics.median(values):10,.0f} {min(values):10,.0f}"
              f" {max(values):10,.0f}")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"calls": args.calls, "figures": figures}, indent=2))


if __name__ == "__main__":
    main()
