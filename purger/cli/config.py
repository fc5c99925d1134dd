"""``purger config check`` and ``purger config show``: a job file, checked offline.

Neither sends anything, opens a connection, or writes a file (the state file included).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from purger.cli._app import ExitCode, _exit_codes, app
from purger.config.job import Job, collect_job
from purger.config.schema import SETTINGS, Value
from purger.launch.preflight import check_job
from purger.model import redact_url
from purger.providers import TOKEN_VARIABLES

config_app = typer.Typer(
    name="config",
    help="Check or show a job file (--config FILE) without sending anything.",
    no_args_is_help=True,
)
app.add_typer(config_app)

FileArg = Annotated[
    Path, typer.Argument(help="The job file (TOML).", metavar="FILE", show_default=False)
]


def _print(console: Console, text: str) -> None:
    console.print(text, highlight=False, markup=False, soft_wrap=True)


@config_app.command()
def check(file: FileArg) -> None:
    """Check a job file and the PURGER_* variables: every value, then what they point
    to (names file, templates, provider id and token, state directory, signals).
    Exit 0 when purger run --config FILE could start, 2 with every problem otherwise.

    [b]Example:[/] FASTLY_API_TOKEN=... purger config check purger.toml
    """
    out = Console()
    err = Console(stderr=True)
    with _exit_codes(err):
        job, bad = collect_job(file, os.environ)
        findings = check_job(job, os.environ)
        named = {problem.key for problem in bad}
        # A bad value was left out of the job: what it would have pointed to is not news.
        problems = [*bad, *(p for p in findings.problems if p.key not in named)]
        for problem in problems:
            _print(err, f"purger: error: {problem.text}")
        for note in findings.notes:
            _print(err, f"note: {note}")
        if problems:
            raise typer.Exit(ExitCode.USAGE)
        for line in _summary(job):
            _print(out, line)


def _summary(job: Job) -> list[str]:
    """A few lines an operator can compare with what they meant."""
    values = job.values
    name = values.get("provider.name")
    templates = [
        *_strings(values.get("targets.key_templates")),
        *_strings(values.get("targets.url_templates")),
    ]
    names = values.get("names.source") or (
        "the bundled sample" if values.get("names.sample") else None
    )
    lines = [
        f"{job.path}: valid",
        f"  names: {_without_userinfo(str(names or values.get('plan.file')))}",
        f"  targets: {', '.join(templates)}",
        f"  provider: {name}{_credential(job)}",
        f"  pacing: {_shown(values.get('pacing.max_rate'), 'default')} targets/s at most, "
        f"{len(job.signals)} signal{'s' if len(job.signals) != 1 else ''}",
        f"  state: {_without_userinfo(str(values.get('run.state')))}",
    ]
    from_env = sorted(s.variable for s in SETTINGS if job.origins.get(s.key) == "env")
    if from_env:
        lines.append(f"  from the environment: {', '.join(from_env)}")
    return lines


def _credential(job: Job) -> str:
    """Where the token will come from; never the token."""
    variable = TOKEN_VARIABLES.get(str(job.values.get("provider.name")))
    if variable is None:
        return ""
    token_file = job.values.get("provider.token_file")
    return f", token from {token_file}" if token_file else f", token from {variable}"


def _without_userinfo(text: str) -> str:
    """A URL setting as shown (``--api-base``, ``--endpoint``, a names URL): user name and
    password masked and query dropped, since a job file may hold a proxy's credentials."""
    return " ".join(redact_url(word) if "://" in word else word for word in text.split(" "))


def _strings(value: Value | None) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else ()


def _shown(value: Value | None, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, bool):
        return str(value).lower()  # as TOML spells it
    if isinstance(value, tuple):
        return " ".join(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


@config_app.command()
def show(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Argument(help="The job file (none: the variables alone).", metavar="[FILE]"),
    ] = None,
) -> None:
    """Print every setting with its value and where it came from: the file, a variable,
    or purger run's default. Nothing here is a secret: tokens are never in a job file.

    [b]Example:[/] PURGER_PACING_MAX_RATE=200 purger config show purger.toml
    """
    out = Console()
    err = Console(stderr=True)
    with _exit_codes(err):
        job, bad = collect_job(file, os.environ)
        for problem in bad:
            _print(err, f"purger: error: {problem.text}")
        if bad:
            raise typer.Exit(ExitCode.USAGE)
        defaults = _run_defaults(ctx)
        width = max(len(s.key) for s in SETTINGS)
        for setting in SETTINGS:
            origin = job.origins.get(setting.key)
            value = job.values.get(setting.key)
            where = {"file": "file", "env": setting.variable}.get(origin or "", "default")
            shown = defaults.get(setting.flag, "none") if value is None else _shown(value, "")
            if setting.kind in ("url", "urls") or setting.key == "names.source":
                shown = _without_userinfo(shown)
            _print(out, f"{setting.key:<{width}}  {shown}  [{where}]")
        if job.signals:
            _print(out, f"{'signal':<{width}}  {len(job.signals)} [[signal]] tables  [file]")


def _run_defaults(ctx: typer.Context) -> dict[str, str]:
    """``purger run``'s declared defaults by flag: read from the command itself, so that
    they are never written down twice."""
    root = ctx.find_root().command
    command = getattr(root, "commands", {}).get("run")
    shown = {}
    for param in getattr(command, "params", ()):
        default = param.default
        if default is None or default == "":
            continue
        plain = getattr(default, "value", default)  # an enum member: its value
        text = _shown(plain, "") if isinstance(plain, bool | float) else str(plain)
        shown.update(dict.fromkeys(param.opts, text))
    return shown
