"""Probes on the wire: GET a target through a cache node, follow its redirects through the
same node, classify (:mod:`~purger.probing.classify`), paced like purges.

Every request of a chain is admitted by the pacer (``--rate``, ``--concurrency``): a miss
through the cache costs the origin a fetch, like a purge's refill. Requests go out on the
lean HTTP/1.1 transport the Varnish purges use (``providers/http1.py``), called directly:
httpx's client around it (cookies, auth, hooks, redirects we follow ourselves) halved the
probe rate (``bench/scan_bench.py``). ``https`` URLs probed without ``--via`` go to httpx's
own transport.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field

import anyio
import httpx

from purger import __version__
from purger.pacing.pacer import AdaptiveLimit, AnyioClock, Clock, Pacer, TokenBucket
from purger.probing.classify import (
    Answer,
    Chain,
    Freshness,
    ProbeClass,
    Verdict,
)
from purger.probing.tally import Probe
from purger.probing.targets import ProbeTarget, through_node
from purger.providers.http1 import Http1Transport

__all__ = ["DIRECT", "ProbeSettings", "Prober", "probe_pacer", "probe_transport"]

#: The node name of probes sent to the URL's own host (no ``--via``).
DIRECT = "direct"
_USER_AGENT = f"purger/{__version__}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeSettings:
    expect: frozenset[int] = field(default=frozenset({200}))
    max_redirects: int = 5
    freshness: Freshness = field(default_factory=Freshness)
    #: After a soft purge a node may serve the stale object once while it refetches: a
    #: stale verdict is probed again after this many seconds, and the second one stands.
    soft_grace: float = 0.0


def probe_transport(concurrency: int) -> Http1Transport:
    """The lean transport, a kept connection per probe in flight, https to httpx's."""
    room = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return Http1Transport(max_idle=concurrency, fallback=httpx.AsyncHTTPTransport(limits=room))


def probe_pacer(rate: float, concurrency: int, clock: Clock | None = None) -> Pacer:
    """``--rate`` requests a second (``inf``: unbounded), ``--concurrency`` at once."""
    clock = clock or AnyioClock()
    return Pacer(
        clock=clock,
        targets=TokenBucket.with_burst_seconds(rate, 1.0, clock),
        limit=AdaptiveLimit(concurrency, maximum=concurrency, clock=clock),
    )


class Prober:
    """Probes targets through nodes with one client and one pacer."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        pacer: Pacer,
        settings: ProbeSettings,
        *,
        timeout: float = 10.0,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._transport = transport
        self._timeout = timeout
        self._extensions = {
            "timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        }
        self._pacer = pacer
        self.settings = settings
        self._wall = wall
        self._sleep = sleep

    def with_settings(self, settings: ProbeSettings) -> Prober:
        """The same client and pacer, other settings (a later round's purge time)."""
        return Prober(
            self._transport,
            self._pacer,
            settings,
            timeout=self._timeout,
            wall=self._wall,
            sleep=self._sleep,
        )

    async def probe(self, url: str, node: str | None) -> Verdict:
        """The verdict on ``url`` through ``node``; a stale one looked at again after the
        soft grace."""
        verdict = await self._walk(url, node)
        if verdict.cls is ProbeClass.STALE and self.settings.soft_grace > 0:
            await self._sleep(self.settings.soft_grace)
            verdict = await self._walk(url, node)
        return verdict

    async def probe_all(
        self,
        work: Iterable[tuple[ProbeTarget, str | None]],
        on_probe: Callable[[Probe], None],
        *,
        workers: int,
    ) -> None:
        """Probe every ``(target, node)``, ``workers`` at once (the pacer bounds them
        further); ``on_probe`` gets each as it ends."""
        items: Iterator[tuple[ProbeTarget, str | None]] = iter(work)

        async def worker() -> None:
            for target, node in items:
                verdict = await self.probe(target.url, node)
                on_probe(Probe(target, node or DIRECT, verdict))

        async with anyio.create_task_group() as group:
            for _ in range(workers):
                group.start_soon(worker)

    async def _walk(self, url: str, node: str | None) -> Verdict:
        settings = self.settings
        chain = Chain(
            url,
            expect=settings.expect,
            max_redirects=settings.max_redirects,
            freshness=settings.freshness,
        )
        while True:
            answer = await self._fetch(chain.current, node)
            if isinstance(answer, Verdict):
                return answer
            step = chain.step(answer)
            if isinstance(step, Verdict):
                return step

    async def _fetch(self, url: str, node: str | None) -> Answer | Verdict:
        target, host = through_node(url, node)
        headers = [("User-Agent", _USER_AGENT)]
        if host is not None:
            headers.append(("Host", host))
        async with self._pacer.admit(1):
            try:
                request = httpx.Request("GET", target, headers=headers, extensions=self._extensions)
                response = await self._transport.handle_async_request(request)
                try:
                    await response.aread()  # the lean transport read it; httpx's did not
                finally:
                    await response.aclose()
            except httpx.TransportError as exc:
                self._pacer.limit.on_overload()
                return Verdict(ProbeClass.UNREACHABLE, None, f"{type(exc).__name__}: {exc}")
        self._pacer.limit.on_success()
        miss = self.settings.freshness.miss_header
        return Answer(
            status=response.status_code,
            received_at=self._wall(),
            age=response.headers.get("Age"),
            location=response.headers.get("Location"),
            cache_status=response.headers.get(miss) if miss else None,
        )
