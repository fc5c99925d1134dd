"""purger's one error tree.

::

    PurgerError
     ├── UsageError              the command, a flag or a config value is wrong      (exit 2)
     │    ├── ConfigError        a job file or PURGER_* variable holds bad values    (exit 2)
     │    ├── InputError         a names source or plan file cannot be used as given (exit 2)
     │    └── StateMismatchError a state file belongs to another plan or provider    (exit 2)
     ├── UnavailableError        something purger needs could not be used            (exit 4)
     │    ├── AuthError          the provider refused the credentials                (exit 4)
     │    ├── LockedError        another run holds the state file                    (exit 4)
     │    ├── LeaseLostError     another runner took over a shard this one held      (exit 4)
     │    └── StateError         the state cannot be written, or left its path (exit 4; 3 mid-run)
     └── ProviderError           one API call failed; the run decides what follows
          ├── RateLimitedError   429: wait ``retry_after`` seconds, then retry
          ├── TransientError     5xx, timeout, connection: retry with backoff
          └── RejectedError      4xx on the batch: split it to find the bad targets

Messages are one line, name the offending input (file, line, column, key) and never carry
a secret. ``cli.py`` alone maps these classes to exit codes.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AuthError",
    "ConfigError",
    "InputError",
    "LeaseLostError",
    "LockedError",
    "ProviderError",
    "PurgerError",
    "RateLimitedError",
    "RejectedError",
    "StateError",
    "StateMismatchError",
    "TransientError",
    "UnavailableError",
    "UsageError",
]


class PurgerError(Exception):
    """The root of every error purger raises on purpose."""


class UsageError(PurgerError):
    """The command line or configuration asks for something purger cannot do."""


class ConfigError(UsageError):
    """A job file or the ``PURGER_*`` environment holds bad values.

    ``problems`` lists every one, each naming its file and dotted key or its variable
    (``purger.toml: pacing.max_rate: must be > 0``). The message is the first, one line,
    with a count of the rest: ``purger config check`` prints them all.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        if not problems:
            raise ValueError("a ConfigError needs at least one problem")
        self.problems = tuple(problems)
        more = len(self.problems) - 1
        suffix = f" (and {more} more: purger config check lists them all)" if more else ""
        super().__init__(self.problems[0] + suffix)


class InputError(UsageError):
    """A names source, weight or plan file is unreadable or malformed.

    ``where`` names the input (a path, ``<stdin>`` or a URL) and ``line`` the 1-based line.
    """

    def __init__(self, message: str, *, where: str | None = None, line: int | None = None) -> None:
        self.where = where
        self.line = line
        prefix = ""
        if where is not None:
            prefix = f"{where}:{line}: " if line is not None else f"{where}: "
        super().__init__(prefix + message)


class UnavailableError(PurgerError):
    """A remote service purger depends on did not answer usefully (network, 5xx)."""


class StateMismatchError(UsageError):
    """A state file was made by another plan, provider or set of templates."""


class AuthError(UnavailableError):
    """The provider answered 401 or 403. ``credential`` names where the secret came from
    (an environment variable or an ``.edgerc`` section), never the secret itself."""

    def __init__(self, provider: str, status: int, credential: str) -> None:
        self.provider = provider
        self.status = status
        self.credential = credential
        super().__init__(f"{provider} refused the credentials ({status}): check {credential}")


class LockedError(UnavailableError):
    """Another run holds the lock on the state file."""


class LeaseLostError(UnavailableError):
    """A shard's lease expired and another runner claimed it (PostgreSQL state): the write
    was refused whole, and this runner must stop sending for that shard."""


class StateError(UnavailableError):
    """The state file cannot be written (disk full, I/O error) or is no longer the file the
    run opened (deleted, replaced). ``resumable``: raised mid-run, once purges were sent and
    the run stopped (exit 3); otherwise the run could not start (exit 4)."""

    def __init__(self, message: str, *, resumable: bool = False) -> None:
        self.resumable = resumable
        super().__init__(message)


class ProviderError(PurgerError):
    """One purge call failed. ``status`` is the HTTP status, ``None`` for a network error."""

    def __init__(self, message: str, *, provider: str, status: int | None = None) -> None:
        self.provider = provider
        self.status = status
        super().__init__(f"{provider}: {message}")


class RateLimitedError(ProviderError):
    """429: the provider asks us to wait ``retry_after`` seconds (``None``: it did not say).

    ``max_targets`` is set when the provider says how many targets it would accept now
    (Akamai's ``rateLimitRemaining``), so the batch can shrink instead of waiting.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        retry_after: float | None = None,
        max_targets: int | None = None,
    ) -> None:
        self.retry_after = retry_after
        self.max_targets = max_targets
        super().__init__(message, provider=provider, status=429)


class TransientError(ProviderError):
    """A 5xx, a timeout or a connection failure: the same call may work later."""


class RejectedError(ProviderError):
    """The provider refused the batch as malformed (400, 413, 422...): some target in it is
    bad. The run splits the batch to isolate the bad targets and records them as failed."""
