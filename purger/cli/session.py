"""One ``purger run`` once confirmed: the run shown the way the output asks (the live view
with keys on a terminal, progress lines, or JSON lines), then its last words and exit code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial

import anyio
from rich.console import Console

from purger.cli._app import ExitCode
from purger.cli.live import LiveView, cbreak, terminal_keys
from purger.cli.logs import JsonLog, TextLog, progress_line
from purger.engine.monitor import LiveRun
from purger.engine.run import RunOutcome, RunSettings, RunStatus
from purger.errors import StateError
from purger.health.control import ControlSettings, Decision
from purger.health.signals import SignalSpec
from purger.launch.build import PaceOptions
from purger.launch.execute import Presenter, execute_run
from purger.names.nameset import NameSet
from purger.observability.publish import MetricsPublisher, MetricsSettings
from purger.pacing.pacer import AnyioClock
from purger.planning.plan import Plan
from purger.planning.targets import Template
from purger.providers import ProviderOptions
from purger.state.sqlite import StateSummary
from purger.state.stores import StateRef
from purger.ui.report import provider_label

__all__ = ["Output", "RunRequest", "run_with_state"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRequest:
    """What to run: the plan, where, against what, how fast, and in which mode."""

    state: StateRef
    #: ``None``: resume the run the state holds, else start it (runners sharing a database).
    resume: bool | None
    retry_failed: bool
    plan: Plan
    name_set: NameSet
    templates: Sequence[Template]
    options: ProviderOptions
    pace: PaceOptions
    settings: RunSettings
    signals: Sequence[SignalSpec]
    control: ControlSettings | None
    min_rate: float
    #: Where the run's own metrics go; nowhere by default.
    metrics: MetricsSettings = field(default_factory=MetricsSettings)


@dataclass(frozen=True, slots=True, kw_only=True)
class Output:
    """How to show it: ``live`` (a terminal: the live view and keys), else ``json`` lines on
    stdout or text lines on stderr, every ``interval`` seconds."""

    out: Console
    err: Console
    json: bool
    live: bool
    interval: float


def run_with_state(request: RunRequest, output: Output) -> int:
    """Run ``request``, shown as ``output`` says; the exit code."""
    err = output.err
    text = TextLog(err, output.interval)
    json_log = JsonLog(sys.stdout, output.interval) if output.json else None
    present: Presenter
    terminal: AbstractContextManager[None] = nullcontext()
    if json_log is not None:
        present, on_decision = json_log.presenter(), json_log.decision
    elif output.live:
        fd = sys.stdin.fileno()
        title = (
            f"purger {'retry of failed targets' if request.retry_failed else 'run'}: "
            f"{provider_label(request.options)}, state {request.state}"
        )
        present = LiveView(output.out, title, terminal_keys(fd)).presenter()
        terminal = cbreak(fd)

        def on_decision(decision: Decision) -> None:
            del decision  # the view shows the controller's last decision

    else:
        present, on_decision = text.presenter(), text.decision

    def on_resume(summary: StateSummary) -> None:
        if json_log is None:
            text.say(
                f"resuming {request.state}: {summary.shards_done}/{summary.shards} shards done, "
                f"{summary.targets_done:,} targets purged"
            )

    publisher = None
    if request.metrics.wanted:
        soft = "hard" if request.options.hard else "soft"
        publisher = MetricsPublisher(request.metrics, provider=request.options.name, purge=soft)
        publisher.start()  # a port in use is a usage error, before anything is sent
        present = alongside(present, publisher.present)
    try:
        try:
            with terminal:
                outcome, total = _run(request, present, on_resume, on_decision)
        except StateError as error:
            if not error.resumable:
                raise  # before anything was sent: could not start (exit 4)
            return _state_failed(error, output.err, json_log)
        return _last_words(request, output, text, json_log, outcome, total)
    finally:
        if publisher is not None:  # after the last words: the linger serves final figures
            publisher.close()


def alongside(*presenters: Presenter) -> Presenter:
    """One presenter running ``presenters`` together (the run cancels it when it ends)."""

    async def present(live: LiveRun) -> None:
        async with anyio.create_task_group() as group:
            for each in presenters:
                group.start_soon(each, live)

    return present


def _run(
    request: RunRequest,
    present: Presenter,
    on_resume: Callable[[StateSummary], None],
    on_decision: Callable[[Decision], None],
) -> tuple[RunOutcome, StateSummary]:
    return anyio.run(
        partial(
            execute_run,
            plan=request.plan,
            name_set=request.name_set,
            templates=request.templates,
            options=request.options,
            env=os.environ,
            pace=request.pace,
            settings=request.settings,
            state=request.state,
            resume=request.resume,
            clock=AnyioClock(),
            present=present,
            on_resume=on_resume,
            signals=request.signals,
            control=request.control,
            on_decision=on_decision,
            retry_failed=request.retry_failed,
            min_rate=request.min_rate,
        )
    )


def _state_failed(error: StateError, err: Console, json_log: JsonLog | None) -> int:
    """The state could not be written mid-run: the run stopped at once, resumable; one
    line on stderr (and the last JSON event) says which file and why."""
    if json_log is not None:
        json_log.emit("stop", reason=str(error), resumable=True, status="stopped", exit_code=3)
    err.print(f"purger: error: {error}", highlight=False, markup=False, soft_wrap=True)
    return ExitCode.STOPPED


def _last_words(
    request: RunRequest,
    output: Output,
    text: TextLog,
    json_log: JsonLog | None,
    outcome: RunOutcome,
    total: StateSummary,
) -> int:
    """The run's last lines (text or JSON) and its exit code."""
    code = _exit_code(outcome, total)
    if json_log is not None:
        if _nothing_purged(outcome):
            json_log.emit("warning", message=_empty_warning(request.options.name, outcome))
        json_log.end(outcome, code, failures=total.failures, targets=total.targets_done)
        return code
    if not output.live:
        text.say(progress_line(outcome.statistics))
    if _nothing_purged(outcome):
        text.say(f"warning: {_empty_warning(request.options.name, outcome)}")
    path = request.state
    if outcome.status is RunStatus.STOPPED:
        again = "--retry-failed" if request.retry_failed else "--resume"
        text.say(f"stopped: {outcome.reason}; resume with {again} {path.as_flags()}")
    elif request.retry_failed:
        retried = outcome.statistics.targets
        if total.failures:
            text.say(
                f"done: {retried:,} purged; {total.failures:,} failed again (listed in {path})"
            )
        else:
            text.say(f"done: {retried:,} failed targets purged; none left in {path}")
    elif total.failures:
        text.say(f"done, but {total.failures:,} targets failed (listed in {path})")
    else:
        text.say(f"done: {total.targets_done:,} targets purged")
    return code


def _exit_code(outcome: RunOutcome, total: StateSummary) -> int:
    if outcome.status is RunStatus.STOPPED:
        return ExitCode.STOPPED
    if total.failures:
        return ExitCode.FAILED_TARGETS
    return ExitCode.OK


def _nothing_purged(outcome: RunOutcome) -> bool:
    stats = outcome.statistics
    return bool(stats.batches) and stats.empty_batches == stats.batches


def _empty_warning(provider: str, outcome: RunOutcome) -> str:
    return (
        f"{provider} purged no object in any of the {outcome.statistics.batches:,} calls: "
        "if the objects were cached, check the templates (and the Host of URL templates)"
    )
