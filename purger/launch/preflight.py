"""What ``purger config check`` checks beyond each value, offline: the files a job names
exist, its templates parse, its provider has what it needs (an id, a token in its variable
or token file, an ``.edgerc`` section), its plan and pacing settings go together.

Nothing is sent, no connection is opened, nothing is written: the provider is built on a
client whose transport refuses every request, exactly as ``purger run`` builds it before
it touches the state file. Every problem names its key (or its variable).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio
import httpx

from purger.config.job import Job, Problem
from purger.config.schema import Value, setting_of
from purger.errors import UsageError
from purger.health.control import ControlSettings
from purger.launch.build import PaceOptions
from purger.names.sources import NamesSource, SourceFormat, no_columns_message
from purger.planning.document import read_plan
from purger.planning.targets import parse_templates
from purger.providers import TOKEN_VARIABLES, ProviderOptions, create_provider
from purger.state.pgconnect import redact

__all__ = ["Findings", "check_job", "provider_options"]

#: Where each provider names what it purges: without it, nothing can be sent.
_SCOPE: Final = {"fastly": "provider.service_id", "cloudflare": "provider.zone_id"}
_PROVIDER_PREFIX: Final = "provider."


@dataclass(frozen=True, slots=True, kw_only=True)
class Findings:
    """``problems`` make the job unusable (exit 2); ``notes`` are worth knowing."""

    problems: tuple[Problem, ...]
    notes: tuple[str, ...]


def provider_options(job: Job) -> ProviderOptions:
    """The job's ``[provider]`` table as the options ``purger run`` would build: its keys
    are ``ProviderOptions``' fields, by name."""
    given = {
        key.removeprefix(_PROVIDER_PREFIX): value
        for key, value in job.values.items()
        if key.startswith(_PROVIDER_PREFIX)
    }
    return ProviderOptions(**given)  # type: ignore[arg-type]  # types checked by config.py


def check_job(job: Job, env: Mapping[str, str]) -> Findings:
    """Every problem ``purger run --config`` would meet before sending anything."""
    problems: list[Problem] = []
    notes: list[str] = []
    _check_names(job, problems, notes)
    _check_targets(job, problems)
    _check_provider(job, env, problems)
    _check_settings(job, problems)
    _check_state(job, problems, notes)
    return Findings(problems=tuple(problems), notes=tuple(notes))


def _problem(job: Job, key: str, message: str) -> Problem:
    """A problem about ``key``, named by its variable when the environment set it."""
    if job.origins.get(key) == "env":
        where = setting_of(key).variable
    else:
        where = f"{job.path}: {key}" if job.path is not None else key
    return Problem(key, f"{where}: {message}")


def _check_names(job: Job, problems: list[Problem], notes: list[str]) -> None:
    source, sample = job.values.get("names.source"), job.values.get("names.sample")
    plan_file = job.values.get("plan.file")
    has_names = source is not None or sample is True
    if isinstance(source, str) and source != "-" and not source.startswith(("http://", "https://")):
        path = Path(source)
        if not path.is_file():
            problems.append(_problem(job, "names.source", f"no such file: {path}"))
        elif not os.access(path, os.R_OK):
            problems.append(_problem(job, "names.source", f"cannot read {path}"))
    if isinstance(plan_file, Path):
        if plan_file.is_file():
            try:
                read_plan(plan_file)
            except UsageError as err:
                problems.append(_problem(job, "plan.file", str(err)))
        elif not has_names:
            message = f"no such file: {plan_file} (or give names.source, for purger plan --config)"
            problems.append(_problem(job, "plan.file", message))
        else:
            notes.append(
                f"plan.file {plan_file} does not exist yet: purger plan --config writes it, "
                "purger run --config reads it"
            )
    elif not has_names:
        message = "missing: give names.source, names.sample or plan.file"
        problems.append(_problem(job, "names.source", message))


def _check_targets(job: Job, problems: list[Problem]) -> None:
    keys = _strings(job.values.get("targets.key_templates"))
    urls = _strings(job.values.get("targets.url_templates"))
    if not keys and not urls:
        message = "missing: purger run needs targets.key_templates or targets.url_templates"
        problems.append(_problem(job, "targets.key_templates", message))
    # One at a time, so that each bad template is named; targets.py words the problem.
    checks: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]
    checks = [("targets.key_templates", "--key-template ", (t,), ()) for t in keys]
    checks += [("targets.url_templates", "--url-template ", (), (t,)) for t in urls]
    names_only = _names_only(job)
    for key, flag, as_key, as_url in checks:
        try:
            (template,) = parse_templates(as_key, as_url)
            if template.columns and names_only:
                message = no_columns_message(template.columns, names_only)
                raise UsageError(f"{flag}{template.text!r}: {message}")
        except UsageError as err:
            problems.append(_problem(job, key, str(err).removeprefix(flag)))


def _names_only(job: Job) -> str | None:
    """The job's names source when it has names only (no columns for placeholders)."""
    source, fmt = job.values.get("names.source"), job.values.get("names.format")
    if not isinstance(source, str):
        return None
    if source.startswith(("http://", "https://")):
        return source
    chosen = SourceFormat(fmt) if isinstance(fmt, str) else SourceFormat.AUTO
    resolved = NamesSource(path=source, format=chosen).resolved_format()
    return source if resolved is SourceFormat.TEXT else None


def _strings(value: Value | None) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else ()


def _check_provider(job: Job, env: Mapping[str, str], problems: list[Problem]) -> None:
    name = job.values.get("provider.name")
    if not isinstance(name, str):
        problems.append(_problem(job, "provider.name", "missing: purger run needs it"))
        return
    found = len(problems)
    scope = _SCOPE.get(name)
    if scope is not None and scope not in job.values:
        problems.append(_problem(job, scope, f"missing: {name} needs it"))
    variable = TOKEN_VARIABLES.get(name)
    if variable is not None and not env.get(variable) and "provider.token_file" not in job.values:
        message = f"{name} needs an API token: export {variable} or set provider.token_file"
        problems.append(_problem(job, "provider.token_file", message))
    if name == "varnish" and not (
        {"provider.endpoints", "provider.tiers", "provider.api_base"} & set(job.values)
    ):
        problems.append(_problem(job, "provider.endpoints", "missing: varnish needs its nodes"))
    if len(problems) == found:  # the rest, exactly as run checks it: file reads, URLs
        try:
            anyio.run(_build_provider, provider_options(job), env)
        except UsageError as err:
            problems.append(_problem(job, "provider.name", f"{name}: {err}"))


def _refuse(request: httpx.Request) -> httpx.Response:
    raise RuntimeError(f"purger config check sends nothing, not {request.method} {request.url}")


async def _build_provider(options: ProviderOptions, env: Mapping[str, str]) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(_refuse)) as client:
        create_provider(options, client, env)


def _check_settings(job: Job, problems: list[Problem]) -> None:
    """Pacing settings that only fail together; defaults are the ones run uses."""
    rate = _float(job.values.get("pacing.max_rate"), PaceOptions().rate)
    min_rate = _float(job.values.get("pacing.min_rate"), ControlSettings().min_rate)
    if min_rate > rate:
        message = f"must be <= pacing.max_rate ({min_rate:g} > {rate:g})"
        problems.append(_problem(job, "pacing.min_rate", message))


def _float(value: Value | None, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return default


def _check_state(job: Job, problems: list[Problem], notes: list[str]) -> None:
    state = job.values.get("run.state")
    if isinstance(state, str):  # a postgresql:// URL: reached when the run starts
        if redact(state) != state:
            problems.append(
                _problem(job, "run.state", "the password goes in a file or PGPASSWORD, not here")
            )
    elif not isinstance(state, Path):
        problems.append(_problem(job, "run.state", "missing: purger run needs a state file"))
    elif not state.parent.is_dir():
        problems.append(_problem(job, "run.state", f"no such directory: {state.parent}"))
    elif state.exists():
        notes.append(
            f"run.state {state} holds a run already: purger run continues it only with --resume"
        )
