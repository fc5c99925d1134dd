"""What a state store holds, whatever holds it (SQLite or PostgreSQL): the record types a
run writes and reads, and the rules both stores share: a :class:`~purger.model.Secret` is
never written, and a resume must match the run it resumes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from purger.model import Secret, TargetKind
from purger.planning.plan import Shard

__all__ = [
    "VERIFY_REASON",
    "Failure",
    "RatePoint",
    "RunRecord",
    "ShardProgress",
    "StateSummary",
    "Verification",
    "differences",
    "to_json",
]

#: Failures ``verify`` records start so; the next verify replaces them.
VERIFY_REASON: Final = "verify: "


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """What a run was started with; a resume must match it
    (see :meth:`~purger.state.protocol.Store.check_resume`)."""

    fingerprint: str
    provider: str
    #: JSON-able and never secret; tuples come back from ``Store.load_run`` as lists.
    provider_options: Mapping[str, object]
    key_templates: tuple[str, ...]
    url_templates: tuple[str, ...]
    shards: tuple[Shard, ...]
    purger_version: str
    #: UTC ISO 8601, set by the store when the run starts; ignored by ``start_run``.
    created_at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardProgress:
    """How far a shard got: everything before ``cursor`` and the chunks in ``done_ahead``."""

    shard_id: int
    #: The first name not yet known to be purged; ``None``: start at the shard's start.
    cursor: str | None = None
    #: Every name of the shard is purged (or failed and recorded).
    done: bool = False
    #: First names of the chunks finished beyond the cursor (chunks finish out of order).
    done_ahead: frozenset[str] = frozenset()
    #: Targets purged so far, cumulative.
    targets_done: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """A target the provider refused for good, kept for the report and a later retry."""

    target: str
    kind: TargetKind
    shard_id: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RatePoint:
    """The run's pace at one moment (the store dates it when it commits it)."""

    #: Targets per second observed, smoothed over about a minute.
    rate: float
    #: The pacer's rate then: the ceiling, or what health allowed under it; inf: unbounded.
    allowed: float
    #: Targets purged so far by this execution.
    targets: int
    #: Who held new calls then (``"health"``, ``"operator"``), or ``()``.
    held: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    """One probe of ``purger verify``: a target through a node in a round (0: the first
    look, 1...: after each re-purge), its class (``fresh``, ``stale``...) and why."""

    round: int
    target: str
    node: str
    verdict: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StateSummary:
    """Counts for a progress line or a resume message, without loading every row."""

    shards: int
    shards_done: int
    targets_done: int
    failures: int


def to_json(value: object, where: str) -> str:
    """JSON for the file, refusing any :class:`Secret` however deeply it is nested."""
    _refuse_secrets(value, where)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _refuse_secrets(value: object, where: str) -> None:
    if isinstance(value, Secret):
        raise TypeError(f"{where} is a Secret: secrets are never written to the state file")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_secrets(item, f"{where}.{key}")
    elif isinstance(value, list | tuple | set | frozenset):
        for i, item in enumerate(value):
            _refuse_secrets(item, f"{where}[{i}]")


def differences(stored: RunRecord, new: RunRecord) -> list[str]:
    """What differs between the stored run and this one, most decisive first."""
    found = []
    if stored.fingerprint != new.fingerprint:
        found.append(
            f"plan fingerprint: state has {stored.fingerprint}, this run {new.fingerprint}"
        )
    if stored.provider != new.provider:
        found.append(f"provider: state has {stored.provider}, this run {new.provider}")
    old, now = stored.provider_options, json.loads(to_json(new.provider_options, "options"))
    if keys := sorted(k for k in old.keys() | now.keys() if old.get(k, ...) != now.get(k, ...)):
        found.append(f"provider options differ: {', '.join(keys)}")
    for label, was, got in (
        ("key templates", stored.key_templates, new.key_templates),
        ("url templates", stored.url_templates, new.url_templates),
    ):
        if was != got:
            found.append(f"{label}: state has {list(was)}, this run {list(got)}")
    if stored.shards != new.shards:
        pairs = zip(stored.shards, new.shards, strict=False)
        shortest = min(len(stored.shards), len(new.shards))
        first = next((i for i, (a, b) in enumerate(pairs) if a != b), shortest)
        found.append(
            f"shards differ from shard {first} on"
            f" (state has {len(stored.shards)}, this plan {len(new.shards)})"
        )
    return found
