"""Varnish with xkey: ``PURGE`` to every cache node, by surrogate key or by URL.

Varnish has no purge API of its own; this targets the VCL contract in
shared/reference/varnish-bench.md: ``PURGE /`` with the keys space-separated in
``xkey-softpurge`` (the default) or ``xkey-purge`` (``--hard``), or ``PURGE /path`` with
the URL's own ``Host``; the node answers ``200 Purged N`` and ``X-Purged-Count: N``. Nodes
do not share a cache, so each gets every batch, and a batch is done only when all are.

Tiers (``--tier shield=http://a:6081 --tier edge=http://b:6081,http://c:6081``), from the
origin outwards: an edge purged before its shield refetches the shield's stale copy, so a
batch goes to every node of a tier, and only when all of them answered to the next tier.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

import anyio
import httpx

from purger.errors import AuthError, RateLimitedError, RejectedError, TransientError, UsageError
from purger.model import (
    Batch,
    BatchResult,
    TargetKind,
    http_url_problem,
    redact_url,
    scrub,
    url_secrets,
)
from purger.providers import ProviderOptions
from purger.providers._http import retry_after_seconds
from purger.providers.base import ProviderLimits

__all__ = ["VarnishProvider", "from_options", "parse_tiers"]

MAX_KEYS = 256
#: Varnish refuses request headers over http_req_hdr_len (8 KiB by default): stay well under.
MAX_HEADER_BYTES = 6000
#: Keys are space-separated, and xkey also splits on commas: neither may be inside a key.
_KEY_BREAKER = re.compile(r"[\s,\x00-\x1f\x7f]")
_COUNT = re.compile(r"\b(\d+)\b")
#: Which failure wins when nodes disagree: the one an operator must act on first.
_SEVERITY = ("auth", "rejected", "rate", "transient")
_Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class _NodeFailure:
    node: str
    kind: str  # one of _SEVERITY
    status: int | None
    text: str
    retry_after: float | None = None


class VarnishProvider:
    """Fans each batch out to every node; no credentials (the VCL's ACL decides)."""

    name: ClassVar[str] = "varnish"

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        endpoints: Sequence[str] = (),
        tiers: Sequence[tuple[str, Sequence[str]]] = (),
        key_header: str | None = None,
        hard: bool = False,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if endpoints and tiers:
            raise UsageError("give varnish nodes with --endpoint or with --tier, not both")
        tiers = tiers or (("nodes", endpoints),)
        endpoints = [node for _, nodes in tiers for node in nodes]
        if not endpoints:
            raise UsageError("varnish needs at least one --endpoint http://host:port")
        for endpoint in endpoints:
            if http_url_problem(endpoint) or urlsplit(endpoint).query:
                raise UsageError(f"--endpoint {redact_url(endpoint)!r} is not http://host:port")
        self._client = client
        self._endpoints = tuple(endpoint.rstrip("/") for endpoint in endpoints)
        self._tiers = tuple(
            (name, tuple(node.rstrip("/") for node in nodes)) for name, nodes in tiers
        )
        # A node's user name and password never show: messages name nodes this way.
        self._shown = {e: redact_url(e) for e in self._endpoints}
        self._secrets = tuple(s for e in self._endpoints for s in url_secrets(e))
        self._header = key_header or ("xkey-purge" if hard else "xkey-softpurge")
        self._hard = hard
        self._timeout = timeout
        self._clock = clock
        # Self-hosted: no published rate limits, so no buckets; pace with --rate.
        self._limits = ProviderLimits(
            max_targets={TargetKind.KEY: MAX_KEYS, TargetKind.URL: 1},
            max_bytes=MAX_HEADER_BYTES,
            overhead_bytes=len(self._header) + len(": "),
            api_latency=0.01,
            soft_purge=not hard,
        )

    def __repr__(self) -> str:
        tiers = tuple((name, tuple(redact_url(n) for n in nodes)) for name, nodes in self._tiers)
        return f"VarnishProvider(tiers={tiers!r}, key_header={self._header!r})"

    @property
    def limits(self) -> ProviderLimits:
        return self._limits

    def target_bytes(self, kind: TargetKind, target: str) -> int:
        # A key costs its bytes and a separating space in the header.
        return len(target.encode()) + 1

    async def purge(self, batch: Batch, /) -> BatchResult:
        if len(batch) > self._limits.max_targets[batch.kind]:
            raise ValueError(f"a batch of {len(batch)} {batch.kind}s is over the limit")
        if not batch.targets:
            return BatchResult(purged=0)
        if batch.kind is TargetKind.KEY:
            bad = [key for key in batch.targets if not key or _KEY_BREAKER.search(key)]
            if bad:
                message = f"key {bad[0]!r} is empty or holds a space, comma or control character"
                raise RejectedError(message, provider="varnish")
            path, headers = "/", [(self._header.encode(), " ".join(batch.targets).encode())]
        else:
            path, headers = _split_url(batch.targets[0])
        counts: dict[str, int | None] = {}
        failures: list[_NodeFailure] = []

        async def one(endpoint: str) -> None:
            outcome = await self._purge_node(endpoint, path, headers, batch.kind)
            if isinstance(outcome, _NodeFailure):
                failures.append(outcome)
            else:
                counts[endpoint] = outcome

        for _, nodes in self._tiers:
            if len(nodes) == 1:
                await one(nodes[0])  # a task group's cost, per URL, is measurable
            else:
                async with anyio.create_task_group() as group:
                    for endpoint in nodes:
                        group.start_soon(one, endpoint)
            if failures:  # outer tiers would refetch from this one: they wait for a retry
                raise self._combine(failures)
        known = [count for count in counts.values() if count is not None]
        purged = sum(known) if len(known) == len(counts) else len(batch)
        return BatchResult(purged=purged)

    async def _purge_node(
        self, endpoint: str, path: str, headers: _Headers, kind: TargetKind
    ) -> int | _NodeFailure | None:
        """The node's purged count (``None`` if it did not say), or how it failed."""
        try:
            response = await self._client.request(
                "PURGE", endpoint + path, headers=headers, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            text = f"no answer within {self._timeout:g} s ({type(exc).__name__})"
            return _NodeFailure(endpoint, "transient", None, text)
        except httpx.TransportError as exc:
            text = scrub(f"{type(exc).__name__}: {exc}", self._secrets)
            return _NodeFailure(endpoint, "transient", None, text)
        status = response.status_code
        if response.is_success:
            header = response.headers.get("X-Purged-Count", "").strip()
            if header.isdigit():
                return int(header)
            match = _COUNT.search(response.reason_phrase)
            return int(match.group(1)) if match else None
        if status == 404 and kind is TargetKind.URL:
            return 0  # older VCLs answer "404 Not in cache": the URL is not cached there
        text = scrub(f"HTTP {status} {response.reason_phrase}".strip(), self._secrets, limit=200)
        if status in (401, 403, 405):
            return _NodeFailure(endpoint, "auth", status, text)
        if status == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After"), self._clock())
            return _NodeFailure(endpoint, "rate", status, text, wait)
        if status == 408 or status >= 500:
            return _NodeFailure(endpoint, "transient", status, text)
        return _NodeFailure(endpoint, "rejected", status, text)

    def _combine(self, failures: list[_NodeFailure]) -> Exception:
        """One error for the batch: the most severe node's class, every failed node named."""
        failures.sort(key=lambda f: (_SEVERITY.index(f.kind), self._endpoints.index(f.node)))
        worst = failures[0]
        nodes = "; ".join(f"{self._shown[f.node]}: {f.text}" for f in failures)
        message = f"{len(failures)} of {len(self._endpoints)} nodes failed: {nodes}"
        if worst.kind == "auth":
            refused = ", ".join(self._shown[f.node] for f in failures if f.kind == "auth")
            return AuthError("varnish", worst.status or 403, f"the PURGE ACL of {refused}")
        if worst.kind == "rejected":
            return RejectedError(message, provider="varnish", status=worst.status)
        if worst.kind == "rate":
            waits = [f.retry_after for f in failures if f.retry_after is not None]
            return RateLimitedError(
                message, provider="varnish", retry_after=max(waits) if waits else None
            )
        return TransientError(message, provider="varnish", status=worst.status)


def _split_url(url: str) -> tuple[str, _Headers]:
    """``(path?query, {"Host": host})``, the path exactly as given: the 2022 PyPI outage
    came from purging normalized URLs while caches held them verbatim."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme or not rest or rest[0] in "/?#":
        raise RejectedError(f"URL {url!r} has no scheme and host", provider="varnish")
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:].partition("#")[0]
    host = authority.rpartition("@")[2]
    if not path.startswith("/"):
        path = "/" + path
    return path, [(b"Host", host.encode())]


def from_options(
    options: ProviderOptions,
    client: httpx.AsyncClient,
    env: Mapping[str, str],
    *,
    clock: Callable[[], float] = time.time,
) -> VarnishProvider:
    """Varnish needs ``--endpoint`` (or ``--api-base`` as the one node); no credentials."""
    del env
    tiers = parse_tiers(options.tiers)
    endpoints = options.endpoints or ((options.api_base,) if options.api_base and not tiers else ())
    return VarnishProvider(
        client=client,
        endpoints=endpoints,
        tiers=tiers,
        key_header=options.key_header,
        hard=options.hard,
        timeout=options.timeout,
        clock=clock,
    )


def parse_tiers(specs: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    """``--tier NAME=URL[,URL...]`` values, in the order given (origin outwards)."""
    tiers: list[tuple[str, tuple[str, ...]]] = []
    for spec in specs:
        name, equals, urls = spec.partition("=")
        nodes = tuple(url.strip() for url in urls.split(",") if url.strip())
        if not equals or not name.strip() or not nodes:
            raise UsageError(f"--tier {spec!r}: write NAME=http://host:port[,http://host:port]")
        if name.strip() in (n for n, _ in tiers):
            raise UsageError(f"--tier {spec!r}: tier {name.strip()!r} given twice")
        tiers.append((name.strip(), nodes))
    return tiers
