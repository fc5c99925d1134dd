"""The engine on leases (purger/engine/leasing.py): runners joined on one run in PostgreSQL
share its shards, each target sent once; a lease taken by another runner, or a database
that stops answering heartbeats, stops the run (resumable) and nothing more is sent."""

from __future__ import annotations

import math
import threading
from collections import Counter

import anyio
import pytest

from purger.engine.run import Run, RunSettings, RunStatus
from purger.errors import StateError, UnavailableError
from purger.model import Batch, BatchResult
from purger.names.nameset import NameSet, Normalization, build_name_set
from purger.pacing.pacer import AdaptiveLimit, Pacer, TokenBucket
from purger.pacing.retrying import RetryPolicy
from purger.planning.plan import Plan, PlanSettings, make_plan
from purger.planning.targets import parse_templates
from purger.providers.null import NullProvider
from purger.state.leases import LeasedStore, ShardLease
from purger.state.sqlite import RunRecord
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

TTL = 0.9  # heartbeats every 0.3 s of wall time


def _plan() -> tuple[NameSet, Plan, RunRecord]:
    names = build_name_set(
        [(f"{c}{i:02d}", None, i) for c in "abcdefgh" for i in range(20)],
        where="t",
        normalization=Normalization.NONE,
    )
    plan = make_plan(names, PlanSettings(shards=8, workers=2))
    record = RunRecord(
        fingerprint=plan.fingerprint,
        provider="null",
        provider_options={},
        key_templates=("k/{name}",),
        url_templates=(),
        shards=plan.shards,
        purger_version="test",
    )
    return names, plan, record


def _run(names: NameSet, plan: Plan, provider: NullProvider, store: LeasedStore) -> Run:
    clock = FakeClock()
    return Run(
        plan=plan,
        name_set=names,
        templates=parse_templates(["k/{name}"], []),
        providers=[provider],
        pacer=Pacer(
            clock=clock,
            targets=TokenBucket(math.inf, 1, clock),
            limit=AdaptiveLimit(4, clock=clock),
        ),
        store=store,
        settings=RunSettings(workers=2, retry=RetryPolicy(attempts=2), drain_timeout=0.5),
        clock=clock,
        leases=store,
    )


class Meeting(NullProvider):
    """The null provider whose first call waits for the other runner's first call: both
    runners surely claim shards (8 shards, 2 workers each), whatever the machine's load."""

    def __init__(self) -> None:
        super().__init__(max_targets=2)
        self.called = anyio.Event()
        self.other: Meeting | None = None

    async def purge(self, batch: Batch, /) -> BatchResult:
        self.called.set()
        if self.other is not None:
            await self.other.called.wait()
        return await super().purge(batch)


async def test_two_runners_share_the_shards_and_send_each_target_once(postgres, pg_url):
    names, plan, record = _plan()
    join = {"run": "shared", "lease_ttl": TTL, "password_file": postgres.password_file}
    providers = [Meeting(), Meeting()]
    providers[0].other, providers[1].other = providers[1], providers[0]
    outcomes = []
    with LeasedStore.join(pg_url, **join) as one, LeasedStore.join(pg_url, **join) as two:
        one.start_run(record)

        async def go(provider: NullProvider, store: LeasedStore) -> None:
            outcomes.append(await _run(names, plan, provider, store).execute())

        async with anyio.create_task_group() as runners:
            runners.start_soon(go, providers[0], one)
            runners.start_soon(go, providers[1], two)
        assert all(p.done for p in one.progress().values())
        assert one.held() == {}
        assert two.held() == {}
    assert [o.status for o in outcomes] == [RunStatus.DONE, RunStatus.DONE]
    assert all(o.statistics.shards_done == len(plan.shards) for o in outcomes)
    sent = Counter(t for p in providers for batch in p.sent for t in batch.targets)
    assert sent == Counter(f"k/{name}" for name in names.names)
    assert all(p.sent for p in providers)


class Blocking(NullProvider):
    """Answers its first calls, then holds every call until ``release``."""

    def __init__(self, answered: int) -> None:
        super().__init__(max_targets=2)
        self.answered = answered
        self.release = anyio.Event()
        self.waiting = anyio.Event()

    async def purge(self, batch: Batch, /) -> BatchResult:
        if len(self.sent) >= self.answered:
            self.waiting.set()
            await self.release.wait()
        return await super().purge(batch)


async def test_a_lease_taken_by_another_runner_stops_the_run(postgres, pg_url):
    names, plan, record = _plan()
    provider = Blocking(answered=3)
    with LeasedStore.join(
        pg_url, run="stolen", lease_ttl=TTL, password_file=postgres.password_file
    ) as store:
        store.start_run(record)
        run = _run(names, plan, provider, store)

        async def steal() -> None:
            await provider.waiting.wait()
            with postgres.connect(pg_url.rsplit("/", 1)[1]) as admin:
                admin.execute("UPDATE purger.shard SET owner = 'thief', epoch = epoch + 1")

        caught: StateError | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(steal)
            try:
                await run.execute()
            except StateError as error:
                caught = error
        assert caught is not None
        assert "lost to another runner" in str(caught)
        assert caught.resumable
        sent = len(provider.sent)
        provider.release.set()
    assert len(provider.sent) == sent  # nothing went out after the stop


class Silent(LeasedStore):
    """A database that stops answering heartbeats (a cut network): each one hangs."""

    hang = threading.Event()

    def heartbeat(self) -> frozenset[int]:
        self.hang.wait(30)
        return frozenset()


async def test_a_database_out_of_reach_stops_the_run_within_the_ttl(postgres, pg_url):
    names, plan, record = _plan()
    provider = Blocking(answered=2)
    with Silent.join(
        pg_url, run="silent", lease_ttl=TTL, password_file=postgres.password_file
    ) as store:
        store.start_run(record)
        run = _run(names, plan, provider, store)
        started = anyio.current_time()
        try:
            with pytest.raises(StateError, match="no heartbeat reached the state") as raised:
                await run.execute()
        finally:
            Silent.hang.set()
        stopped_after = anyio.current_time() - started
    assert raised.value.resumable
    # Two ticks without a heartbeat stop it, then a drain of 0.5 s at most: within the TTL
    # plus the drain (the margin is the drain's, not a timing guess).
    assert stopped_after < TTL + 0.5 + 5.0


class Unreachable(LeasedStore):
    """A database that goes away after the first claim: the next claim fails."""

    claims = 0

    def claim(self, count: int = 1) -> list[ShardLease]:
        type(self).claims += 1
        if type(self).claims > 1:
            raise UnavailableError("cannot write state: server closed the connection")
        return super().claim(count)


async def test_a_claim_that_cannot_reach_the_database_stops_the_run_resumable(postgres, pg_url):
    names, plan, record = _plan()
    with Unreachable.join(
        pg_url, run="gone", lease_ttl=TTL, password_file=postgres.password_file
    ) as store:
        store.start_run(record)
        with pytest.raises(StateError, match="server closed the connection") as raised:
            await _run(names, plan, NullProvider(max_targets=2), store).execute()
    assert raised.value.resumable
