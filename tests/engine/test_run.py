"""The run engine against scripted providers, a virtual clock and a real SQLite state."""

from __future__ import annotations

import math
import tempfile
import threading
from collections import Counter
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from purger.engine.run import Run, RunSettings, RunStatus
from purger.errors import AuthError, RateLimitedError, RejectedError, StateError, TransientError
from purger.model import Batch, BatchResult, TargetKind
from purger.names.nameset import NameSet, Normalization, build_name_set
from purger.pacing.pacer import AdaptiveLimit, AnyioClock, Pacer, TokenBucket
from purger.pacing.retrying import RetryPolicy
from purger.planning.plan import Plan, PlanSettings, make_plan
from purger.planning.targets import Template, parse_templates, targets_of
from purger.sim.virtual_time import run_in_virtual_time
from purger.state.files import write_refused
from purger.state.sqlite import RunRecord, StateStore
from tests.fakes import FakeClock, ScriptedProvider

pytestmark = pytest.mark.anyio

FAST_RETRY = RetryPolicy(attempts=4, total_seconds=1e9, backoff_base=0.01, backoff_max=0.1)


def name_set(count: int = 40) -> NameSet:
    names = [f"{c}{i:02d}" for c in "abcp" for i in range(count // 4)]
    return build_name_set(
        [(n, None, i) for i, n in enumerate(names)], where="t", normalization=Normalization.NONE
    )


def open_store(tmp_path: Path, plan: Plan, templates: tuple[Template, ...]) -> StateStore:
    store = StateStore.open(tmp_path / "state.sqlite")
    if store.load_run() is None:
        store.start_run(
            RunRecord(
                fingerprint=plan.fingerprint,
                provider="scripted",
                provider_options={},
                key_templates=tuple(t.text for t in templates if t.kind is TargetKind.KEY),
                url_templates=tuple(t.text for t in templates if t.kind is TargetKind.URL),
                shards=plan.shards,
                purger_version="test",
            )
        )
    return store


def make_run(
    plan: Plan,
    names: NameSet,
    templates: tuple[Template, ...],
    provider: ScriptedProvider,
    store: StateStore,
    clock: FakeClock,
    *,
    concurrency: int = 4,
    workers: int = 3,
) -> Run:
    pacer = Pacer(
        clock=clock,
        targets=TokenBucket(math.inf, 1, clock),
        limit=AdaptiveLimit(concurrency, clock=clock),
    )
    return Run(
        plan=plan,
        name_set=names,
        templates=templates,
        providers=[provider],
        pacer=pacer,
        store=store,
        settings=RunSettings(workers=workers, retry=FAST_RETRY, drain_timeout=5),
        clock=clock,
    )


def all_targets(names: NameSet, templates: tuple[Template, ...]) -> list[str]:
    return [
        t
        for kind in (TargetKind.KEY, TargetKind.URL)
        for n in names.names
        for t in targets_of(n, templates, kind, names.aliases)
    ]


def purged(provider: ScriptedProvider) -> Counter[str]:
    return Counter(t for batch in provider.purged for t in batch.targets)


@settings(max_examples=25, deadline=None)
@given(
    names=st.sets(st.text("abcdefpy0-", min_size=1, max_size=4), min_size=1, max_size=80),
    shards=st.integers(1, 9),
    max_targets=st.integers(1, 7),
    url=st.booleans(),
)
def test_every_target_is_sent_in_exactly_one_successful_batch(names, shards, max_targets, url):
    """With a provider that always succeeds, each target is purged once, batches under the cap."""
    name_set = build_name_set(
        [(n, None, i) for i, n in enumerate(sorted(names))],
        where="t",
        normalization=Normalization.NONE,
    )
    templates = parse_templates(["k/{name}"], ["https://h.example/{name}"] if url else [])
    plan = make_plan(name_set, PlanSettings(shards=shards, workers=2))

    async def main(path: Path) -> tuple[ScriptedProvider, RunStatus]:
        provider = ScriptedProvider(max_targets=max_targets)
        with open_store(path, plan, templates) as store:
            run = make_run(plan, name_set, templates, provider, store, FakeClock())
            outcome = await run.execute()
            assert all(p.done for p in store.progress().values())
        return provider, outcome.status

    with TemporaryPath() as path:
        provider, status = anyio.run(main, path)
    assert status is RunStatus.DONE
    assert purged(provider) == Counter(all_targets(name_set, templates))
    assert all(len(b) <= max_targets for b in provider.calls if b.kind is TargetKind.KEY)
    assert all(len(b) == 1 for b in provider.calls if b.kind is TargetKind.URL)


class TemporaryPath:
    """A fresh directory per Hypothesis example (tmp_path is per test, not per example)."""

    def __enter__(self) -> Path:
        self._dir = tempfile.TemporaryDirectory()
        return Path(self._dir.name)

    def __exit__(self, *exc: object) -> None:
        self._dir.cleanup()


async def test_heaviest_shard_is_taken_first(tmp_path):
    """One worker starts on the heaviest shard, then takes the others heaviest first."""
    names = name_set(80)
    plan = make_plan(names, PlanSettings(shards=4, workers=1))
    templates = parse_templates(["k/{name}"], [])
    provider = ScriptedProvider(max_targets=1)
    with open_store(tmp_path, plan, templates) as store:
        await make_run(plan, names, templates, provider, store, FakeClock(), workers=1).execute()
    order = []
    for batch in provider.purged:
        shard = plan.shard_of(batch.targets[0].removeprefix("k/")).id
        if shard not in order:
            order.append(shard)
    by_weight = [s.id for s in sorted(plan.shards, key=lambda s: (-s.weight, s.id))]
    assert order == by_weight


async def test_a_429_waits_retry_after_cuts_concurrency_and_retries(tmp_path):
    """429 with Retry-After 7: the call waits 7 s, the cap halves, the batch goes through."""

    def script(call: int, batch: Batch) -> None:
        if call == 1:
            raise RateLimitedError("slow down", provider="scripted", retry_after=7.0)

    names = name_set(8)
    plan = make_plan(names, PlanSettings(shards=1, workers=1))
    templates = parse_templates(["k/{name}"], [])
    provider = ScriptedProvider(max_targets=8, script=script)
    clock = FakeClock()
    with open_store(tmp_path, plan, templates) as store:
        run = make_run(plan, names, templates, provider, store, clock, concurrency=4)
        outcome = await run.execute()
    assert outcome.status is RunStatus.DONE
    assert 7.0 in clock.sleeps
    assert run._pacer.limit.limit == 2
    assert purged(provider) == Counter(all_targets(names, templates))


async def test_transient_errors_are_retried_until_success(tmp_path):
    """Two 503s then success: three calls, one purge, no failure."""

    def script(call: int, batch: Batch) -> None:
        if call <= 2:
            raise TransientError("503", provider="scripted", status=503)

    names = name_set(4)
    plan = make_plan(names, PlanSettings(shards=1, workers=1))
    templates = parse_templates(["k/{name}"], [])
    provider = ScriptedProvider(max_targets=8, script=script)
    with open_store(tmp_path, plan, templates) as store:
        outcome = await make_run(plan, names, templates, provider, store, FakeClock()).execute()
    assert outcome.status is RunStatus.DONE
    assert len(provider.calls) == 3
    assert len(provider.purged) == 1


async def test_a_rejected_batch_is_split_to_isolate_and_record_bad_targets(tmp_path):
    """A 400 on a batch holding bad keys: the good ones are purged, the bad ones recorded."""
    bad = {"k/a01", "k/p03"}

    def script(call: int, batch: Batch) -> None:
        if bad & set(batch.targets):
            raise RejectedError("400 invalid key", provider="scripted", status=400)

    names = name_set(16)
    plan = make_plan(names, PlanSettings(shards=2, workers=1))
    templates = parse_templates(["k/{name}"], [])
    provider = ScriptedProvider(max_targets=8, script=script)
    with open_store(tmp_path, plan, templates) as store:
        outcome = await make_run(plan, names, templates, provider, store, FakeClock()).execute()
        failures = store.failures()
    assert outcome.status is RunStatus.FAILED_TARGETS
    assert {f.target for f in failures} == bad
    assert all("400 invalid key" in f.reason for f in failures)
    assert set(purged(provider)) == set(all_targets(names, templates)) - bad


async def test_refused_credentials_stop_everything_at_once(tmp_path):
    """A 401 raises AuthError out of the run; no further batch is sent."""

    def script(call: int, batch: Batch) -> None:
        raise AuthError("scripted", 401, "SCRIPTED_TOKEN")

    names = name_set(40)
    plan = make_plan(names, PlanSettings(shards=4, workers=1))
    templates = parse_templates(["k/{name}"], [])
    provider = ScriptedProvider(max_targets=2, script=script)
    with open_store(tmp_path, plan, templates) as store:
        run = make_run(plan, names, templates, provider, store, FakeClock(), workers=1)
        with pytest.raises(AuthError, match="SCRIPTED_TOKEN"):
            await run.execute()
    assert len(provider.calls) <= run._window


async def test_a_provider_that_keeps_failing_stops_the_run_resumably(tmp_path):
    """Retries spent on 503s: the run stops, resumable; a resume with a healthy provider
    finishes, and every target is purged exactly once."""
    names = name_set(40)
    plan = make_plan(names, PlanSettings(shards=4, workers=2))
    templates = parse_templates(["k/{name}"], ["https://h.example/{name}"])

    def broken_after_five(call: int, batch: Batch) -> None:
        if call > 5:
            raise TransientError("503", provider="scripted", status=503)

    first = ScriptedProvider(max_targets=3, script=broken_after_five)
    with open_store(tmp_path, plan, templates) as store:
        outcome = await make_run(plan, names, templates, first, store, FakeClock()).execute()
    assert outcome.status is RunStatus.STOPPED
    assert outcome.reason is not None
    assert "503" in outcome.reason

    second = ScriptedProvider(max_targets=3)
    with open_store(tmp_path, plan, templates) as store:
        outcome = await make_run(plan, names, templates, second, store, FakeClock()).execute()
    assert outcome.status is RunStatus.DONE
    # Every success was checkpointed before the stop returned: nothing is purged twice.
    assert purged(first) + purged(second) == Counter(all_targets(names, templates))


async def test_a_stop_request_drains_checkpoints_and_resumes_without_loss(tmp_path):
    """Stop half-way: status stopped; resume sends only what was not confirmed."""
    names = name_set(80)
    plan = make_plan(names, PlanSettings(shards=4, workers=2))
    templates = parse_templates(["k/{name}"], [])
    stop = anyio.Event()

    def stop_at_tenth(call: int, batch: Batch) -> None:
        if call == 10:
            stop.set()

    first = ScriptedProvider(max_targets=2, script=stop_at_tenth)
    with open_store(tmp_path, plan, templates) as store:
        outcome = await make_run(plan, names, templates, first, store, FakeClock()).execute(stop)
        done_before = store.summary().targets_done
    assert outcome.status is RunStatus.STOPPED
    assert 0 < done_before < len(names.names)

    second = ScriptedProvider(max_targets=2)
    with open_store(tmp_path, plan, templates) as store:
        outcome = await make_run(plan, names, templates, second, store, FakeClock()).execute()
        assert store.summary().targets_done == len(names.names)
    assert outcome.status is RunStatus.DONE
    assert purged(first) + purged(second) == Counter(all_targets(names, templates))


async def test_a_finished_state_sends_nothing_on_resume(tmp_path):
    """Resuming a run that is done sends no batch and reports done."""
    names = name_set(12)
    plan = make_plan(names, PlanSettings(shards=3, workers=2))
    templates = parse_templates(["k/{name}"], [])
    with open_store(tmp_path, plan, templates) as store:
        await make_run(plan, names, templates, ScriptedProvider(), store, FakeClock()).execute()
    again = ScriptedProvider()
    with open_store(tmp_path, plan, templates) as store:
        outcome = await make_run(plan, names, templates, again, store, FakeClock()).execute()
    assert outcome.status is RunStatus.DONE
    assert again.calls == []


def test_the_eta_is_estimated_and_written_to_the_state(tmp_path):
    """A paced run estimates its rate and the time left, and commits both to the state
    (in virtual time: the run is paced at 4 targets/s, so it takes about 50 s)."""
    names = name_set(200)
    plan = make_plan(names, PlanSettings(shards=4, workers=2))
    templates = parse_templates(["k/{name}"], [])
    etas: list[tuple[int, float, float]] = []

    async def main() -> dict[str, str]:
        clock = AnyioClock()
        with open_store(tmp_path, plan, templates) as store:
            pacer = Pacer(
                clock=clock,
                targets=TokenBucket(4.0, 1.0, clock),
                limit=AdaptiveLimit(4, clock=clock),
            )
            run = Run(
                plan=plan,
                name_set=names,
                templates=templates,
                providers=[ScriptedProvider(max_targets=2)],
                pacer=pacer,
                store=store,
                # On the loop: a commit in a thread is no event of the virtual clock, which
                # would jump ahead while the call waits for it and halve the measured rate.
                settings=RunSettings(workers=2, retry=FAST_RETRY, commit_on_loop=True),
                clock=clock,
            )

            async def watch() -> None:
                while True:
                    await anyio.sleep(1)
                    stats = run.statistics()
                    if stats.eta_s is not None and 0 < stats.targets < 200:
                        etas.append((stats.targets, stats.rate, stats.eta_s))

            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                await run.execute()
                tg.cancel_scope.cancel()
            return store.status()

    status = run_in_virtual_time(main)
    assert etas, "no ETA while running"
    done, rate, eta = etas[len(etas) // 2]
    assert 3.0 <= rate <= 5.0  # about the 4/s it was allowed
    assert eta == pytest.approx((200 - done) / rate, rel=0.25)
    assert float(status["rate"]) > 0
    assert status["eta_s"] != ""


async def test_a_retry_of_failures_clears_the_purged_and_keeps_the_refused(tmp_path):
    """The run records two refused keys; a retry where one is now accepted clears it (and
    counts it in its shard) and keeps the other with the provider's new reason."""
    bad = {"k/a01", "k/p03"}

    def refuse(reason: str, refused: set[str]):
        def script(call: int, batch: Batch) -> None:
            if refused & set(batch.targets):
                raise RejectedError(reason, provider="scripted", status=400)

        return script

    names = name_set(16)
    plan = make_plan(names, PlanSettings(shards=2, workers=1))
    templates = parse_templates(["k/{name}"], [])
    first = ScriptedProvider(max_targets=8, script=refuse("400 first", bad))
    with open_store(tmp_path, plan, templates) as store:
        await make_run(plan, names, templates, first, store, FakeClock()).execute()
        failed = store.failures()
        done_before = store.summary().targets_done
    assert {f.target for f in failed} == bad

    again = ScriptedProvider(max_targets=8, script=refuse("400 still", {"k/p03"}))
    with open_store(tmp_path, plan, templates) as store:
        run = make_run(plan, names, templates, again, store, FakeClock())
        outcome = await run.retry(failed)
        (kept,) = store.failures()
        assert kept.target == "k/p03"
        assert "400 still" in kept.reason
        assert store.summary().targets_done == done_before + 1
    assert outcome.status is RunStatus.FAILED_TARGETS
    assert (run.retrying, run.settled) == (2, 2)
    assert sorted(t for b in again.calls for t in b.targets) == ["k/a01", "k/p03"]


async def test_a_stop_while_paused_does_not_wait_for_the_drain_timeout(tmp_path):
    """Paused (held), then stopped: calls waiting for the pause are dropped at once, so the
    run ends stopped and resumable without waiting out the drain timeout."""
    names = name_set(40)
    plan = make_plan(names, PlanSettings(shards=4, workers=2))
    templates = parse_templates(["k/{name}"], [])
    provider = ScriptedProvider(max_targets=2)
    with open_store(tmp_path, plan, templates) as store:
        run = make_run(plan, names, templates, provider, store, AnyioClock())
        run._pacer.hold("operator")
        stop = anyio.Event()
        with anyio.fail_after(3):  # the drain timeout is 5 s
            async with anyio.create_task_group() as tg:

                async def stop_soon() -> None:
                    await anyio.wait_all_tasks_blocked()
                    stop.set()

                tg.start_soon(stop_soon)
                outcome = await run.execute(stop)
    assert outcome.status is RunStatus.STOPPED
    assert provider.calls == []


async def test_shards_now_lists_every_shard_heaviest_first_with_its_totals(tmp_path):
    """What a live view reads: every shard, heaviest first, done with all its targets."""
    names = name_set(40)
    plan = make_plan(names, PlanSettings(shards=4, workers=2))
    templates = parse_templates(["k/{name}"], ["https://h.example/{name}"])
    with open_store(tmp_path, plan, templates) as store:
        run = make_run(plan, names, templates, ScriptedProvider(), store, FakeClock())
        before = run.shards_now()
        await run.execute()
    assert [s.weight for s in before] == sorted((s.weight for s in before), reverse=True)
    assert sum(s.targets_total for s in before) == 80
    assert not any(s.done for s in before)
    after = run.shards_now()
    assert all(s.done and s.targets_done == s.targets_total for s in after)


class _TimedProvider(ScriptedProvider):
    """Takes ``seconds`` per call and records the most calls it had in flight at once."""

    def __init__(self, seconds: float) -> None:
        super().__init__(max_targets=2)
        self.seconds = seconds
        self.in_flight = self.most_in_flight = 0

    async def purge(self, batch: Batch, /) -> BatchResult:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await anyio.sleep(self.seconds)
            return await super().purge(batch)
        finally:
            self.in_flight -= 1


def test_calls_go_to_the_least_busy_provider(tmp_path):
    """Each provider is an HTTP client with a small connection pool: a call goes to the
    one with the fewest calls in flight, so a slow client holds at most its share of the
    concurrency (in turn, it would end up holding every slot) and every target is purged."""
    names = name_set(80)
    plan = make_plan(names, PlanSettings(shards=4, workers=2))
    templates = parse_templates(["k/{name}"], [])
    slow, fast = _TimedProvider(10.0), _TimedProvider(0.1)

    async def main() -> None:
        clock = AnyioClock()
        with open_store(tmp_path, plan, templates) as store:
            pacer = Pacer(
                clock=clock,
                targets=TokenBucket(math.inf, 1.0, clock),
                limit=AdaptiveLimit(4, clock=clock),
            )
            run = Run(
                plan=plan,
                name_set=names,
                templates=templates,
                providers=[slow, fast],
                pacer=pacer,
                store=store,
                # A commit in a thread would let virtual time jump over it.
                settings=RunSettings(workers=2, retry=FAST_RETRY, commit_on_loop=True),
                clock=clock,
            )
            await run.execute()

    run_in_virtual_time(main)
    assert slow.most_in_flight <= 2
    assert len(fast.purged) > 5 * len(slow.purged)
    assert sorted(purged(slow) + purged(fast)) == sorted(all_targets(names, templates))


class _GatedStore:
    """A state store whose commits wait until the test lets them through (a slow disk),
    counting the provider's answers each commit found waiting."""

    def __init__(self, inner: StateStore, provider: ScriptedProvider) -> None:
        self._inner = inner
        self._provider = provider
        self.gate = threading.Event()
        self.committed_answers = 0
        self.most_uncommitted = 0

    def progress(self):  # type: ignore[no-untyped-def]
        return self._inner.progress()

    def commit(self, updates, failures=(), status=None, history=(), retried=()):  # type: ignore[no-untyped-def]
        # Every answer so far is either committed or waiting: the latter are what a kill
        # now would make a resume send again.
        uncommitted = len(self._provider.purged) - self.committed_answers
        self.most_uncommitted = max(self.most_uncommitted, uncommitted)
        answered = len(self._provider.purged)
        self.gate.wait(timeout=0.02)  # a slow fsync: the loop goes on meanwhile
        self._inner.commit(updates, failures, status, history, retried)
        self.committed_answers = answered


async def test_answers_waiting_for_a_slow_commit_stay_within_the_concurrency(tmp_path):
    """A call's slot is freed only once its answer is committed: however slow the disk,
    the answered calls not yet in the state never exceed the concurrency cap, so a kill
    at any moment costs at most that many batches on resume."""
    names = name_set(400)
    plan = make_plan(names, PlanSettings(shards=8, workers=4))
    templates = parse_templates([], ["https://h.example/{name}"])  # one target per call
    provider = ScriptedProvider(max_targets=4)
    with open_store(tmp_path, plan, templates) as inner:
        store = _GatedStore(inner, provider)
        clock = AnyioClock()
        pacer = Pacer(
            clock=clock,
            targets=TokenBucket(math.inf, 1, clock),
            limit=AdaptiveLimit(4, clock=clock),
        )
        run = Run(
            plan=plan,
            name_set=names,
            templates=templates,
            providers=[provider],
            pacer=pacer,
            store=store,
            settings=RunSettings(workers=4, retry=FAST_RETRY),
            clock=clock,
        )
        outcome = await run.execute()
    assert outcome.status is RunStatus.DONE
    assert len(provider.purged) == 400
    assert store.most_uncommitted <= 4


class _FailingStore:
    """A state store whose disk fills (or fails an fsync) after ``good`` commits."""

    def __init__(self, inner: StateStore, good: int, error: StateError) -> None:
        self._inner = inner
        self._good = good
        self._error = error
        self.commits = 0

    def progress(self):  # type: ignore[no-untyped-def]
        return self._inner.progress()

    def commit(self, updates, failures=(), status=None, history=(), retried=()):  # type: ignore[no-untyped-def]
        self.commits += 1
        if self.commits > self._good:
            raise self._error
        self._inner.commit(updates, failures, status, history, retried)


@pytest.mark.parametrize("why", ["No space left on device", "Input/output error"])
async def test_a_state_that_cannot_be_written_stops_the_run_at_once(tmp_path, why):
    """The third commit fails: the run sends almost nothing more (the calls already under
    way at most) and raises the one-line, resumable StateError, no ExceptionGroup."""
    names = name_set(400)
    plan = make_plan(names, PlanSettings(shards=8, workers=4))
    templates = parse_templates([], ["https://h.example/{name}"])
    provider = ScriptedProvider(max_targets=4)
    error = write_refused("p.sqlite", why, sent=True)
    with open_store(tmp_path, plan, templates) as inner:
        store = _FailingStore(inner, 2, error)
        run = make_run(plan, names, templates, provider, store, FakeClock(), concurrency=4)  # type: ignore[arg-type]
        with pytest.raises(StateError) as raised:
            await run.execute()
        progress = inner.progress()
    assert raised.value is error
    assert raised.value.resumable
    assert f"p.sqlite: cannot write the state ({why})" in str(raised.value)
    assert store.commits == 3  # nothing is committed after the failure
    # Sent: what the two good commits hold, the failed commit's, and the calls then in
    # flight, each bounded by the concurrency cap of 4.
    assert len(provider.calls) <= 3 * 4
    assert sum(p.targets_done for p in progress.values()) <= 2 * 4
