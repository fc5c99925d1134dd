"""``--config FILE``: a job file and the ``PURGER_*`` variables as a command's defaults.

The option is eager, so click calls it before any other parameter is resolved. It reads
the file and the environment (``config.read_job``: env already over the file) and puts
the values into the command's ``default_map``. Click then resolves each parameter from
the command line first, then the ``default_map``, then the declared default: flags over
env over file over defaults, with the defaults left where the commands declare them.
(Click's own ``envvar=`` is not used: it would rank between the two, and name neither the
variable nor the key in its errors.)

Keys map to parameters by their flag, so each command takes exactly the keys it has
options for; the rest are still checked, but not used by that command.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from purger.cli._app import _exit_codes
from purger.config.job import Job, read_job
from purger.config.schema import SETTINGS, Value

__all__ = ["ConfigOpt", "job_defaults"]

_SPECIAL = frozenset({"names.source", "plan.file"})  # mapped by job_defaults itself


def _use_job(ctx: typer.Context, value: Path | None) -> Path | None:
    if ctx.resilient_parsing:  # shell completion: never fail, never read files
        return value
    with _exit_codes(Console(stderr=True)):
        job = read_job(value, os.environ)
        defaults = job_defaults(job, ctx.command.params)
        if defaults:
            ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Job file (TOML): its values, then PURGER_* variables, stand in for flags not given.",
        metavar="FILE",
        envvar="PURGER_CONFIG",
        is_eager=True,
        callback=_use_job,
        show_envvar=False,
    ),
]


def job_defaults(job: Job, params: Sequence[Any]) -> dict[str, object]:
    """The command's parameter names and their values from ``job``.

    ``params`` are click parameters (``opts`` lists an option's flags; an argument is
    ``param_type_name == "argument"``). ``plan.file`` is ``purger plan``'s ``--out`` and
    the plan argument of ``run`` and ``estimate``; ``names.source`` is the names argument,
    or ``--names`` where the argument is the plan, or ``--names-url`` for a URL.
    """
    by_flag = {flag: p.name for p in params if p.param_type_name == "option" for flag in p.opts}
    argument = next((p.name for p in params if p.param_type_name == "argument"), None)
    defaults: dict[str, object] = {}
    plan_file = job.values.get("plan.file")
    if plan_file is not None:
        target = by_flag.get("--out", argument)
        if target is not None:
            defaults[target] = plan_file
    source = job.values.get("names.source")
    if isinstance(source, str):
        if source.startswith(("http://", "https://")):
            target = by_flag.get("--names-url")
        elif argument is not None and argument not in defaults:
            target = argument
        else:
            target = by_flag.get("--names")
        if target is not None:
            defaults[target] = source
    for setting in SETTINGS:
        value = job.values.get(setting.key)
        name = by_flag.get(setting.flag)
        if value is not None and name is not None and setting.key not in _SPECIAL:
            defaults[name] = _for_click(value)
    if job.signals and job.path is not None and "--signals" in by_flag:
        # The job's [[signal]] tables, read again by --signals' own parser.
        defaults[by_flag["--signals"]] = job.path
    return defaults


def _for_click(value: Value) -> object:
    return list(value) if isinstance(value, tuple) else value
