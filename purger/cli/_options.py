"""Options as values: each group of options the commands share (names, targets, provider,
pace, health, state, output) is one frozen value, built once from its flags by
:func:`with_options` and passed to the command whole.

A group is declared once, by its builder: a function whose typer-annotated parameters are
the group's flags and which returns the value. A command asks for a group by annotating a
parameter with the value's type; :func:`with_options` puts the builder's flags in the
command's signature in its place, and at call time builds the value from them.

Every number is read from its flag's text by the schema, as its ``PURGER_*`` variable's
text is (``config.schema.from_flag``), and checked against the same bounds, so that the
flag, the variable and the job file give the same message. Number options are therefore
declared as text, their metavar saying what they take.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar

import typer
from rich.console import Console

from purger.cli._app import (
    HEALTH_PANEL,
    NAMES_PANEL,
    OUTPUT_PANEL,
    PACE_PANEL,
    PROVIDER_PANEL,
    STATE_PANEL,
    TARGETS_PANEL,
    SignalOpt,
    SignalsFileOpt,
    _exit_codes,
    _signals,
)
from purger.config.schema import from_flag, setting_of
from purger.errors import UsageError
from purger.health.control import ControlSettings
from purger.health.signals import SignalSpec
from purger.launch.build import PaceOptions
from purger.names.nameset import Normalization, WeightSpec, WeightTransform
from purger.names.sources import SourceFormat
from purger.planning.plan import PlanSettings
from purger.planning.targets import Template, parse_templates
from purger.providers import PROVIDER_NAMES, ProviderOptions

__all__ = [
    "Health",
    "NamesOptions",
    "Output",
    "StateOptions",
    "Targets",
    "number",
    "number_value",
    "with_options",
]

F = TypeVar("F", bound=Callable[..., Any])


def number(key: str, help: str, panel: str | None = None) -> Any:
    """The typer option of a numeric setting: read as text, checked by the schema."""
    setting = setting_of(key)
    return typer.Option(
        setting.flag,
        help=help,
        metavar="INTEGER" if setting.kind == "int" else "FLOAT",
        rich_help_panel=panel,
    )


def number_value(key: str, text: str | None) -> Any:
    """A numeric flag's value (``None``: not given), checked as its key is; the type is
    the setting's (``int`` or ``float``)."""
    return from_flag(setting_of(key), text)


class Network(StrEnum):
    STAGING = "staging"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class AkamaiAction(StrEnum):
    INVALIDATE = "invalidate"
    DELETE = "delete"


class AkamaiKeyType(StrEnum):
    TAG = "tag"
    CPCODE = "cpcode"


@dataclass(frozen=True, slots=True, kw_only=True)
class NamesOptions:
    """How names are read (besides the source argument) and cut into shards."""

    names_url: str | None = None
    sample: bool = False
    fmt: SourceFormat = SourceFormat.AUTO
    name_column: str = "name"
    weight: WeightSpec = field(default_factory=WeightSpec)
    normalization: Normalization = Normalization.PEP503
    strict: bool = False
    shards: int | None = None
    max_weight: float | None = None

    def plan_settings(self, workers: int | None) -> PlanSettings:
        """How to cut a names source planned on the fly (16 workers unless given)."""
        return PlanSettings(workers=workers or 16, shards=self.shards, max_weight=self.max_weight)


def _names(
    names_url: Annotated[
        str | None,
        typer.Option(
            "--names-url",
            help="Read names from a PEP 691 Simple API index (JSON).",
            metavar="URL",
            rich_help_panel=NAMES_PANEL,
        ),
    ] = None,
    sample: Annotated[
        bool,
        typer.Option(
            "--sample",
            help="Use the bundled sample of real PyPI names.",
            rich_help_panel=NAMES_PANEL,
        ),
    ] = False,
    fmt: Annotated[
        SourceFormat,
        typer.Option(
            "--format",
            help="Names file layout; auto reads the suffix.",
            rich_help_panel=NAMES_PANEL,
        ),
    ] = SourceFormat.AUTO,
    name_column: Annotated[
        str,
        typer.Option(
            "--name-column", help="Table column holding the names.", rich_help_panel=NAMES_PANEL
        ),
    ] = "name",
    weight_column: Annotated[
        str | None,
        typer.Option(
            "--weight-column",
            help="Table column holding weights (default: every name weighs 1).",
            rich_help_panel=NAMES_PANEL,
        ),
    ] = None,
    weight_transform: Annotated[
        WeightTransform,
        typer.Option(
            "--weight-transform",
            help="zipf-rank: the column is a popularity rank; weight 1/rank.",
            rich_help_panel=NAMES_PANEL,
        ),
    ] = WeightTransform.NONE,
    normalize: Annotated[
        Normalization,
        typer.Option(
            "--normalize",
            help="pep503 for PyPI project names, none for other key spaces.",
            rich_help_panel=NAMES_PANEL,
        ),
    ] = Normalization.PEP503,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Fail on invalid names instead of skipping them.",
            rich_help_panel=NAMES_PANEL,
        ),
    ] = False,
    shards: Annotated[
        str | None,
        number("plan.shards", "About this many shards (default: 8 per worker).", NAMES_PANEL),
    ] = None,
    max_weight: Annotated[
        str | None,
        number("plan.max_weight", "Instead of --shards: no shard heavier than this.", NAMES_PANEL),
    ] = None,
) -> NamesOptions:
    return NamesOptions(
        names_url=names_url,
        sample=sample,
        fmt=fmt,
        name_column=name_column,
        weight=WeightSpec(column=weight_column, transform=weight_transform),
        normalization=normalize,
        strict=strict,
        shards=number_value("plan.shards", shards),
        max_weight=number_value("plan.max_weight", max_weight),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Targets:
    """The key and URL templates as given (parsed by :meth:`templates`)."""

    key_templates: tuple[str, ...] = ()
    url_templates: tuple[str, ...] = ()

    def templates(self, default_keys: tuple[str, ...] = ()) -> tuple[Template, ...]:
        """The templates, checked; ``default_keys`` when none at all is given."""
        keys = self.key_templates or (() if self.url_templates else default_keys)
        return parse_templates(keys, self.url_templates)


@dataclass(frozen=True, slots=True)
class PlanNames:
    """With a plan file: where its names are now, if they moved (``--names``)."""

    path: str | None = None


def _plan_names(
    names_file: Annotated[
        str | None,
        typer.Option(
            "--names",
            help="With a plan file: where its names are, if moved.",
            metavar="FILE",
            rich_help_panel=NAMES_PANEL,
        ),
    ] = None,
) -> PlanNames:
    return PlanNames(names_file)


def _targets(
    key_template: Annotated[
        list[str] | None,
        typer.Option(
            "--key-template",
            help="Surrogate key per name, e.g. 'project/{name}' (repeat).",
            rich_help_panel=TARGETS_PANEL,
        ),
    ] = None,
    url_template: Annotated[
        list[str] | None,
        typer.Option(
            "--url-template",
            help="URL per name, e.g. 'https://pypi.org/pypi/{name}/json' (repeat).",
            rich_help_panel=TARGETS_PANEL,
        ),
    ] = None,
) -> Targets:
    return Targets(key_templates=tuple(key_template or ()), url_templates=tuple(url_template or ()))


def _provider(
    provider_name: Annotated[
        str,
        typer.Option(
            "--provider",
            help=f"CDN API: {', '.join(PROVIDER_NAMES)}.",
            show_default=False,
            rich_help_panel=PROVIDER_PANEL,
        ),
    ] = "",
    api_base: Annotated[
        str | None,
        typer.Option(
            "--api-base",
            help="Send API calls here (a proxy or a fake).",
            rich_help_panel=PROVIDER_PANEL,
        ),
    ] = None,
    hard: Annotated[
        bool,
        typer.Option(
            "--hard",
            help="Hard purge (evict) instead of the default soft purge.",
            rich_help_panel=PROVIDER_PANEL,
        ),
    ] = False,
    timeout: Annotated[
        str, number("provider.timeout", "Seconds for each API call.", PROVIDER_PANEL)
    ] = "10",
    service_id: Annotated[
        str | None,
        typer.Option("--service-id", help="Fastly service.", rich_help_panel=PROVIDER_PANEL),
    ] = None,
    zone_id: Annotated[
        str | None,
        typer.Option("--zone-id", help="Cloudflare zone.", rich_help_panel=PROVIDER_PANEL),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="File holding the Fastly or Cloudflare API token (instead of its variable).",
            metavar="FILE",
            rich_help_panel=PROVIDER_PANEL,
        ),
    ] = None,
    files_cap: Annotated[
        str,
        number("provider.files_cap", "Cloudflare URLs per call: 30, 100 or 500.", PROVIDER_PANEL),
    ] = "30",
    edgerc: Annotated[
        Path | None,
        typer.Option(
            "--edgerc", help="Akamai credentials file (~/.edgerc).", rich_help_panel=PROVIDER_PANEL
        ),
    ] = None,
    edgerc_section: Annotated[
        str,
        typer.Option(
            "--edgerc-section", help="Section of --edgerc.", rich_help_panel=PROVIDER_PANEL
        ),
    ] = "default",
    network: Annotated[
        Network,
        typer.Option("--network", help="Akamai network.", rich_help_panel=PROVIDER_PANEL),
    ] = Network.PRODUCTION,
    akamai_action: Annotated[
        AkamaiAction,
        typer.Option(
            "--akamai-action",
            help="Akamai: invalidate (soft) or delete.",
            rich_help_panel=PROVIDER_PANEL,
        ),
    ] = AkamaiAction.INVALIDATE,
    akamai_key_type: Annotated[
        AkamaiKeyType,
        typer.Option(
            "--akamai-key-type",
            help="Akamai keys are tags or cpcodes.",
            rich_help_panel=PROVIDER_PANEL,
        ),
    ] = AkamaiKeyType.TAG,
    endpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--endpoint",
            help="Varnish node http://host:port (repeat for each node).",
            rich_help_panel=PROVIDER_PANEL,
        ),
    ] = None,
    key_header: Annotated[
        str | None,
        typer.Option(
            "--key-header",
            help="Varnish header for keys (xkey-softpurge / xkey-purge).",
            rich_help_panel=PROVIDER_PANEL,
        ),
    ] = None,
) -> ProviderOptions:
    if api_base is not None:
        from_flag(setting_of("provider.api_base"), api_base)  # a URL, checked as the key's
    for node in endpoint or ():
        from_flag(setting_of("provider.endpoints"), node)
    if not provider_name:
        raise UsageError("--provider is required")
    return ProviderOptions(
        name=provider_name,
        api_base=api_base,
        hard=hard,
        timeout=number_value("provider.timeout", timeout),
        service_id=service_id,
        zone_id=zone_id,
        token_file=token_file,
        files_cap=number_value("provider.files_cap", files_cap),
        edgerc=edgerc,
        edgerc_section=edgerc_section,
        network=network.value,
        akamai_action=akamai_action.value,
        akamai_key_type=akamai_key_type.value,
        endpoints=tuple(endpoint or ()),
        key_header=key_header,
    )


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


def _signal_specs(signal: SignalOpt = None, signals_file: SignalsFileOpt = None) -> Signals:
    return Signals(_signals(signal, signals_file))


@dataclass(frozen=True, slots=True, kw_only=True)
class StateOptions:
    """Where progress is recorded, whether to pick a run up again, and when to stop."""

    path: Path | None = None
    resume: bool = False
    retry_failed: bool = False
    max_duration: float | None = None
    drain_timeout: float = 30.0


def _state(
    state_file: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="SQLite file recording progress (required).",
            metavar="FILE",
            rich_help_panel=STATE_PANEL,
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue the run recorded in --state.", rich_help_panel=STATE_PANEL
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
    return StateOptions(
        path=state_file,
        resume=resume,
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


#: Each option group's value type and its builder, whose parameters are its flags.
_BUILDERS: Final[dict[type, Callable[..., Any]]] = {
    NamesOptions: _names,
    PlanNames: _plan_names,
    Targets: _targets,
    ProviderOptions: _provider,
    PaceOptions: _pace,
    Health: _health,
    Signals: _signal_specs,
    StateOptions: _state,
    Output: _output,
}


def with_options(command: F) -> F:
    """Put in ``command``'s signature, for each parameter whose type is an option group,
    that group's flags; call it with the group's value, built from them.

    Typer reads the signature, so the flags are declared once, by the builders, and every
    command taking a group shows and parses them alike. A group's value is built inside
    :func:`_exit_codes`: a bad flag is one line and exit 2, before the command starts.
    """
    hints = typing.get_type_hints(command, include_extras=True)
    params: list[inspect.Parameter] = []
    groups: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {}
    for param in inspect.signature(command).parameters.values():
        builder = _BUILDERS.get(hints.get(param.name))  # type: ignore[arg-type]
        if builder is None:
            params.append(param.replace(annotation=hints.get(param.name, param.annotation)))
            continue
        flags = _flags_of(builder)
        groups[param.name] = (builder, tuple(flag.name for flag in flags))
        params += flags
    names = [param.name for param in params] + list(groups)
    if len(names) != len(set(names)):  # a programming error, found at import
        raise TypeError(f"{command.__name__}: a flag's parameter name is used twice")

    @functools.wraps(command)
    def build_and_call(**kwargs: Any) -> Any:
        with _exit_codes(Console(stderr=True)):
            for name, (builder, flag_names) in groups.items():
                kwargs[name] = builder(**{flag: kwargs.pop(flag) for flag in flag_names})
        return command(**kwargs)

    build_and_call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        sorted(params, key=lambda p: p.kind)
    )
    build_and_call.__annotations__ = {p.name: p.annotation for p in params}
    return typing.cast(F, build_and_call)


@functools.cache
def _flags_of(builder: Callable[..., Any]) -> tuple[inspect.Parameter, ...]:
    """A builder's parameters, keyword-only, their annotations evaluated (typer reads them)."""
    hints = typing.get_type_hints(builder, include_extras=True)
    return tuple(
        param.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[param.name])
        for param in inspect.signature(builder).parameters.values()
    )
