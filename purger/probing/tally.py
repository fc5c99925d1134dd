"""Counts of probes by class and by node, a few examples of each bad class, and the names
found bad (pure): what ``scan`` and ``verify`` print."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from purger.probing.classify import ProbeClass, Verdict
from purger.probing.targets import ProbeTarget

__all__ = ["Probe", "Tally"]

#: Examples kept per bad class.
_EXAMPLES = 3


@dataclass(frozen=True, slots=True)
class Probe:
    """One target probed through one node (``direct`` without ``--via``)."""

    target: ProbeTarget
    node: str
    verdict: Verdict


@dataclass(slots=True)
class Tally:
    """Probes counted as they come."""

    probes: int = 0
    by_class: Counter[str] = field(default_factory=Counter)
    by_node: dict[str, Counter[str]] = field(default_factory=dict)
    examples: dict[str, list[Probe]] = field(default_factory=dict)
    #: Bad names, each with its spellings, in the order first found bad.
    bad_names: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def add(self, probe: Probe, *, bad: bool) -> None:
        cls = str(probe.verdict.cls)
        self.probes += 1
        self.by_class[cls] += 1
        self.by_node.setdefault(probe.node, Counter())[cls] += 1
        if bad:
            self.bad_names.setdefault(probe.target.name, probe.target.spellings)
            kept = self.examples.setdefault(cls, [])
            if len(kept) < _EXAMPLES:
                kept.append(probe)

    def to_json(self) -> dict[str, object]:
        order = {str(c): i for i, c in enumerate(ProbeClass)}
        return {
            "by_class": dict(sorted(self.by_class.items(), key=lambda kv: order[kv[0]])),
            "by_node": {
                node: dict(sorted(counts.items(), key=lambda kv: order[kv[0]]))
                for node, counts in self.by_node.items()
            },
            "examples": {
                cls: [
                    {"url": p.target.url, "node": p.node, "detail": p.verdict.detail}
                    for p in probes
                ]
                for cls, probes in self.examples.items()
            },
        }
