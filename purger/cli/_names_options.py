"""The option groups of where names come from and what is purged for each: the names
source and how it is cut (``plan``, ``estimate``, ``run``), a plan's moved names, and the
key and URL templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import typer

from purger.cli._app import (
    NAMES_PANEL,
    TARGETS_PANEL,
)
from purger.cli._options import number, number_value, option_group
from purger.names.nameset import Normalization, WeightSpec, WeightTransform
from purger.names.sources import SourceFormat
from purger.planning.plan import PlanSettings
from purger.planning.targets import Template, parse_templates

__all__ = ["NamesOptions", "PlanNames", "PlanOrNamesArg", "SourceOptions", "Targets"]


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


# The flags of a names source, shared by the groups that read one.
NamesUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--names-url",
        help="Read names from a Simple API index (PEP 691 JSON or PEP 503 HTML).",
        metavar="URL",
        rich_help_panel=NAMES_PANEL,
    ),
]
FormatOpt = Annotated[
    SourceFormat,
    typer.Option(
        "--format",
        help="Names file layout; auto reads the suffix.",
        rich_help_panel=NAMES_PANEL,
    ),
]
NameColumnOpt = Annotated[
    str,
    typer.Option(
        "--name-column", help="Table column holding the names.", rich_help_panel=NAMES_PANEL
    ),
]
NormalizeOpt = Annotated[
    Normalization,
    typer.Option(
        "--normalize",
        help="pep503 for PyPI project names, none for other key spaces.",
        rich_help_panel=NAMES_PANEL,
    ),
]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Fail on invalid names instead of skipping them.",
        rich_help_panel=NAMES_PANEL,
    ),
]


@option_group
def _names(
    names_url: NamesUrlOpt = None,
    sample: Annotated[
        bool,
        typer.Option(
            "--sample",
            help="Use the bundled sample of real PyPI names.",
            rich_help_panel=NAMES_PANEL,
        ),
    ] = False,
    fmt: FormatOpt = SourceFormat.AUTO,
    name_column: NameColumnOpt = "name",
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
    normalize: NormalizeOpt = Normalization.PEP503,
    strict: StrictOpt = False,
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
class SourceOptions:
    """How names are read, for commands that neither weigh nor cut them (``scan``,
    ``verify``); ``--sample`` is theirs to declare (``verify`` uses it for a fraction)."""

    names_url: str | None = None
    fmt: SourceFormat = SourceFormat.AUTO
    name_column: str = "name"
    normalization: Normalization = Normalization.PEP503
    strict: bool = False

    def names(self, *, sample: bool = False) -> NamesOptions:
        return NamesOptions(
            names_url=self.names_url,
            sample=sample,
            fmt=self.fmt,
            name_column=self.name_column,
            normalization=self.normalization,
            strict=self.strict,
        )


@option_group
def _source(
    names_url: NamesUrlOpt = None,
    fmt: FormatOpt = SourceFormat.AUTO,
    name_column: NameColumnOpt = "name",
    normalize: NormalizeOpt = Normalization.PEP503,
    strict: StrictOpt = False,
) -> SourceOptions:
    return SourceOptions(
        names_url=names_url,
        fmt=fmt,
        name_column=name_column,
        normalization=normalize,
        strict=strict,
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


#: The first argument of ``scan`` and ``verify`` (``verify``: the run's names).
NamesFileArg = Annotated[
    str | None,
    typer.Argument(help="Names file ('-' for stdin), or use --names-url.", show_default=False),
]
#: ``--workers`` of ``run`` and ``estimate``: how many shards at once, over the plan's.
RunWorkersOpt = Annotated[
    str | None,
    number("plan.workers", "Shards purged at once (default: the plan's).", NAMES_PANEL),
]
#: The first argument of ``run`` and ``estimate``.
PlanOrNamesArg = Annotated[
    str | None,
    typer.Argument(
        help="A plan file from 'purger plan --out', or a names source planned on the fly.",
        show_default=False,
    ),
]


@dataclass(frozen=True, slots=True)
class PlanNames:
    """With a plan file: where its names are now, if they moved (``--names``)."""

    path: str | None = None


@option_group
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


@option_group
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
