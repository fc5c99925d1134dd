"""The SQLite state file's layout and how it is opened: the schema, the application id that
tells a purger state from other databases, and connections that write nothing until reads
have shown the file is a purger state of this schema version.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from purger.errors import InputError
from purger.state.files import is_disk_trouble, write_trouble

__all__ = [
    "APPLICATION_ID",
    "HISTORY_TABLE",
    "SCHEMA",
    "SCHEMA_VERSION",
    "STATUS_TABLE",
    "VERIFY_TABLE",
    "connect",
    "read_only",
]

SCHEMA_VERSION: Final = 1
#: "purg" in the SQLite header's application_id tells a purger state from other databases.
APPLICATION_ID: Final = 0x70757267
#: The run's latest figures for an operator's ``status``: ETA, observed rate. Made on open
#: too, for states created before it existed.
STATUS_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS status (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
)
#: The run's rate over time, a point every few seconds, for ``status`` after the fact (made
#: on open too, like ``status``). ``allowed`` is NULL when unbounded (``--rate inf``).
HISTORY_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS rate_history (seq INTEGER PRIMARY KEY, at TEXT NOT NULL,"
    " rate REAL NOT NULL, allowed REAL, targets INTEGER NOT NULL, held TEXT NOT NULL)"
)
#: What ``purger verify`` saw, a row per target, node and round (made on open too).
VERIFY_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS verification (seq INTEGER PRIMARY KEY, at TEXT NOT NULL,"
    " round INTEGER NOT NULL, target TEXT NOT NULL, node TEXT NOT NULL, verdict TEXT NOT NULL,"
    " detail TEXT NOT NULL)"
)
#: The tables a new state file is made with (``status`` and ``rate_history`` besides).
SCHEMA: Final = (
    """CREATE TABLE run (
        id INTEGER PRIMARY KEY CHECK (id = 1), fingerprint TEXT NOT NULL,
        provider TEXT NOT NULL, provider_options TEXT NOT NULL, key_templates TEXT NOT NULL,
        url_templates TEXT NOT NULL, purger_version TEXT NOT NULL, created_at TEXT NOT NULL)""",
    """CREATE TABLE shard (
        id INTEGER PRIMARY KEY, range_start TEXT NOT NULL, range_limit TEXT,
        count INTEGER NOT NULL, weight REAL NOT NULL, cursor TEXT,
        done INTEGER NOT NULL DEFAULT 0, done_ahead TEXT NOT NULL DEFAULT '[]',
        targets_done INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE failure (
        seq INTEGER PRIMARY KEY, target TEXT NOT NULL, kind TEXT NOT NULL,
        shard_id INTEGER NOT NULL, reason TEXT NOT NULL)""",
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


def read_only(uri: str) -> tuple[sqlite3.Connection, int]:
    """A read-only connection to ``uri`` and the file's application id (closed on error)."""
    db = sqlite3.connect(uri, uri=True, check_same_thread=False)
    try:
        (app_id,) = db.execute("PRAGMA application_id").fetchone()
    except BaseException:
        db.close()
        raise
    return db, app_id


def connect(path: Path) -> sqlite3.Connection:
    """Open the purger state at ``path`` and set it up, writing nothing (not even
    ``journal_mode``) until reads have shown it is a purger state of this schema version."""
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as err:
        if is_disk_trouble(err):
            raise write_trouble(path, err, sent=False) from None
        raise InputError(f"cannot open state: {err}", where=str(path)) from None
    try:
        db.execute("PRAGMA synchronous = FULL")
        (app_id,) = db.execute("PRAGMA application_id").fetchone()
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if app_id != APPLICATION_ID:
            raise InputError("not a purger state file (another SQLite database)", where=str(path))
        if version != SCHEMA_VERSION:
            raise InputError(
                f"state schema version {version}; this purger reads version {SCHEMA_VERSION}",
                where=str(path),
            )
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(STATUS_TABLE)
        db.execute(HISTORY_TABLE)
        db.execute(VERIFY_TABLE)
    except sqlite3.Error as err:
        db.close()
        if is_disk_trouble(err):
            raise write_trouble(path, err, sent=False) from None
        raise InputError(f"cannot use as a purger state: {err}", where=str(path)) from None
    except BaseException:
        db.close()
        raise
    return db
