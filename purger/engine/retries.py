"""The last retry of a purge call, as an operator needs it: which host, what error, which
attempt of how many, when the next. An unreachable API otherwise looks, for minutes, like a
slow start (the retries are silent until the run gives up).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

__all__ = ["RetryNotice", "host_of"]

#: Longest error text kept: enough for a provider's one-line reason (already scrubbed of
#: secrets by the provider, so cutting it here cannot expose part of one).
_MAX_TEXT: Final = 300


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryNotice:
    """One failed attempt that will be retried. ``at`` is the run clock's time of the
    failure; ``calls_before`` the calls that had succeeded by then (a later success means
    the API answers again)."""

    error: str
    host: str | None
    attempt: int
    attempts: int
    wait_s: float
    at: float
    calls_before: int
    #: UTC, ISO 8601, for ``purger status`` after the fact.
    seen_at: str = ""

    @classmethod
    def of(
        cls,
        error: BaseException,
        attempt: int,
        wait: float,
        *,
        attempts: int,
        at: float,
        calls_before: int,
    ) -> RetryNotice:
        text = " ".join(str(error).split()) or type(error).__name__
        if len(text) > _MAX_TEXT:
            text = text[: _MAX_TEXT - 3] + "..."
        return cls(
            error=text,
            host=host_of(error),
            attempt=attempt,
            attempts=attempts,
            wait_s=wait,
            at=at,
            calls_before=calls_before,
            seen_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    def next_in(self, now: float) -> float:
        """Seconds from ``now`` (the run clock's) until the retry."""
        return max(0.0, self.at + self.wait_s - now)

    def describe(self, now: float | None = None) -> str:
        """``fastly: ConnectError: ... (api.fastly.com; attempt 2 of 8, next in 1.5 s)``;
        without ``now``, no "next in" (a stored text outlives it)."""
        where = f"{self.host}; " if self.host else ""
        later = "" if now is None else f", next in {self.next_in(now):.1f} s"
        return f"{self.error} ({where}attempt {self.attempt} of {self.attempts}{later})"


def host_of(error: BaseException) -> str | None:
    """The host (and port) the failed request went to, from the HTTP error the provider's
    error was raised from; ``None`` when it does not say. Never the URL's userinfo."""
    cause: BaseException | None = error
    while cause is not None:
        try:
            url = cause.request.url  # type: ignore[attr-defined]
        except (AttributeError, RuntimeError):  # httpx raises RuntimeError when unset
            cause = cause.__cause__
            continue
        host = getattr(url, "host", None)
        if not host:
            return None
        port = getattr(url, "port", None)
        return f"{host}:{port}" if port else str(host)
    return None
