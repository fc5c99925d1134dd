"""What one probe saw, as a class: pure, so every rule is pinned by a unit test.

A probe's chain starts at the target URL and follows redirects (through the same node) up
to ``max_redirects``; a URL seen twice is a loop (the 2022 PyPI incident). When the chain
ends on an expected status (``--expect``, 200 by default), the target is judged by its own
first answer, the object the purge was about: ``fresh`` when it was fetched after the
purge was confirmed (``Age`` says so, or without ``Age`` the miss header says MISS),
``stale`` when it was fetched before; ``ok`` when there is no purge time to judge against
(a scan). ETags are never compared: a newer write changes them without saying anything
(hexpm/hexpm#1897).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final
from urllib.parse import urljoin, urlsplit

__all__ = [
    "GOOD",
    "REDIRECT_STATUSES",
    "Answer",
    "Chain",
    "Freshness",
    "ProbeClass",
    "Verdict",
    "judge_freshness",
    "resolve_location",
]


class ProbeClass(StrEnum):
    OK = "ok"
    FRESH = "fresh"
    STALE = "stale"
    REDIRECT_LOOP = "redirect_loop"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    ERROR = "error"
    UNREACHABLE = "unreachable"


#: Classes that need nothing done.
GOOD: Final = frozenset({ProbeClass.OK, ProbeClass.FRESH})
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class Answer:
    """The parts of one response a verdict needs."""

    status: int
    #: Wall-clock seconds (epoch) when the answer came.
    received_at: float
    age: str | None = None
    location: str | None = None
    #: The value of :attr:`Freshness.miss_header`, if the answer had it.
    cache_status: str | None = None


@dataclass(frozen=True, slots=True)
class Freshness:
    """How to tell an object fetched after the purge from one fetched before."""

    #: Epoch seconds when the purge was confirmed; ``None``: nothing to judge (``ok``).
    purged_at: float | None = None
    #: A header whose last comma-separated value equal to :attr:`miss_value` means the
    #: node fetched the object for this request (Varnish VCL and Fastly: ``X-Cache``).
    miss_header: str = "X-Cache"
    miss_value: str = "MISS"
    #: ``Age`` counts whole seconds and clocks tick apart: an object fetched up to this
    #: long before the purge time still counts as fetched after it.
    slack: float = 1.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """A probe's class, the status it ended on, a short reason, and the URLs it fetched."""

    cls: ProbeClass
    status: int | None = None
    detail: str = ""
    chain: tuple[str, ...] = field(default=())

    @property
    def good(self) -> bool:
        return self.cls in GOOD


def judge_freshness(answer: Answer, rule: Freshness) -> Verdict:
    """``fresh``/``stale`` by ``Age``, else by the miss header; ``ok`` without a purge time.

    The object was fetched no later than ``received_at - Age``: it is stale when even that
    is before the purge (less :attr:`Freshness.slack`), whatever the miss header says: an
    edge that missed may have refetched a stale copy from its shield, and the ``Age`` it
    passes on tells. Without a usable ``Age``, the miss header decides; without either,
    age 0 (RFC 9111).
    """
    if rule.purged_at is None:
        return Verdict(ProbeClass.OK, answer.status)
    text = (answer.age or "").strip()
    if text.isdigit():
        behind = rule.purged_at - (answer.received_at - int(text))
        if behind > rule.slack:
            detail = f"fetched {behind:.0f} s before the purge"
            return Verdict(ProbeClass.STALE, answer.status, detail)
        return Verdict(ProbeClass.FRESH, answer.status, f"Age {text}")
    if answer.cache_status is not None:
        last = answer.cache_status.rsplit(",", 1)[-1].strip()
        if last.upper() == rule.miss_value.upper():
            return Verdict(ProbeClass.FRESH, answer.status, f"{rule.miss_header}: {last}")
    if text:
        return Verdict(ProbeClass.ERROR, answer.status, f"bad Age header {text[:20]!r}")
    return Verdict(ProbeClass.FRESH, answer.status, "no Age")


def resolve_location(current: str, location: str) -> str:
    """The absolute URL a ``Location`` points to, relative ones resolved against
    ``current`` (RFC 9110, 10.2.2); the fragment dropped, as a client does."""
    return urljoin(current, location.strip()).partition("#")[0]


class Chain:
    """One probe's walk: feed it each answer, it says the next URL or the verdict."""

    def __init__(
        self, url: str, *, expect: frozenset[int], max_redirects: int, freshness: Freshness
    ) -> None:
        self.url = url
        self._expect = expect
        self._max_redirects = max_redirects
        self._freshness = freshness
        self._seen: list[str] = [url]
        self._first: Verdict | None = None

    @property
    def current(self) -> str:
        return self._seen[-1]

    def step(self, answer: Answer) -> str | Verdict:
        """The next URL to fetch, or the verdict when the chain has ended."""
        chain = tuple(self._seen)
        if self._first is None:
            self._first = judge_freshness(answer, self._freshness)
        if answer.status in self._expect:
            first = self._first
            return Verdict(first.cls, answer.status, first.detail, chain)
        if answer.status not in REDIRECT_STATUSES or not answer.location:
            detail = f"HTTP {answer.status}" + (
                " without Location" if answer.status in REDIRECT_STATUSES else ""
            )
            return Verdict(ProbeClass.ERROR, answer.status, detail, chain)
        following = resolve_location(self.current, answer.location)
        if urlsplit(following).scheme not in ("http", "https"):
            return Verdict(ProbeClass.ERROR, answer.status, f"Location {following!r}", chain)
        if following in self._seen:
            return Verdict(ProbeClass.REDIRECT_LOOP, answer.status, f"back to {following}", chain)
        if len(self._seen) > self._max_redirects:
            detail = f"more than {self._max_redirects} redirects"
            return Verdict(ProbeClass.TOO_MANY_REDIRECTS, answer.status, detail, chain)
        self._seen.append(following)
        return following
