"""Which run a name means in a database, and who holds it: run names, run ids, and the
advisory lock on a run name (exclusive for a lone store, shared among leased runners)."""

from __future__ import annotations

import hashlib
import os
import re
import socket
from typing import Final

import psycopg

from purger.errors import LockedError, UsageError
from purger.state.pgconnect import Connected
from purger.state.pgschema import LOCK_CLASS

__all__ = ["DEFAULT_RUN", "lock_run", "resolve_run"]

#: The run a URL means when no name or id is given.
DEFAULT_RUN: Final = "default"
_RUN_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: Advisory lock class of run names (``LOCK_CLASS`` itself guards migrations).
_RUN_LOCK: Final = LOCK_CLASS + 1
_Db = psycopg.Connection[tuple[object, ...]]


def resolve_run(db: _Db, run: str, shown: str) -> str:
    """The run name ``run`` means: a recorded name, else the name of the run with that id,
    else a new name (checked)."""
    found = db.execute(
        "SELECT name FROM purger.run WHERE name = %s UNION ALL"
        " SELECT name FROM purger.run WHERE run_id = %s",
        (run, run),
    ).fetchone()
    if found is not None:
        return str(found[0])
    if not _RUN_NAME.fullmatch(run):
        raise UsageError(
            f"state {shown}: run name {run!r}: use up to 100 letters, digits, '.', '_', '-'"
        )
    return run


def lock_run(conn: Connected, name: str, *, shared: bool = False) -> None:
    """Take the run name's session lock and say who holds it, or name the holder. Leased
    runners share it; a lone store holds it alone: neither kind gets in beside the other."""
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)
    take = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
    row = conn.db.execute(f"SELECT {take}(%s, %s)", (_RUN_LOCK, key)).fetchone()
    if row is None or not row[0]:
        holder = conn.db.execute(
            "SELECT pid, host FROM purger.holder WHERE name = %s", (name,)
        ).fetchone()
        who = "unknown" if holder is None else f"{holder[0]} on {holder[1]}"
        raise LockedError(f"{conn.shown} (run {name}) is in use by another purger run (pid {who})")
    conn.db.execute(
        "INSERT INTO purger.holder (name, host, pid) VALUES (%s, %s, %s) ON CONFLICT (name)"
        " DO UPDATE SET host = excluded.host, pid = excluded.pid, since = now()",
        (name, socket.gethostname(), os.getpid()),
    )
