"""The typer app, exit codes, one-line errors (purger's own and click's), the help panels,
and the health-signal options ``run`` and ``probe`` share.

Exit codes (``../shared/DESIGN.md``): 0 done; 1 finished with failed targets; 2 usage,
config or input error; 3 stopped early and resumable; 4 could not start.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, Final, Protocol, cast

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from purger import __version__
from purger.config.job import load_signals
from purger.errors import PurgerError, UnavailableError, UsageError
from purger.health.signals import SignalSpec, parse_signal

# The help panels a command's options are grouped in (``purger run --help``).
NAMES_PANEL: Final = "Names and shards"
TARGETS_PANEL: Final = "Targets"
PROVIDER_PANEL: Final = "Provider"
PACE_PANEL: Final = "Pace"
HEALTH_PANEL: Final = "Health"
STATE_PANEL: Final = "State"
OUTPUT_PANEL: Final = "Output"
MODEL_PANEL: Final = "Model"


class ExitCode(IntEnum):
    OK = 0
    FAILED_TARGETS = 1
    USAGE = 2
    STOPPED = 3
    CANNOT_START = 4


class _ClickError(Protocol):
    exit_code: int

    def format_message(self) -> str: ...


#: click's base error, reached through typer: typer 0.29 vendors click as ``typer._click``,
#: earlier releases depend on click itself, and ``typer.BadParameter`` derives from it in both.
_CLICK_ERROR: Final = next(k for k in typer.BadParameter.__mro__ if k.__name__ == "ClickException")


def _print_error(message: str) -> None:
    Console(stderr=True).print(message, highlight=False, markup=False, soft_wrap=True)


class _OneLineErrors(TyperGroup):
    """click's own usage errors (a bad value, an unknown option, a missing argument) as
    purger's: one line ``purger: error: ...`` and exit 2, instead of a boxed panel."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _click_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _click_errors():
            return super().invoke(ctx)


@contextmanager
def _click_errors() -> Iterator[None]:
    try:
        yield
    except Exception as error:
        # No arguments at all shows the help, which click raises as a usage error too.
        if not isinstance(error, _CLICK_ERROR) or type(error).__name__ == "NoArgsIsHelpError":
            raise
        message = " ".join(cast(_ClickError, error).format_message().split())
        _print_error(f"purger: error: {message}")
        raise typer.Exit(ExitCode.USAGE) from None


app = typer.Typer(
    name="purger",
    cls=_OneLineErrors,
    help="Rate-limited, sharded mass cache purges: plan, estimate, run.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold tokens
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"purger {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Rate-limited, sharded mass cache purges: plan, estimate, run."""


@contextmanager
def _exit_codes(err: Console) -> Iterator[None]:
    """Turn purger's errors into one line on stderr and the documented exit code."""
    try:
        yield
    except UsageError as error:
        err.print(f"purger: error: {error}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(ExitCode.USAGE) from None
    except UnavailableError as error:
        err.print(f"purger: cannot start: {error}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(ExitCode.CANNOT_START) from None
    except PurgerError as error:  # a new branch of the tree without a code yet: still one line
        err.print(f"purger: error: {error}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(ExitCode.USAGE) from None


# Help text goes through rich markup (the commands' examples use [b]); literal brackets
# such as TOML's [[signal]] are escaped, or rich would take them for tags and drop them.
SignalOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--signal",
        help="A health signal, e.g. 'name=p99,source=scrape,url=http://origin:8000/metrics,"
        "limit=0.5,critical=2,kind=latency,query=origin_request_latency_p99_seconds' (repeat).",
        rich_help_panel=HEALTH_PANEL,
    ),
]
SignalsFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--signals",
        help=escape("TOML file of [[signal]] tables."),
        metavar="FILE",
        rich_help_panel=HEALTH_PANEL,
    ),
]


def _signals(texts: Sequence[str] | None, path: Path | None) -> tuple[SignalSpec, ...]:
    specs = [parse_signal(text) for text in texts or ()]
    if path is not None:
        specs += load_signals(path)
    return tuple(specs)


def main() -> None:
    """Console-script entry point."""
    app()
