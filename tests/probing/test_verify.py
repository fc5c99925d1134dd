"""verify's rounds on a fake node and provider: stale targets re-purged and probed again,
a node that ignores purges left bad; the state keeps each probe and the still-bad targets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from purger.model import Batch, BatchResult, TargetKind
from purger.planning.plan import Shard
from purger.planning.targets import parse_templates
from purger.probing.classify import Freshness, ProbeClass
from purger.probing.prober import Prober, ProbeSettings, probe_pacer
from purger.probing.targets import ProbeTarget
from purger.probing.verify import Repurger, still_bad_failures, verify_rounds
from purger.providers.base import ProviderLimits
from purger.state.sqlite import Failure, RunRecord, StateStore, Verification

pytestmark = pytest.mark.anyio

PURGED = 1_000.0


class Cache:
    """Paths cached an hour ago until purged; ``deaf`` nodes ignore purges."""

    def __init__(self, stale: set[str], deaf: bool = False) -> None:
        self.stale = set(stale)
        self.deaf = deaf
        self.now = PURGED + 10

    def answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path in self.stale:
            return httpx.Response(200, headers={"Age": "3600", "X-Cache": "HIT"})
        return httpx.Response(200, headers={"Age": "0", "X-Cache": "MISS"})


class Provider:
    name: ClassVar[str] = "fake"

    def __init__(self, caches: Sequence[Cache]) -> None:
        self.caches = caches
        self.sent: list[Batch] = []

    @property
    def limits(self) -> ProviderLimits:
        return ProviderLimits(max_targets={TargetKind.URL: 1, TargetKind.KEY: 10})

    def target_bytes(self, kind: TargetKind, target: str) -> int:
        return len(target)

    async def purge(self, batch: Batch, /) -> BatchResult:
        self.sent.append(batch)
        for cache in self.caches:
            if not cache.deaf:
                cache.stale -= {httpx.URL(t).path for t in batch.targets}
        return BatchResult(purged=len(batch))


def targets(*names: str) -> list[ProbeTarget]:
    return [ProbeTarget(f"http://pypi.test/{n}", n, (n,)) for n in names]


def prober_on(caches: dict[str, Cache]) -> Prober:
    def route(request: httpx.Request) -> httpx.Response:
        return caches[f"http://{request.url.netloc.decode()}"].answer(request)

    settings = ProbeSettings(freshness=Freshness(purged_at=PURGED))
    return Prober(
        httpx.MockTransport(route), probe_pacer(math.inf, 4), settings, wall=lambda: PURGED + 10
    )


async def no_wait(seconds: float) -> None:
    del seconds


async def test_stale_targets_are_purged_again_and_found_fresh() -> None:
    caches = {"http://a:1": Cache({"/x"}), "http://b:1": Cache({"/x", "/y"})}
    provider = Provider(list(caches.values()))
    repurge = Repurger(provider, probe_pacer(math.inf, 4), (), wall=lambda: PURGED + 5)
    work = [(t, node) for t in targets("x", "y", "z") for node in caches]
    outcome = await verify_rounds(
        prober_on(caches), work, workers=2, repurge=repurge, rounds=3, sleep=no_wait
    )
    assert outcome.first.by_class == {"stale": 3, "fresh": 3}
    assert outcome.first.by_node["http://b:1"] == {"stale": 2, "fresh": 1}
    assert outcome.rounds == 1
    assert sorted(b.targets for b in provider.sent) == [
        ("http://pypi.test/x",),
        ("http://pypi.test/y",),
    ]
    assert outcome.final().by_class == {"fresh": 6}
    assert [v.round for v in outcome.verifications()].count(1) == 3  # only the bad again


async def test_a_node_that_ignores_purges_stays_bad_after_every_round() -> None:
    caches = {"http://good:1": Cache({"/x"}), "http://deaf:1": Cache({"/x"}, deaf=True)}
    provider = Provider(list(caches.values()))
    repurge = Repurger(provider, probe_pacer(math.inf, 4), (), wall=lambda: PURGED + 5)
    work = [(t, node) for t in targets("x") for node in caches]
    outcome = await verify_rounds(
        prober_on(caches), work, workers=2, repurge=repurge, rounds=2, sleep=no_wait
    )
    assert outcome.rounds == 2
    assert len(provider.sent) == 2
    final = outcome.final()
    assert final.by_node == {"http://good:1": {"fresh": 1}, "http://deaf:1": {"stale": 1}}
    shards = (Shard(0, "", None, 1, 1.0),)
    (failure,) = still_bad_failures(outcome, shards, repurge.targets_of)
    assert failure.target == "http://pypi.test/x"
    assert failure.reason.startswith("verify: stale on http://deaf:1")


async def test_without_repurge_one_look() -> None:
    caches = {"http://a:1": Cache({"/x"})}
    outcome = await verify_rounds(prober_on(caches), [(targets("x")[0], "http://a:1")], workers=1)
    assert outcome.rounds == 0
    assert outcome.final().by_class == {str(ProbeClass.STALE): 1}


async def test_a_key_run_is_purged_again_by_its_keys() -> None:
    class KeysOnly(Provider):
        @property
        def limits(self) -> ProviderLimits:
            return ProviderLimits(max_targets={TargetKind.KEY: 10})

    templates = parse_templates(["project/{name}", "json/{name}"], [])
    repurge = Repurger(KeysOnly([]), probe_pacer(math.inf, 1), templates)
    assert repurge.kind is TargetKind.KEY
    assert repurge.targets_of(targets("x")[0]) == ["project/x", "json/x"]


def test_the_state_keeps_probes_and_replaces_the_last_verifys_failures(tmp_path: Path) -> None:
    record = RunRecord(
        fingerprint="f",
        provider="varnish",
        provider_options={},
        key_templates=(),
        url_templates=("http://pypi.test/{name}",),
        shards=(Shard(0, "", None, 2, 2.0),),
        purger_version="0",
    )
    refused = Failure(target="http://pypi.test/r", kind=TargetKind.URL, shard_id=0, reason="403")

    def bad(target: str) -> Failure:
        return Failure(target=target, kind=TargetKind.URL, shard_id=0, reason="verify: stale")

    probe = Verification(round=0, target="http://pypi.test/x", node="n", verdict="stale", detail="")
    with StateStore.open(tmp_path / "s.sqlite") as store:
        store.start_run(record)
        store.commit([], failures=[refused])
        store.record_verification([probe], [bad("http://pypi.test/x")])
        store.record_verification([probe], [bad("http://pypi.test/y")])
        assert [f.target for f in store.failures()] == ["http://pypi.test/r", "http://pypi.test/y"]
        assert store.verifications() == [probe, probe]
