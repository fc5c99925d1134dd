"""The probe option group of ``scan`` and ``verify``: what ends a probe well, how a miss
is told, and the probes' pace, made into one :class:`ProbeOptions` value."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import typer

from purger.cli._options import option_group
from purger.config.schema import MAX_CONCURRENCY
from purger.errors import UsageError
from purger.probing.classify import Freshness
from purger.probing.prober import ProbeSettings

__all__ = ["ProbeOptions"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeOptions:
    """The probe flags as given; :meth:`check_pace` and :meth:`settings` check them."""

    expect: tuple[int, ...] = ()
    max_redirects: int = 5
    miss_header: str = "X-Cache: MISS"
    rate: float = 500.0
    concurrency: int = 8
    timeout: float = 10.0

    def check_pace(self) -> None:
        """Refuse a pace no probe can keep."""
        if not self.rate > 0:
            raise UsageError(f"--rate must be > 0 (or inf), not {self.rate}")
        if not 0 < self.timeout < math.inf:
            raise UsageError(f"--timeout must be > 0 seconds, not {self.timeout}")

    def settings(self, *, purged_at: float | None, soft_grace: float = 0.0) -> ProbeSettings:
        """The prober's settings, checked: ``purged_at`` dates what counts as stale."""
        name, colon, value = self.miss_header.partition(":")
        if not colon or not name.strip() or not value.strip():
            raise UsageError(f"--miss-header {self.miss_header!r}: write it as 'Header: VALUE'")
        statuses = frozenset(self.expect or (200,))
        if any(not 100 <= s <= 599 for s in statuses):
            raise UsageError(f"--expect takes HTTP statuses (100-599), not {sorted(statuses)}")
        if not 0 <= soft_grace < math.inf:
            raise UsageError(f"--soft-grace must be >= 0 seconds, not {soft_grace}")
        freshness = Freshness(
            purged_at=purged_at, miss_header=name.strip(), miss_value=value.strip()
        )
        return ProbeSettings(
            expect=statuses,
            max_redirects=self.max_redirects,
            freshness=freshness,
            soft_grace=soft_grace,
        )


@option_group
def _probe(
    expect: Annotated[
        list[int] | None,
        typer.Option("--expect", help="A status that ends a probe well (repeat; default 200)."),
    ] = None,
    max_redirects: Annotated[
        int, typer.Option("--max-redirects", help="Redirects followed per probe at most.", min=0)
    ] = 5,
    miss_header: Annotated[
        str,
        typer.Option(
            "--miss-header",
            help="'Header: VALUE' that, without an Age, says the node fetched the object (fresh).",
        ),
    ] = "X-Cache: MISS",
    rate: Annotated[
        float,
        typer.Option("--rate", help="Probe requests per second at most ('inf': no limit)."),
    ] = 500.0,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            help=f"Probe requests in flight at most (1 to {MAX_CONCURRENCY}).",
            min=1,
            max=MAX_CONCURRENCY,  # as purger run's: 100,000 meant minutes of silent start-up
        ),
    ] = 8,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds for each request.")] = 10.0,
) -> ProbeOptions:
    return ProbeOptions(
        expect=tuple(expect or ()),
        max_redirects=max_redirects,
        miss_header=miss_header,
        rate=rate,
        concurrency=concurrency,
        timeout=timeout,
    )
