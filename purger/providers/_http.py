"""Small helpers every HTTP adapter needs: reading bodies and waits. Error text is made
safe by :func:`purger.model.scrub`, the one scrubbing function."""

from __future__ import annotations

import math
from email.utils import parsedate_to_datetime

import httpx

__all__ = ["json_or_none", "retry_after_seconds"]


def json_or_none(response: httpx.Response) -> object:
    """The body as JSON, or ``None`` when it is not JSON (a proxy's HTML error page)."""
    try:
        return response.json()
    except ValueError:
        return None


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` value, delay-seconds or an HTTP date, as seconds from ``now``."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None
