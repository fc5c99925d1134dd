"""Backend health, pure: turn what a source answered (a Prometheus HTTP API body, a JSON
status document) into numbers or into the reason there is none. No I/O here:
:mod:`purger.health.reader` fetches, this reads.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from typing import Final

from purger.health.exposition import VALUE

__all__ = [
    "NOT_JSON",
    "Points",
    "follow_json",
    "load_json",
    "parse_json_path",
    "prometheus_error",
    "prometheus_result",
]

# --- JSON documents --------------------------------------------------------------------

NOT_JSON: Final = object()


def load_json(content: bytes) -> object:
    """The parsed body, or :data:`NOT_JSON` when it is not JSON (or nested too deep)."""
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return NOT_JSON


@cache
def parse_json_path(text: str) -> tuple[str, ...]:
    steps = tuple(text.split("."))
    if not all(steps):
        raise ValueError(f"path {text!r} has an empty step")
    return steps


def follow_json(document: object, path: tuple[str, ...]) -> float | str:
    here = document
    for i, step in enumerate(path):
        where = ".".join(path[:i]) or "the top level"
        if isinstance(here, dict):
            if step not in here:
                return f"no key {step!r} at {where}"
            here = here[step]
        elif isinstance(here, list) and re.fullmatch(r"-?\d+", step):
            if not -len(here) <= int(step) < len(here):
                return f"index {step} is out of range at {where} ({len(here)} items)"
            here = here[int(step)]
        else:
            return f"{where} is {_json_type(here)}; cannot take {step!r}"
    if isinstance(here, bool) or not isinstance(here, int | float):
        return f"not a number: {'.'.join(path)} is {_json_type(here)}"
    try:
        return float(here)
    except OverflowError:  # an integer past float range
        return math.inf if here > 0 else -math.inf


def _json_type(value: object) -> str:
    names = {bool: "a boolean", str: "a string", dict: "an object", list: "a list"}
    return "null" if value is None else names.get(type(value), "a number")


# --- Prometheus HTTP API ---------------------------------------------------------------

Points = list[tuple[float, float]]


def prometheus_result(body: object) -> tuple[str, Points] | str:
    if not isinstance(body, dict):
        return "not a Prometheus API answer"
    if body.get("status") != "success":
        return f"Prometheus status {body.get('status')!r}{prometheus_error(body)}"
    data = body.get("data")
    kind = data.get("resultType") if isinstance(data, dict) else None
    result = data.get("result") if isinstance(data, dict) else None
    if kind == "scalar":
        raw = [result]
    elif kind == "vector" and isinstance(result, list):
        raw = [item.get("value") if isinstance(item, dict) else None for item in result]
    else:
        return f"query returned a {kind or 'malformed'} result, not an instant vector or scalar"
    points: Points = []
    for point in raw:
        if not (isinstance(point, list) and len(point) == 2 and isinstance(point[1], str)):
            return "malformed sample in the answer"
        at, value = point
        if isinstance(at, bool) or not isinstance(at, int | float) or not VALUE.fullmatch(value):
            return "malformed sample in the answer"
        points.append((float(at), float(value)))
    return (kind, points) if points else "query returned no series"


def prometheus_error(body: object) -> str:
    if not isinstance(body, dict) or "error" not in body:
        return ""
    return f" ({body.get('errorType', 'error')}: {str(body['error'])[:160]})"
