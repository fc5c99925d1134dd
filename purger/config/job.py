"""Job files (``--config purger.toml``), the ``PURGER_*`` environment, and signal files.

Precedence: defaults < job file < ``PURGER_*`` variables < flags. This module reads the
file and the environment and merges those two layers, checking every value and naming its
dotted key (``purger.toml: pacing.max_rate: must be > 0``) or its variable. The flags and
the defaults stay where they are declared, in the commands: ``cli/_job.py`` hands the merged
values to click as its ``default_map``, which click reads after the command line and before
a declared default.

Unknown keys and unknown ``PURGER_*`` variables are errors, never ignored. Secrets are
never read from a job file: a key that looks like one is refused, pointing to the variable
or ``provider.token_file``, and no message ever shows its value.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias

from purger.config.schema import ENV_PREFIX, SETTINGS, Setting, Value, from_text, from_toml
from purger.errors import ConfigError, InputError, UsageError
from purger.health.signals import SignalSpec
from purger.providers import TOKEN_VARIABLES

__all__ = ["NOT_SETTINGS", "Job", "Problem", "collect_job", "load_signals", "read_job"]

Origin: TypeAlias = Literal["file", "env"]

#: ``PURGER_*`` variables that are not settings: ``--config`` itself, and the test suite's
#: own switches (``PURGER_E2E_REQUIRED`` makes a missing e2e part fail; ``PURGER_PYPI_LIST``
#: points the data tests at the full list). They are neither read as settings nor refused.
NOT_SETTINGS: Final = frozenset({"PURGER_CONFIG", "PURGER_E2E_REQUIRED", "PURGER_PYPI_LIST"})
#: Key names that smell of a credential: refused in the file, with a pointer to the safe way.
_SECRET_WORDS: Final = ("token", "secret", "password", "passwd", "apikey", "api_key", "auth")
_BY_KEY: Final = {s.key: s for s in SETTINGS}
_BY_VARIABLE: Final = {s.variable: s for s in SETTINGS}
_TABLES: Final = tuple(dict.fromkeys(s.key.partition(".")[0] for s in SETTINGS))
_SIGNAL_KEYS: Final = frozenset(f.name for f in fields(SignalSpec))


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad value: ``key`` is the dotted key it is about (``None``: the file as a whole),
    ``text`` the line an operator reads, naming the file and key or the variable."""

    key: str | None
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A job's settings from its file and the environment, every value checked.

    ``values`` holds only the keys that were set (the rest keep the commands' defaults);
    ``origins`` says where each came from, including keys an empty variable cleared.
    There is no secret here to leak: the file may not hold one, and tokens are read by
    the providers from their variables or ``provider.token_file``.
    """

    path: Path | None = None
    values: Mapping[str, Value] = field(default_factory=lambda: MappingProxyType({}))
    origins: Mapping[str, Origin] = field(default_factory=lambda: MappingProxyType({}))
    signals: tuple[SignalSpec, ...] = ()


def read_job(path: Path | None, env: Mapping[str, str]) -> Job:
    """The job in ``path`` (none: the environment alone) overridden by ``PURGER_*``
    variables in ``env``. Raises :class:`ConfigError` listing every problem found."""
    job, problems = collect_job(path, env)
    if problems:
        raise ConfigError([problem.text for problem in problems])
    return job


def collect_job(path: Path | None, env: Mapping[str, str]) -> tuple[Job, tuple[Problem, ...]]:
    """The good values and every problem with the bad ones, so that ``config check`` can
    go on to check what the good ones point to. A file that cannot be read or is not TOML
    is an :class:`InputError`: there is nothing to go on with."""
    problems: list[Problem] = []
    values: dict[str, Value] = {}
    origins: dict[str, Origin] = {}
    signals: tuple[SignalSpec, ...] = ()
    if path is not None:
        document = _read_toml(path)
        values, signals = _from_document(document, path, problems)
        origins = dict.fromkeys(values, "file")
    for setting, value in _from_env(env, values.get("provider.name"), problems):
        origins[setting.key] = "env"
        if value is None:
            values.pop(setting.key, None)  # an empty variable clears the file's value
        else:
            values[setting.key] = value
    problems += _conflicts(values, origins, path)
    job = Job(
        path=path,
        values=MappingProxyType(values),
        origins=MappingProxyType(origins),
        signals=signals,
    )
    return job, tuple(problems)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror or err}", where=str(path)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"not valid TOML ({err})", where=str(path)) from None


def _from_document(
    document: Mapping[str, Any], path: Path, problems: list[Problem]
) -> tuple[dict[str, Value], tuple[SignalSpec, ...]]:
    """Every key of a job file checked; relative paths resolved against its directory."""
    values: dict[str, Value] = {}
    signals: list[SignalSpec] = []
    base = path.absolute().parent  # so that paths read from the file do not follow cwd
    table_of_provider = document.get("provider")
    provider = table_of_provider.get("name") if isinstance(table_of_provider, dict) else None
    for table, content in document.items():
        if _is_secret(table):
            message = f"secrets are never read from a job file: {_secret_advice(provider)}"
            problems.append(Problem(table, f"{path}: {table}: {message}"))
        elif table == "signal":
            signals += _signals_of(path, content, problems)
        elif table not in _TABLES:
            problems.append(Problem(table, f"{path}: {table}: {_unknown(table, content)}"))
        elif not isinstance(content, dict):
            problems.append(Problem(table, f"{path}: {table}: must be a table ([{table}])"))
        else:
            for name, raw in content.items():
                key = f"{table}.{name}"
                setting = _BY_KEY.get(key)
                if setting is None:
                    message = (
                        f"secrets are never read from a job file: {_secret_advice(provider)}"
                        if _is_secret(name)
                        else _unknown(key)
                    )
                    problems.append(Problem(key, f"{path}: {key}: {message}"))
                    continue
                value, problem = from_toml(setting, raw, base)
                if problem is not None:
                    problems.append(Problem(key, f"{path}: {key}: {problem}"))
                elif value is not None:
                    values[key] = _resolved_source(key, value, base)
    return values, tuple(signals)


def _from_env(
    env: Mapping[str, str], provider: Value | None, problems: list[Problem]
) -> list[tuple[Setting, Value | None]]:
    """The ``PURGER_*`` settings in ``env``, checked, in name order (``None``: cleared)."""
    found = []
    for variable in sorted(env):
        if not variable.startswith(ENV_PREFIX) or variable in NOT_SETTINGS:
            continue
        setting = _BY_VARIABLE.get(variable)
        if setting is None:
            name = variable.removeprefix(ENV_PREFIX)
            if _is_secret(name.lower()):
                advice = f"not a purger setting: {_secret_advice(provider)}"
            else:
                advice = _unknown_variable(variable)
            problems.append(Problem(None, f"{variable}: {advice}"))
            continue
        value, problem = from_text(setting, env[variable])
        if problem is not None:
            problems.append(Problem(setting.key, f"{variable}: {problem}"))
        else:
            found.append((setting, value))
    return found


def _conflicts(
    values: Mapping[str, Value], origins: Mapping[str, Origin], path: Path | None
) -> list[Problem]:
    """Pairs of settings that cannot go together, named by key."""
    problems = []
    for one, other in (("plan.shards", "plan.max_weight"), ("names.source", "names.sample")):
        if values.get(one) not in (None, False) and values.get(other) not in (None, False):
            in_file = "file" in (origins[one], origins[other])
            where = f"{path}: " if path is not None and in_file else ""
            problems.append(Problem(one, f"{where}{one}, {other}: give one, not both"))
    return problems


def _signals_of(path: Path, content: object, problems: list[Problem]) -> list[SignalSpec]:
    if not isinstance(content, list) or not content:
        problems.append(Problem("signal", f"{path}: signal: must be [[signal]] tables"))
        return []
    signals = []
    for index, table in enumerate(content, start=1):
        try:
            signals.append(_signal(path, index, table))
        except UsageError as err:
            problems.append(Problem("signal", str(err)))
    return signals


def _resolved_source(key: str, value: Value, base: Path) -> Value:
    """A names source that is a path (not stdin, not a URL) is read from the file's
    directory, as every path in the file is."""
    if key != "names.source" or not isinstance(value, str) or value == "-":
        return value
    if value.startswith(("http://", "https://")):
        return value
    return str(base / Path(value).expanduser())


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return lowered not in ("token_file",) and any(word in lowered for word in _SECRET_WORDS)


def _secret_advice(provider: object) -> str:
    """Where a token goes instead: the provider's variable or ``provider.token_file``."""
    if provider == "akamai":
        where = "provider.edgerc or the AKAMAI_* variables"
    elif isinstance(provider, str) and provider in TOKEN_VARIABLES:
        where = f"{TOKEN_VARIABLES[provider]} or provider.token_file"
    else:
        where = f"{' or '.join(TOKEN_VARIABLES.values())}, or provider.token_file"
    return f"credentials go in {where}"


def _unknown(key: str, content: object = None) -> str:
    """``unknown key``, with the nearest known key when one is close."""
    if "." not in key and isinstance(content, dict):
        return f"unknown table; tables: {', '.join(_TABLES)}, [[signal]]"
    leaf = key.rpartition(".")[2]
    # The flag's name first (``rate`` is --rate, pacing.max_rate), then the key's last part
    # in another table, then spelling.
    flag = "--" + leaf.replace("_", "-")
    near = (
        [s.key for s in SETTINGS if s.flag == flag]
        or [s.key for s in SETTINGS if s.key.endswith("." + leaf)]
        or difflib.get_close_matches(key, _BY_KEY, n=1, cutoff=0.75)
    )
    hint = f" (did you mean {near[0]}?)" if near else ""
    return f"unknown key{hint}"


def _unknown_variable(variable: str) -> str:
    near = difflib.get_close_matches(variable, _BY_VARIABLE, n=1, cutoff=0.75)
    hint = f" (did you mean {near[0]}?)" if near else ""
    return f"unknown purger setting{hint}; see docs/config.md"


def load_signals(path: Path) -> tuple[SignalSpec, ...]:
    """The ``[[signal]]`` tables of a TOML file: a signals file, or a job file, whose
    other tables are then checked too (``--signals`` and ``--config`` share this parser)::

    [[signal]]
    name = "origin p99"
    source = "prometheus"
    url = "http://127.0.0.1:9090"
    query = "histogram_quantile(0.99, sum(rate(latency_bucket[1m])) by (le))"
    limit = 0.5
    critical = 2.0
    kind = "latency"
    """
    document = _read_toml(path)
    extra = set(document) - {"signal"}
    if extra and not extra - set(_TABLES):
        signals = read_job(path, {}).signals
        if not signals:
            raise UsageError(f"{path}: no [[signal]] tables")
        return signals
    if extra:
        raise UsageError(f"{path}: unknown table or key {sorted(extra)[0]!r} (expected [[signal]])")
    tables = document.get("signal", [])
    if not isinstance(tables, list) or not tables:
        raise UsageError(f"{path}: no [[signal]] tables")
    return tuple(_signal(path, i, table) for i, table in enumerate(tables, start=1))


def _signal(path: Path, index: int, table: Any) -> SignalSpec:
    where = f"{path}: signal[{index}]"
    if not isinstance(table, dict):
        raise UsageError(f"{where}: not a table")
    unknown = set(table) - _SIGNAL_KEYS
    if unknown:
        raise UsageError(f"{where}.{sorted(unknown)[0]}: unknown key")
    missing = {"name", "source", "url", "query", "limit"} - set(table)
    if missing:
        raise UsageError(f"{where}.{sorted(missing)[0]}: missing")
    for key in ("limit", "critical"):
        value = table.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise UsageError(f"{where}.{key}: must be a number")
    for key in ("name", "source", "url", "query", "direction", "kind"):
        if key in table and not isinstance(table[key], str):
            raise UsageError(f"{where}.{key}: must be a string")
    try:
        return SignalSpec(**table)
    except UsageError as err:
        raise UsageError(f"{path}: {err}") from None
