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
from typing import Any, Final, TypeVar

import typer
from rich.console import Console

from purger.cli._app import _exit_codes
from purger.config.schema import from_flag, setting_of

__all__ = ["number", "number_value", "option_group", "with_options"]

F = TypeVar("F", bound=Callable[..., Any])
B = TypeVar("B", bound=Callable[..., Any])

#: Each option group's value type and its builder, whose parameters are its flags.
_BUILDERS: Final[dict[type, Callable[..., Any]]] = {}


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


def option_group(builder: B) -> B:
    """Register ``builder`` as the one way to make the value type it returns."""
    value_type = typing.get_type_hints(builder)["return"]
    if value_type in _BUILDERS:
        raise TypeError(f"{value_type.__name__} has a builder already")
    _BUILDERS[value_type] = builder
    return builder


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
