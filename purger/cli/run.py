"""``purger run``: purge a plan, batched, paced, resumable."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from purger.cli._app import STATE_PANEL, ExitCode, _exit_codes, app
from purger.cli._job import ConfigOpt
from purger.cli._metrics_options import MetricsSettings
from purger.cli._names import plan_and_names
from purger.cli._names_options import (
    NamesOptions,
    PlanNames,
    PlanOrNamesArg,
    RunWorkersOpt,
    Targets,
)
from purger.cli._options import number_value, with_options
from purger.cli._provider_options import ProviderOptions
from purger.cli._run_options import (
    Health,
    LogFormat,
    Output,
    PaceOptions,
    Signals,
    StateOptions,
)
from purger.cli.confirm import Declined, confirm_run, is_interactive, recorded_failures
from purger.cli.estimate import _show_forecast
from purger.cli.session import Output as SessionOutput
from purger.cli.session import RunRequest, run_with_state
from purger.engine.run import RunSettings
from purger.errors import UsageError
from purger.planning.targets import bind_rows, columns_of
from purger.state.sqlite import Failure, holds_run
from purger.state.stores import StateRef


@app.command()
@with_options
def run(
    plan_or_names: PlanOrNamesArg = None,
    *,
    names: NamesOptions,
    plan_names: PlanNames,
    targets: Targets,
    provider: ProviderOptions,
    pace: PaceOptions,
    signals: Signals,
    health: Health,
    state: StateOptions,
    output: Output,
    metrics: MetricsSettings,
    workers: RunWorkersOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Send nothing; print what would be sent and how long.",
            rich_help_panel=STATE_PANEL,
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Purge every name's targets, shard by shard, batched, paced and resumable.

    [b]Example:[/] FASTLY_API_TOKEN=... purger run plan.json --provider fastly
    --service-id SVC --key-template 'project/{name}' --state purge.sqlite
    """
    out = Console()
    err = Console(stderr=True)
    with _exit_codes(err):
        templates = targets.templates()
        wanted = number_value("plan.workers", workers)
        the_plan, name_set = plan_and_names(
            plan_or_names, names, plan_names, workers=wanted, err=err, columns=columns_of(templates)
        )
        templates = bind_rows(templates, name_set.rows)
        settings = RunSettings(
            workers=wanted or the_plan.settings.workers,
            max_duration=state.max_duration,
            drain_timeout=state.drain_timeout,
        )
        if dry_run:
            _show_forecast(
                the_plan,
                name_set,
                templates,
                provider,
                pace,
                workers=settings.workers,
                api_latency=None,
                origin=None,
                as_json=False,
                out=out,
            )
            return
        where, resume = _checked_state(state)
        failures = recorded_failures(where) if state.retry_failed else None
        if state.retry_failed and not failures:
            err.print(f"no failed targets recorded in {where}: nothing to retry")
            raise typer.Exit(ExitCode.OK)
        request = RunRequest(
            state=where,
            resume=resume,
            retry_failed=state.retry_failed,
            plan=the_plan,
            name_set=name_set,
            templates=templates,
            options=provider,
            pace=pace,
            settings=settings,
            signals=signals.specs,
            control=health.control(pace.rate) if signals.specs else None,
            min_rate=health.min_rate,
            metrics=metrics,
        )
        interactive = is_interactive()
        if not output.yes:
            show = interactive or output.log_format is LogFormat.TEXT
            _confirm(request, failures, interactive=interactive, show=show, out=out, err=err)
        code = run_with_state(request, _session_output(output, interactive, out, err))
    raise typer.Exit(code)


def _confirm(
    request: RunRequest,
    failures: list[Failure] | None,
    *,
    interactive: bool,
    show: bool,
    out: Console,
    err: Console,
) -> None:
    """Ask before sending (or refuse without a terminal); a no sends nothing, exit 2."""
    try:
        confirm_run(
            plan=request.plan,
            name_set=request.name_set,
            templates=request.templates,
            options=request.options,
            pace=request.pace,
            workers=request.settings.workers,
            state=request.state,
            resume=request.resume,
            failures=failures,
            interactive=interactive,
            show=show,
            out=out,
        )
    except Declined:
        err.print("nothing sent", highlight=False)
        raise typer.Exit(ExitCode.USAGE) from None


def _checked_state(state: StateOptions) -> tuple[StateRef, bool | None]:
    """The state a run may use and whether it resumes the run there (``None``: a database
    decides when the run opens it: resume the run it holds, else start it), or why not."""
    where = state.state
    if where is None:
        raise UsageError("--state FILE is required: it records progress so nothing is lost")
    if state.retry_failed and (state.resume or state.resume_or_start):
        raise UsageError("--retry-failed and --resume: one at a time")
    resume: bool | None = state.resume
    if state.resume_or_start:
        if state.resume:
            raise UsageError("--resume and --resume-or-start: one at a time")
        # A file that is not a purger state is refused; runners sharing a database start
        # together: the first records the run, the others resume it.
        resume = None if where.shared else holds_run(where.path)
    elif state.resume and not where.shared and not where.path.exists():
        raise UsageError(f"no state at {where} to resume (without --resume a new run starts)")
    return where, resume


def _session_output(output: Output, interactive: bool, out: Console, err: Console) -> SessionOutput:
    return SessionOutput(
        out=out,
        err=err,
        json=output.log_format is LogFormat.JSON,
        live=interactive and output.log_format is LogFormat.TEXT,
        interval=output.progress_interval,
    )
