"""Building a run from an operator's options: the pace, the clients purges go out on, the
pacer, the record the state keeps, the checks that the names are the plan's. ``cli/``
parses; this module assembles; :mod:`purger.launch.execute` runs what it assembled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import httpx

from purger import __version__
from purger.errors import UsageError
from purger.model import TargetKind, redact_url
from purger.names.nameset import NameSet, WeightSpec, WeightTransform
from purger.pacing.pacer import AdaptiveLimit, Clock, Pacer, TokenBucket
from purger.planning.plan import Plan, fingerprint
from purger.planning.targets import Template
from purger.providers import ProviderOptions
from purger.providers.base import Provider
from purger.providers.http1 import Http1Transport
from purger.state.sqlite import RunRecord

__all__ = [
    "PaceOptions",
    "check_names_match",
    "make_pacer",
    "purge_clients",
    "run_record",
    "weight_spec_of",
]

#: Connections per httpx client: one client with 50 connections runs at about half the
#: speed of several small ones (varnish-bench.md, P10).
_CONNECTIONS_PER_CLIENT: Final = 5


def purge_clients(
    options: ProviderOptions,
    pace: PaceOptions,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[httpx.AsyncClient]:
    """The HTTP clients purges go out on, a provider on each. Varnish gets one client on
    the lean HTTP/1.1 transport: a URL purge is a request of its own, so the client's cost
    per request sets the pace (``providers/http1.py``). Others get several small pools.
    ``transport``, when given, carries every request instead (a test double, a simulated CDN).
    """
    headers = {"User-Agent": f"purger/{__version__}"}
    if transport is not None:
        return [httpx.AsyncClient(timeout=options.timeout, headers=headers, transport=transport)]
    limits = httpx.Limits(
        max_connections=_CONNECTIONS_PER_CLIENT,
        max_keepalive_connections=_CONNECTIONS_PER_CLIENT,
    )
    if options.name == "varnish":
        # One pool for https nodes too, a connection for each request at once (every call
        # goes to every node), so that none waits in it.
        requests = pace.concurrency * max(1, len(options.endpoints))
        room = httpx.Limits(max_connections=requests, max_keepalive_connections=requests)
        https = httpx.AsyncHTTPTransport(limits=room)
        lean = Http1Transport(max_idle=pace.concurrency, fallback=https)
        return [httpx.AsyncClient(timeout=options.timeout, headers=headers, transport=lean)]
    return [
        httpx.AsyncClient(timeout=options.timeout, limits=limits, headers=headers)
        for _ in range(math.ceil(pace.concurrency / _CONNECTIONS_PER_CLIENT))
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class PaceOptions:
    """``--rate`` targets/s (``inf``: only the provider's limits) and ``--concurrency``."""

    rate: float = 500.0
    concurrency: int = 8

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise UsageError(f"--rate must be > 0 (or inf), not {self.rate}")
        if self.concurrency < 1:
            raise UsageError(f"--concurrency must be >= 1, not {self.concurrency}")


def weight_spec_of(label: str) -> WeightSpec:
    """The weight spec a plan's ``weight`` label was made with (``plan.py`` writes it)."""
    if label == "count":
        return WeightSpec()
    for transform in WeightTransform:
        prefix = f"{transform}("
        if (
            transform is not WeightTransform.NONE
            and label.startswith(prefix)
            and label.endswith(")")
        ):
            return WeightSpec(column=label[len(prefix) : -1], transform=transform)
    return WeightSpec(column=label)


def check_names_match(plan: Plan, name_set: NameSet, where: str) -> None:
    """Refuse names that are not the ones the plan was made from."""
    if fingerprint(name_set, plan.settings) != plan.fingerprint:
        raise UsageError(
            f"the names in {where} are not the ones plan {plan.fingerprint[:12]} was made from "
            "(they changed since, or --normalize/--weight-column differ): make a new plan"
        )


def _redact_tier(tier: str) -> str:
    """``shield=http://u:p@a:6081,http://b`` with each node's credentials redacted."""
    name, _, nodes = tier.partition("=")
    return f"{name}={','.join(redact_url(node) for node in nodes.split(','))}"


def run_record(plan: Plan, options: ProviderOptions, templates: Sequence[Template]) -> RunRecord:
    """What the state file records about this run: no secret is in ``options``.

    Where the token is read from is not part of the run: a resume may read it elsewhere.
    """
    stored = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in asdict(options).items()
        if k != "token_file"
    }
    # A proxy's or node's user name and password are credentials: never stored.
    stored["endpoints"] = [redact_url(e) for e in options.endpoints]
    if options.api_base is not None:
        stored["api_base"] = redact_url(options.api_base)
    stored["tiers"] = [_redact_tier(tier) for tier in options.tiers]
    if not options.tiers:
        del stored["tiers"]  # states from before tiers resume as they were
    return RunRecord(
        fingerprint=plan.fingerprint,
        provider=options.name,
        provider_options=stored,
        key_templates=tuple(t.text for t in templates if t.kind is TargetKind.KEY),
        url_templates=tuple(t.text for t in templates if t.kind is TargetKind.URL),
        shards=plan.shards,
        purger_version=__version__,
    )


def make_pacer(pace: PaceOptions, provider: Provider, clock: Clock) -> Pacer:
    """The pacer for ``pace`` under ``provider``'s own limits (calls/s, targets/s)."""
    buckets = provider.limits.buckets
    return Pacer(
        clock=clock,
        targets=TokenBucket.with_burst_seconds(pace.rate, 1.0, clock),
        call_buckets=[
            TokenBucket(b.per_second, b.burst, clock) for b in buckets if b.unit == "calls"
        ],
        target_buckets=[
            TokenBucket(b.per_second, b.burst, clock) for b in buckets if b.unit == "targets"
        ],
        limit=AdaptiveLimit(pace.concurrency, maximum=pace.concurrency, clock=clock),
    )
