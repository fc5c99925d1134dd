"""Configuration files. For now: health signals from TOML (``--signals FILE``).

Unknown keys are errors, never ignored, and every message names the table and key.
"""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from purger.errors import InputError, UsageError
from purger.health import SignalSpec

__all__ = ["load_signals"]

_SIGNAL_KEYS = frozenset(f.name for f in fields(SignalSpec))


def load_signals(path: Path) -> tuple[SignalSpec, ...]:
    """The ``[[signal]]`` tables of a TOML file::

    [[signal]]
    name = "origin p99"
    source = "prometheus"
    url = "http://127.0.0.1:9090"
    query = "histogram_quantile(0.99, sum(rate(latency_bucket[1m])) by (le))"
    limit = 0.5
    critical = 2.0
    kind = "latency"
    """
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror or err}", where=str(path)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"not valid TOML ({err})", where=str(path)) from None
    extra = set(document) - {"signal"}
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
