"""purger's one error tree.

::

    PurgerError
     ├── UsageError            the command, a flag or a config value is wrong       (exit 2)
     │    └── InputError       a names source or plan file cannot be used as given  (exit 2)
     └── UnavailableError      something purger needs could not be reached          (exit 4)

Messages are one line, name the offending input (file, line, column, key) and never carry
a secret. ``cli.py`` alone maps these classes to exit codes.
"""

from __future__ import annotations

__all__ = ["InputError", "PurgerError", "UnavailableError", "UsageError"]


class PurgerError(Exception):
    """The root of every error purger raises on purpose."""


class UsageError(PurgerError):
    """The command line or configuration asks for something purger cannot do."""


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
