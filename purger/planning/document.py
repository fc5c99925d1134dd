"""The plan document: a :class:`~purger.planning.plan.Plan` as JSON (``purger plan --json``
and ``--out``), read back and checked, and plan files written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from purger.errors import InputError
from purger.planning.plan import PLAN_VERSION, Comparison, Plan, PlanSettings, Shard

__all__ = ["plan_from_json", "plan_to_json", "read_plan", "write_plan"]


def _number(value: float) -> int | float:
    """Whole weights as JSON integers, so count plans read naturally."""
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def plan_to_json(plan: Plan, comparison: Comparison | None = None) -> dict[str, Any]:
    """The plan document (``version`` 1) that ``--json`` prints and ``--out`` writes."""
    document: dict[str, Any] = {
        "version": PLAN_VERSION,
        "fingerprint": plan.fingerprint,
        "normalize": plan.normalization,
        "weight": plan.weight,
        "total_count": plan.total_count,
        "total_weight": _number(plan.total_weight),
        "max_name_weight": _number(plan.max_name_weight),
        "workers": plan.settings.workers,
        "settings": {
            "shards": plan.settings.shards,
            "max_weight": plan.settings.max_weight,
            "window": plan.settings.window,
        },
        "source": plan.source,
        "makespan_ratio": round(plan.makespan_ratio, 6),
        "heavy_names": list(plan.heavy_names),
        "prefixes": dict(plan.prefix_shards),
        "shards": [
            {
                "id": s.id,
                "start": s.start,
                "limit": s.limit,
                "count": s.count,
                "weight": _number(s.weight),
            }
            for s in plan.shards
        ],
    }
    if comparison is not None:
        document["compare_first_letter"] = {
            "workers": comparison.workers,
            "ideal_weight": _number(comparison.ideal),
            "first_letter_shards": comparison.first_letter_shards,
            "first_letter_makespan": _number(comparison.first_letter_makespan),
            "first_letter_ratio": round(comparison.first_letter_ratio, 6),
            "plan_makespan": _number(comparison.plan_makespan),
            "plan_ratio": round(comparison.plan_ratio, 6),
            "heaviest_prefix": comparison.heaviest_prefix,
        }
    return document


def plan_from_json(document: object, *, where: str) -> Plan:
    """Read a plan document back, refusing anything malformed or inconsistent."""
    try:
        return _plan_from_mapping(document, where)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(
            f"not a valid purger plan ({type(err).__name__}: {err})", where=where
        ) from None


def _plan_from_mapping(document: object, where: str) -> Plan:
    if not isinstance(document, Mapping):
        raise TypeError("the document is not a JSON object")
    if document.get("version") != PLAN_VERSION:
        raise InputError(
            f"plan version {document.get('version')!r} is not {PLAN_VERSION}", where=where
        )
    fingerprint_hex = str(document["fingerprint"])
    if len(fingerprint_hex) != 64 or any(c not in "0123456789abcdef" for c in fingerprint_hex):
        raise ValueError("fingerprint is not a SHA-256 hex digest")
    settings_doc = document["settings"]
    settings = PlanSettings(
        workers=int(document["workers"]),
        shards=settings_doc["shards"],
        max_weight=settings_doc["max_weight"],
        window=float(settings_doc["window"]),
    )
    shards = tuple(
        Shard(
            id=int(s["id"]),
            start=str(s["start"]),
            limit=None if s["limit"] is None else str(s["limit"]),
            count=int(s["count"]),
            weight=float(s["weight"]),
        )
        for s in document["shards"]
    )
    _check_ranges(shards)
    return Plan(
        fingerprint=fingerprint_hex,
        normalization=str(document["normalize"]),
        weight=str(document["weight"]),
        settings=settings,
        total_count=int(document["total_count"]),
        total_weight=float(document["total_weight"]),
        max_name_weight=float(document["max_name_weight"]),
        shards=shards,
        heavy_names=tuple(str(n) for n in document.get("heavy_names", ())),
        prefix_shards=tuple(
            (str(p), int(c)) for p, c in dict(document.get("prefixes", {})).items()
        ),
        source=document.get("source"),
    )


def _check_ranges(shards: Sequence[Shard]) -> None:
    if not shards:
        raise ValueError("a plan needs at least one shard")
    if shards[0].start != "" or shards[-1].limit is not None:
        raise ValueError("shards must start at '' and end with limit null")
    for i, (left, right) in enumerate(pairwise(shards)):
        if left.limit != right.start:
            raise ValueError(
                f"shard {i} ends at {left.limit!r} but shard {i + 1} starts at {right.start!r}"
            )
    for i, shard in enumerate(shards):
        if shard.id != i:
            raise ValueError(f"shard at position {i} has id {shard.id}")
        if shard.limit is not None and not shard.start < shard.limit:
            raise ValueError(f"shard {i} is empty: [{shard.start!r}, {shard.limit!r})")


def write_plan(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` to ``path`` atomically: a temporary file, fsync, rename."""
    directory = path.parent
    if path.exists() and not path.is_file():
        # The rename would put a file where a device or a pipe was (/dev/null, as root).
        raise InputError("not a regular file: a plan is written only as a file", where=str(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as err:
        raise InputError(f"cannot write: {err.strerror or err}", where=str(path)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=1)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write: {err.strerror or err}", where=str(path)) from None


def read_plan(path: Path) -> Plan:
    """Load a plan file written by ``purger plan --out``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise InputError(f"cannot read plan: {reason}", where=str(path)) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"plan is not JSON ({err})", where=str(path)) from None
    return plan_from_json(document, where=str(path))
