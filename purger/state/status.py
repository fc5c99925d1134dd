"""What ``purger status`` shows of a state file, as one JSON-able document."""

from __future__ import annotations

import math
from typing import Final

from purger.state.protocol import Store

__all__ = ["status_document"]

#: Failure reasons in a status document, most frequent first.
_SHOWN_REASONS: Final = 10


def status_document(store: Store, where: str | None = None) -> dict[str, object]:
    """What ``purger status`` shows: the run and its id, each shard's progress, totals,
    rate and ETA, the rate over time, and the most frequent failure reasons."""
    run = store.load_run()
    progress = store.progress()
    status = store.status()
    summary = store.summary()
    shards = []
    for shard in run.shards if run is not None else ():
        done = progress.get(shard.id)
        shards.append(
            {
                "id": shard.id,
                "start": shard.start,
                "limit": shard.limit,
                "names": shard.count,
                "done": bool(done and done.done),
                "targets_done": done.targets_done if done else 0,
            }
        )
    eta = status.get("eta_s", "")
    reasons: dict[str, int] = {}
    for failure in store.failures():
        reasons[failure.reason] = reasons.get(failure.reason, 0) + 1
    return {
        # A file's path, or a database's redacted URL and run (``where``).
        "state": where if where is not None else str(getattr(store, "path", "")),
        "run_id": store.run_id(),
        "run": None
        if run is None
        else {
            "fingerprint": run.fingerprint,
            "provider": run.provider,
            "key_templates": list(run.key_templates),
            "url_templates": list(run.url_templates),
            "created_at": run.created_at,
        },
        "shards_done": summary.shards_done,
        "shards_total": summary.shards,
        "targets_done": summary.targets_done,
        "failures": summary.failures,
        "rate": float(status["rate"]) if status.get("rate") else None,
        "eta_s": float(eta) if eta else None,
        "shards": shards,
        "rate_history": [
            {
                "at": at,
                "rate": round(point.rate, 3),
                "allowed": None if math.isinf(point.allowed) else round(point.allowed, 3),
                "targets": point.targets,
                "held": list(point.held),
            }
            for at, point in store.rate_history()
        ],
        "failure_reasons": [
            {"reason": reason, "count": count}
            for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
        ][:_SHOWN_REASONS],
    }
