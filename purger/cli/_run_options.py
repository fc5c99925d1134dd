"""The option groups of how a run goes: pace, health (the controller and its signals),
state, and output."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from purger.cli._app import (
    HEALTH_PANEL,
    OUTPUT_PANEL,
    PACE_PANEL,
    STATE_PANEL,
    SignalOpt,
    SignalsFileOpt,
    _signals,
)
from purger.cli._options import number, number_value, option_group
from purger.errors import UsageError
from purger.health.control import ControlSettings
from purger.health.signals import SignalSpec
from purger.launch.build import PaceOptions
from purger.state.stores import StateRef

__all__ = ["Health", "LogFormat", "Output", "PaceOptions", "Signals", "StateOptions"]


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


@option_group
def _pace(
    rate: Annotated[
        str,
        number(
            "pacing.max_rate",
            "Targets per second at most ('inf': the provider's limits only).",
            PACE_PANEL,
        ),
    ] = "500",
    concurrency: Annotated[
        str, number("pacing.concurrency", "API calls in flight at most (256 at most).", PACE_PANEL)
    ] = "8",
) -> PaceOptions:
    return PaceOptions(
        rate=number_value("pacing.max_rate", rate),
        concurrency=number_value("pacing.concurrency", concurrency),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    """The controller that health signals drive; ``--rate`` stays its ceiling."""

    min_rate: float = 1.0
    initial_rate: float | None = None
    feedback_delay: float = 60.0
    tick: float = 5.0

    def control(self, rate: float) -> ControlSettings:
        """The controller under ``rate``: health only ever slows below it."""
        return ControlSettings(
            initial_rate=self.initial_rate if self.initial_rate is not None else min(50.0, rate),
            min_rate=self.min_rate,
            max_rate=rate,
            feedback_delay=self.feedback_delay,
            tick=self.tick,
        )


@option_group
def _health(
    feedback_delay: Annotated[
        str,
        number(
            "pacing.feedback_delay",
            "With signals: seconds from a purge to its effect on the metrics (refill + lag).",
            HEALTH_PANEL,
        ),
    ] = "60",
    tick: Annotated[
        str, number("pacing.tick", "With signals: seconds between health readings.", HEALTH_PANEL)
    ] = "5",
    min_rate: Annotated[
        str, number("pacing.min_rate", "With signals: never slower than this.", HEALTH_PANEL)
    ] = "1",
    initial_rate: Annotated[
        str | None,
        number(
            "pacing.initial_rate",
            "With signals: start here (default: min(50, --rate)).",
            HEALTH_PANEL,
        ),
    ] = None,
) -> Health:
    return Health(
        min_rate=number_value("pacing.min_rate", min_rate),
        initial_rate=number_value("pacing.initial_rate", initial_rate),
        feedback_delay=number_value("pacing.feedback_delay", feedback_delay),
        tick=number_value("pacing.tick", tick),
    )


@dataclass(frozen=True, slots=True)
class Signals:
    """The health signals a run reads (none: it is paced by ``--rate`` alone)."""

    specs: tuple[SignalSpec, ...] = ()


@option_group
def _signal_specs(signal: SignalOpt = None, signals_file: SignalsFileOpt = None) -> Signals:
    return Signals(_signals(signal, signals_file))


@dataclass(frozen=True, slots=True, kw_only=True)
class StateOptions:
    """Where progress is recorded, whether to pick a run up again, and when to stop."""

    #: A file, or a run in a database several runners share; ``None``: not given.
    state: StateRef | None = None
    resume: bool = False
    #: Cron jobs: continue the run the state holds, or start one if it holds none.
    resume_or_start: bool = False
    retry_failed: bool = False
    max_duration: float | None = None
    drain_timeout: float = 30.0


@option_group
def _state(
    state_spec: Annotated[
        str | None,
        typer.Option(
            "--state",
            help="SQLite file recording progress (required), or postgresql://user@host:port/db"
            " for a run several runners share.",
            metavar="FILE|URL",
            rich_help_panel=STATE_PANEL,
        ),
    ] = None,
    run_name: Annotated[
        str | None,
        typer.Option(
            "--run-name",
            help="With a postgresql:// state: the run (name or id) in the database"
            " (default: 'default').",
            rich_help_panel=STATE_PANEL,
        ),
    ] = None,
    state_password_file: Annotated[
        Path | None,
        typer.Option(
            "--state-password-file",
            help="With a postgresql:// state: a file whose first line is the password"
            " (else PGPASSWORD or a passfile).",
            metavar="FILE",
            rich_help_panel=STATE_PANEL,
        ),
    ] = None,
    lease_ttl: Annotated[
        str,
        number(
            "run.lease_ttl",
            "With a postgresql:// state: seconds a runner holds a shard without a heartbeat.",
            STATE_PANEL,
        ),
    ] = "30",
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue the run recorded in --state.", rich_help_panel=STATE_PANEL
        ),
    ] = False,
    resume_or_start: Annotated[
        bool,
        typer.Option(
            "--resume-or-start",
            help="Continue the run in --state if it holds one, else start it (cron jobs).",
            rich_help_panel=STATE_PANEL,
        ),
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Purge again the targets --state records as failed (same run options).",
            rich_help_panel=STATE_PANEL,
        ),
    ] = False,
    max_duration: Annotated[
        str | None,
        number("run.max_duration", "Stop cleanly (exit 3, resumable) after SECONDS.", STATE_PANEL),
    ] = None,
    drain_timeout: Annotated[
        str,
        number("run.drain_timeout", "On a stop, seconds to wait for calls in flight.", STATE_PANEL),
    ] = "30",
) -> StateOptions:
    state = None
    if state_spec is not None:
        state = StateRef(
            spec=state_spec,
            run=run_name,
            password_file=state_password_file,
            lease_ttl=number_value("run.lease_ttl", lease_ttl),
        )
    elif run_name is not None or state_password_file is not None:
        raise UsageError("--run-name and --state-password-file need --state postgresql://...")
    return StateOptions(
        state=state,
        resume=resume,
        resume_or_start=resume_or_start,
        retry_failed=retry_failed,
        max_duration=number_value("run.max_duration", max_duration),
        drain_timeout=number_value("run.drain_timeout", drain_timeout),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Output:
    """How a run is shown and whether it asks first."""

    yes: bool = False
    log_format: LogFormat = LogFormat.TEXT
    progress_interval: float = 10.0


@option_group
def _output(
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Do not ask before sending (needed without a terminal).",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = False,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            help="text: the live view on a terminal, else progress lines on stderr; "
            "json: one JSON object a line on stdout.",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = LogFormat.TEXT,
    progress_interval: Annotated[
        str,
        number(
            "run.progress_interval",
            "Seconds between progress lines (or JSON events).",
            OUTPUT_PANEL,
        ),
    ] = "10",
) -> Output:
    return Output(
        yes=yes,
        log_format=log_format,
        progress_interval=number_value("run.progress_interval", progress_interval),
    )
