"""The verbs of the Python API over this package: estimate a purge, run one, read a state.
``purger/__init__.py`` exports them; docs/api.md shows them in use. Each takes values
(a :class:`~purger.planning.plan.Plan`, a :class:`~purger.names.nameset.NameSet`,
:class:`~purger.providers.ProviderOptions`) and does what ``purger estimate``,
``purger run`` and ``purger status --json`` do with the same values, minus the rendering.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from purger.engine.run import RunOutcome, RunSettings, RunStatus
from purger.launch.build import PaceOptions, check_names_match
from purger.launch.execute import execute_run
from purger.launch.forecast import DryRunEnv, Forecast, dry_run_options, forecast_run
from purger.names.nameset import NameSet
from purger.pacing.pacer import AnyioClock
from purger.planning.plan import Plan
from purger.planning.targets import parse_templates
from purger.providers import ProviderOptions
from purger.state.sqlite import StateStore, StateSummary
from purger.state.status import status_document
from purger.state.stores import StateRef

__all__ = ["PurgeResult", "estimate_purge", "purge", "read_state"]

#: The CLI's defaults for ``--rate`` and ``--concurrency``.
_PACE = PaceOptions()


@dataclass(frozen=True, slots=True, kw_only=True)
class PurgeResult:
    """How a :func:`purge` ended (``outcome``) and what its state holds now (``summary``)."""

    outcome: RunOutcome
    summary: StateSummary

    @property
    def status(self) -> RunStatus:
        """``done``, ``failed-targets`` (see the state's failures) or ``stopped``
        (resumable: call :func:`purge` again with ``resume=True``)."""
        return self.outcome.status


async def purge(
    plan: Plan,
    names: NameSet,
    *,
    provider: ProviderOptions,
    state: str | Path,
    keys: Sequence[str] = (),
    urls: Sequence[str] = (),
    rate: float = _PACE.rate,
    concurrency: int = _PACE.concurrency,
    resume: bool = False,
    max_duration: float | None = None,
    env: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    stop_on_signals: bool = True,
) -> PurgeResult:
    """Purge ``names`` as ``plan`` shards them, checkpointing every batch in the SQLite
    file ``state`` (``resume``: carry on the run recorded there), ``keys`` and ``urls``
    being the target templates (``{name}``...). Credentials come from ``env``
    (``os.environ`` by default). ``transport`` carries the purges instead of the network;
    ``stop_on_signals`` False leaves SIGINT/SIGTERM to the caller. Raises a
    :class:`~purger.errors.PurgerError` for bad input, before anything is sent."""
    templates = parse_templates(keys, urls)
    check_names_match(plan, names, "the names given")
    pace = PaceOptions(rate=rate, concurrency=concurrency)
    outcome, summary = await execute_run(
        plan=plan,
        name_set=names,
        templates=templates,
        options=provider,
        env=os.environ if env is None else env,
        pace=pace,
        settings=RunSettings(workers=plan.settings.workers, max_duration=max_duration),
        state=StateRef(spec=str(state)),
        resume=resume,
        clock=AnyioClock(),
        transport=transport,
        stop_on_signals=stop_on_signals,
    )
    return PurgeResult(outcome=outcome, summary=summary)


async def estimate_purge(
    plan: Plan,
    names: NameSet,
    *,
    provider: ProviderOptions,
    keys: Sequence[str] = (),
    urls: Sequence[str] = (),
    rate: float = _PACE.rate,
    concurrency: int = _PACE.concurrency,
) -> Forecast:
    """How long :func:`purge` with these arguments would take and what bounds it; nothing
    is sent and no credentials are needed (``purger estimate``'s figures)."""
    templates = parse_templates(keys, urls)
    check_names_match(plan, names, "the names given")
    return await forecast_run(
        plan,
        names,
        templates,
        dry_run_options(provider),
        PaceOptions(rate=rate, concurrency=concurrency),
        workers=plan.settings.workers,
        env=DryRunEnv(os.environ),
    )


def read_state(path: str | Path) -> dict[str, object]:
    """What the state file at ``path`` holds, as ``purger status --json`` prints it;
    read-only, so it may be read while a run holds it."""
    with StateStore.open_readonly(Path(path)) as store:
        return status_document(store)
