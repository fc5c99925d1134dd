"""What a state store is, whatever holds it: :class:`~purger.state.sqlite.StateStore` (a
file) and :class:`~purger.state.postgres.PostgresStore` (a database) both are one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Protocol, Self

from purger.state.records import Failure, RatePoint, RunRecord, ShardProgress, StateSummary

__all__ = ["ProgressStore", "Store"]


class ProgressStore(Protocol):
    """What the run engine needs of a store: the shards' progress, and all-or-nothing
    commits of what was confirmed."""

    def progress(self) -> dict[int, ShardProgress]: ...

    def commit(
        self,
        updates: Sequence[ShardProgress],
        failures: Sequence[Failure] = (),
        status: Mapping[str, str] | None = None,
        history: Sequence[RatePoint] = (),
        retried: Sequence[Failure] = (),
    ) -> None: ...


class Store(ProgressStore, Protocol):
    """One run's durable state, held (locked) by this store until :meth:`close`."""

    def load_run(self) -> RunRecord | None: ...

    def start_run(self, record: RunRecord) -> None: ...

    def check_resume(self, record: RunRecord) -> None: ...

    def run_id(self) -> str | None: ...

    def rate_history(self) -> list[tuple[str, RatePoint]]: ...

    def status(self) -> dict[str, str]: ...

    def failures(self) -> list[Failure]: ...

    def summary(self) -> StateSummary: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
