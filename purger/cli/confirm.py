"""Before ``purger run`` sends anything: what it is about to do, and ``Proceed? [y/N]``.

On a terminal the operator answers; without one (cron, CI) nothing can answer, so the run
does not start unless ``--yes`` was given: it prints the summary and exits 2, never hangs.
Every run that sends confirms, a ``--resume`` and a ``--retry-failed`` too: they may come
hours after the first, when the incident looks different (docs/cli.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from functools import partial

import anyio
from rich.console import Console
from rich.text import Text

from purger.errors import UsageError
from purger.launch.build import PaceOptions
from purger.launch.forecast import forecast_run
from purger.names.nameset import NameSet
from purger.planning.plan import Plan
from purger.planning.targets import Template
from purger.providers import ProviderOptions
from purger.state.sqlite import Failure
from purger.state.stores import StateRef
from purger.ui.report import provider_label, render_summary

__all__ = ["Declined", "ask", "confirm_run", "is_interactive", "recorded_failures"]


class Declined(Exception):
    """The operator answered no: nothing was sent."""


def is_interactive() -> bool:
    """Both ends are a terminal: someone can answer a prompt and press keys."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def ask(console: Console, read: Callable[[str], str] | None = None) -> bool:
    """``Proceed? [y/N]``: yes only for y or yes; Enter, anything else, EOF or Ctrl-C is
    no (nothing was sent either way)."""
    prompt = "Proceed? [y/N] "
    try:
        answer = read(prompt) if read is not None else console.input(Text(prompt))
    except (EOFError, KeyboardInterrupt):
        return False
    return answer.strip().lower() in ("y", "yes")


def recorded_failures(state: StateRef) -> list[Failure]:
    """The failures a state records, read without its lock (a run may hold it)."""
    with state.open(readonly=True) as store:
        return store.failures()


def confirm_run(
    *,
    plan: Plan,
    name_set: NameSet,
    templates: Sequence[Template],
    options: ProviderOptions,
    pace: PaceOptions,
    workers: int,
    state: StateRef,
    resume: bool | None,
    failures: Sequence[Failure] | None,
    interactive: bool,
    show: bool,
    out: Console,
) -> None:
    """Show the summary (unless ``show`` is off: JSON logs), then ask on a terminal; raise
    :class:`Declined` on no, and :class:`UsageError` without a terminal."""
    # The real environment: missing credentials are a usage error before the question.
    result = anyio.run(
        partial(
            forecast_run,
            plan,
            name_set,
            templates,
            options,
            pace,
            workers=workers,
            env=os.environ,
            failures=failures,
        )
    )
    if show:
        render_summary(
            out,
            action=_action(plan, state, resume, failures),
            provider=provider_label(options),
            soft=result.soft,
            templates=[t.text for t in templates],
            state=str(state),
            forecast=result,
        )
    if not interactive:
        raise UsageError("nothing was sent: without a terminal to confirm on, pass --yes to purge")
    if not ask(out):
        raise Declined


def _action(
    plan: Plan, state: StateRef, resume: bool | None, failures: Sequence[Failure] | None
) -> str:
    if failures is not None:
        return f"retry {len(failures):,} failed targets recorded in {state}"
    names = f"{plan.total_count:,} names in {len(plan.shards)} shards"
    if resume and (state.shared or state.path.exists()):
        with state.open(readonly=True) as store:
            summary = store.summary()
        if summary.shards:
            return (
                f"resume {names}: {summary.shards_done}/{summary.shards} shards done, "
                f"{summary.targets_done:,} targets purged already"
            )
    return names
