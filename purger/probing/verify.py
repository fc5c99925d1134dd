"""``verify``'s rounds: probe every target through every node; with a re-purge, purge what
is stale or looping again through the run's provider, wait, and probe those again, round
after round, each round judged against the time its re-purge was confirmed.

What a target's re-purge sends: its URL when the provider purges URLs, else its name's
keys (from the run's key templates): a key cannot be fetched, but it can be purged again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final

import anyio

from purger.engine.batching import caps_for, cut_targets
from purger.errors import PurgerError
from purger.model import Batch, TargetKind
from purger.pacing.pacer import Pacer
from purger.planning.plan import Shard
from purger.planning.targets import Template, targets_of
from purger.probing.classify import ProbeClass
from purger.probing.prober import DIRECT, Prober
from purger.probing.tally import Probe, Tally
from purger.probing.targets import ProbeTarget
from purger.providers import ProviderOptions
from purger.providers.base import Provider
from purger.state.sqlite import VERIFY_REASON, Failure, Verification

__all__ = [
    "REPURGED",
    "Repurger",
    "VerifyOutcome",
    "provider_options_of",
    "still_bad_failures",
    "verify_rounds",
]

#: What a re-purge can mend; an error or an unreachable node is not the cache's content.
REPURGED: Final = frozenset({ProbeClass.STALE, ProbeClass.REDIRECT_LOOP})

Work = tuple[ProbeTarget, str | None]


@dataclass(slots=True)
class VerifyOutcome:
    """Every probe with its round, the first look's tally, and the latest per target and
    node (what is left bad after the last round)."""

    probes: list[tuple[int, Probe]] = field(default_factory=list)
    first: Tally = field(default_factory=Tally)
    latest: dict[tuple[str, str], Probe] = field(default_factory=dict)
    rounds: int = 0

    def final(self) -> Tally:
        tally = Tally()
        for probe in self.latest.values():
            tally.add(probe, bad=not probe.verdict.good)
        return tally

    def verifications(self) -> list[Verification]:
        return [
            Verification(
                round=number,
                target=p.target.url,
                node=p.node,
                verdict=str(p.verdict.cls),
                detail=p.verdict.detail,
            )
            for number, p in self.probes
        ]


class Repurger:
    """Purges targets again through the run's provider, paced, one batch at a time per
    slot; a batch the provider refuses is left to the next probe to find still bad."""

    def __init__(
        self,
        provider: Provider,
        pacer: Pacer,
        key_templates: Sequence[Template],
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        url_ok = TargetKind.URL in provider.limits.max_targets
        self.kind = TargetKind.URL if url_ok or not key_templates else TargetKind.KEY
        self._caps = caps_for(provider, [self.kind])[self.kind]
        self._provider = provider
        self._pacer = pacer
        self._keys = tuple(key_templates)
        self._wall = wall
        self.refused: list[str] = []

    def targets_of(self, target: ProbeTarget) -> list[str]:
        """What purging ``target`` again sends: its URL, or its name's keys."""
        if self.kind is TargetKind.URL:
            return [target.url]
        # The name's keys, every row's for column templates: which row's key cached the
        # stale URL is not known.
        return list(targets_of(target.name, self._keys, TargetKind.KEY, {}))

    async def __call__(self, targets: Sequence[ProbeTarget]) -> float:
        """Purge ``targets`` again; the wall time when every batch had its answer."""
        sent = list(dict.fromkeys(t for target in targets for t in self.targets_of(target)))

        async def one(batch: tuple[str, ...]) -> None:
            async with self._pacer.admit(len(batch)):
                try:
                    await self._provider.purge(Batch(self.kind, batch))
                except PurgerError as error:
                    self.refused.append(f"{batch[0]}: {error}")

        async with anyio.create_task_group() as group:
            for batch in cut_targets(sent, self._caps):
                group.start_soon(one, batch)
        return self._wall()


async def verify_rounds(
    prober: Prober,
    work: Sequence[Work],
    *,
    workers: int,
    repurge: Callable[[Sequence[ProbeTarget]], Awaitable[float]] | None = None,
    rounds: int = 0,
    round_wait: float = 0.0,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    outcome: VerifyOutcome | None = None,
) -> VerifyOutcome:
    """Probe ``work``; then up to ``rounds`` times, re-purge what is stale or looping,
    wait ``round_wait`` seconds, and probe it again. ``outcome`` (filled as probes end)
    lets the caller watch the count."""
    outcome = outcome if outcome is not None else VerifyOutcome()

    def take(number: int) -> Callable[[Probe], None]:
        def on_probe(probe: Probe) -> None:
            outcome.probes.append((number, probe))
            outcome.latest[probe.target.url, probe.node] = probe
            if number == 0:
                outcome.first.add(probe, bad=not probe.verdict.good)

        return on_probe

    await prober.probe_all(work, take(0), workers=workers)
    if repurge is None:
        return outcome
    nodes = {node or DIRECT: node for _, node in work}
    for number in range(1, rounds + 1):
        bad = [p for p in outcome.latest.values() if p.verdict.cls in REPURGED]
        if not bad:
            break
        confirmed = await repurge(list({p.target.url: p.target for p in bad}.values()))
        await sleep(round_wait)
        freshness = replace(prober.settings.freshness, purged_at=confirmed)
        again = prober.with_settings(replace(prober.settings, freshness=freshness))
        retry = [(p.target, nodes[p.node]) for p in bad]
        await again.probe_all(retry, take(number), workers=workers)
        outcome.rounds = number
    return outcome


def still_bad_failures(
    outcome: VerifyOutcome, shards: Sequence[Shard], targets_of: Callable[[ProbeTarget], list[str]]
) -> list[Failure]:
    """The failures ``purger failures`` lists after a verify: what is still bad, as the
    targets a ``run --retry-failed`` would purge, with the node and class that found it."""
    failures: dict[str, Failure] = {}
    for probe in outcome.latest.values():
        if probe.verdict.good:
            continue
        shard = next((s for s in shards if probe.target.name in s), shards[0] if shards else None)
        reason = f"{VERIFY_REASON}{probe.verdict.cls} on {probe.node}: {probe.verdict.detail}"
        for target in targets_of(probe.target):
            kind = TargetKind.URL if "://" in target else TargetKind.KEY
            failures.setdefault(
                target,
                Failure(
                    target=target,
                    kind=kind,
                    shard_id=shard.id if shard is not None else 0,
                    reason=reason,
                ),
            )
    return list(failures.values())


def provider_options_of(stored: Mapping[str, object], name: str) -> ProviderOptions:
    """The run's provider options back from its state (``run_record`` stored them
    JSON-able: lists for tuples, strings for paths); keys this version lacks are left."""
    known = {f.name for f in fields(ProviderOptions)}
    options: dict[str, Any] = {k: v for k, v in stored.items() if k in known}
    options["name"] = name
    options["endpoints"] = tuple(options.get("endpoints") or ())
    options["tiers"] = tuple(options.get("tiers") or ())
    if options.get("edgerc"):
        options["edgerc"] = Path(str(options["edgerc"]))
    return ProviderOptions(**options)
