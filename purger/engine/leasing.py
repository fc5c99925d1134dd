"""Shards by lease, for a run several runners share in PostgreSQL
(:class:`purger.state.leases.LeasedStore`): the next shard to walk is claimed from the
database (the heaviest free one, continued from its cursor), and a heartbeat renews this
runner's leases every ``lease_ttl / 3`` seconds. A lease lost to another runner, or a
database unreachable for two heartbeats, stops the run (resumable) well within the TTL,
before another runner may take the shards over. Times here are wall time, as the leases'.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Final, Protocol

import anyio

from purger.errors import StateError, UnavailableError
from purger.state.leases import ShardLease
from purger.state.sqlite import StateSummary

__all__ = ["LeaseKeeper", "ShardLeases"]

#: Heartbeats per lease TTL: two may fail before the runner stops, a third is the margin.
_BEATS_PER_TTL: Final = 3.0


class ShardLeases(Protocol):
    """What the engine needs of a leased store."""

    @property
    def lease_ttl(self) -> float: ...

    def claim(self, count: int = 1) -> list[ShardLease]: ...

    def heartbeat(self) -> frozenset[int]: ...

    def release(self, shard_ids: Sequence[int]) -> None: ...

    def held(self) -> dict[int, int]: ...

    def summary(self) -> StateSummary: ...


class LeaseKeeper:
    """Claims shards for the workers and keeps their leases alive."""

    def __init__(self, leases: ShardLeases) -> None:
        self._leases = leases
        self.tick = leases.lease_ttl / _BEATS_PER_TTL

    async def next_shard(self, stopped: anyio.Event) -> ShardLease | None:
        """The heaviest free shard, now ours; ``None`` once every shard is done or the run
        stops. While other runners hold the last ones, wait a tick and look again: a
        runner that died leaves its shards free after the TTL."""
        while not stopped.is_set():
            claimed = await anyio.to_thread.run_sync(self._leases.claim, 1)
            if claimed:
                return claimed[0]
            summary = await anyio.to_thread.run_sync(self._leases.summary)
            if summary.shards_done >= summary.shards:
                return None
            with anyio.move_on_after(self.tick):
                await stopped.wait()
        return None

    async def keep_alive(self, trouble: Callable[[StateError], None]) -> None:
        """Renew the leases every tick until cancelled. A lease lost, or no heartbeat
        through for two ticks (each try bounded by what is left of them), is ``trouble``:
        the run stops sending before the TTL lets another runner in."""
        last_ok = anyio.current_time()
        while True:
            await anyio.sleep(self.tick)
            deadline = last_ok + 2 * self.tick
            try:
                with anyio.fail_after(max(deadline - anyio.current_time(), 0.0)):
                    lost = await anyio.to_thread.run_sync(
                        self._leases.heartbeat, abandon_on_cancel=True
                    )
            except TimeoutError:
                trouble(self._silent())
                return
            except UnavailableError as error:
                if anyio.current_time() >= deadline:
                    trouble(StateError(f"{error}; stopped sending", resumable=True))
                    return
                continue  # one failed heartbeat: the next may get through
            if lost:
                trouble(
                    StateError(
                        f"the lease on shard {sorted(lost)} was lost to another runner;"
                        " stopped sending",
                        resumable=True,
                    )
                )
                return
            last_ok = anyio.current_time()

    async def release_all(self) -> None:
        """Give back what this runner holds (a stop): others may claim it at once. A
        database out of reach: the leases lapse after the TTL instead."""
        with contextlib.suppress(UnavailableError):
            await anyio.to_thread.run_sync(self._leases.release, list(self._leases.held()))

    def _silent(self) -> StateError:
        return StateError(
            f"no heartbeat reached the state for {2 * self.tick:g} s"
            f" (lease TTL {self._leases.lease_ttl:g} s): stopped sending",
            resumable=True,
        )
