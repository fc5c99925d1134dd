"""The engine (purger.engine.run.Run) on the PostgreSQL store: a run stopped half-way with
the null provider resumes from what the database holds and sends every target once."""

from __future__ import annotations

import math
from collections import Counter

import anyio
import pytest

from purger.engine.run import Run, RunSettings, RunStatus
from purger.model import Batch, BatchResult, TargetKind
from purger.names.nameset import Normalization, build_name_set
from purger.pacing.pacer import AdaptiveLimit, Pacer, TokenBucket
from purger.pacing.retrying import RetryPolicy
from purger.planning.plan import PlanSettings, make_plan
from purger.planning.targets import parse_templates
from purger.providers.null import NullProvider
from purger.state.postgres import PostgresStore
from purger.state.sqlite import RunRecord
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio


class StoppingNull(NullProvider):
    """The null provider that asks the run to stop at its ``at``-th call."""

    def __init__(self, stop: anyio.Event, at: int) -> None:
        super().__init__(max_targets=2)
        self._stop = stop
        self._at = at

    async def purge(self, batch: Batch, /) -> BatchResult:
        result = await super().purge(batch)
        if len(self.sent) == self._at:
            self._stop.set()
        return result


async def test_a_stopped_run_resumes_from_the_database(postgres, pg_url):
    names = build_name_set(
        [(f"{c}{i:02d}", None, i) for c in "abcp" for i in range(20)],
        where="t",
        normalization=Normalization.NONE,
    )
    plan = make_plan(names, PlanSettings(shards=4, workers=2))
    templates = parse_templates(["k/{name}"], [])
    record = RunRecord(
        fingerprint=plan.fingerprint,
        provider="null",
        provider_options={},
        key_templates=("k/{name}",),
        url_templates=(),
        shards=plan.shards,
        purger_version="test",
    )

    def run(provider: NullProvider, store: PostgresStore) -> Run:
        clock = FakeClock()
        pacer = Pacer(
            clock=clock,
            targets=TokenBucket(math.inf, 1, clock),
            limit=AdaptiveLimit(4, clock=clock),
        )
        return Run(
            plan=plan,
            name_set=names,
            templates=templates,
            providers=[provider],
            pacer=pacer,
            store=store,
            settings=RunSettings(workers=3, retry=RetryPolicy(attempts=2), drain_timeout=30),
            clock=clock,
        )

    stop = anyio.Event()
    first = StoppingNull(stop, at=10)
    with PostgresStore.open(pg_url, run="engine", password_file=postgres.password_file) as store:
        store.start_run(record)
        outcome = await run(first, store).execute(stop)
        done_before = store.summary().targets_done
    assert outcome.status is RunStatus.STOPPED
    assert 0 < done_before < len(names.names)

    second = NullProvider(max_targets=2)
    with PostgresStore.open(pg_url, run="engine", password_file=postgres.password_file) as store:
        store.check_resume(record)
        outcome = await run(second, store).execute()
        assert store.summary().targets_done == len(names.names)
        assert all(p.done for p in store.progress().values())
    assert outcome.status is RunStatus.DONE
    sent = Counter(t for batch in first.sent + second.sent for t in batch.targets)
    assert sent == Counter(f"k/{name}" for name in names.names)
    assert all(batch.kind is TargetKind.KEY for batch in second.sent)
