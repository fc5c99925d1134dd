"""Value types shared by the planner's consumers: targets, batches, results, secrets."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["Batch", "BatchResult", "Secret", "TargetKind"]


class TargetKind(StrEnum):
    """What a purge names: a surrogate key (cache tag) or a URL."""

    KEY = "key"
    URL = "url"


@dataclass(frozen=True, slots=True)
class Batch:
    """The targets sent in one API call, all of one kind."""

    kind: TargetKind
    targets: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.targets)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """A batch the provider accepted. ``purge_id`` is what its support can trace, if any."""

    purged: int
    purge_id: str | None = None


_MASK: Final = "***"


class Secret:
    """A credential that never shows itself: not in repr, str, f-strings or logs.

    ``reveal()`` is the one way to read it, at the moment a request is signed or sent.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({_MASK!r})"

    def __str__(self) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)
