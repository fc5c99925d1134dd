"""The state's files on disk, below SQLite: the lock, a new state made whole before it is
in place, the check that the files a run opened are still the ones at their paths, and one
wording for a write the disk refused.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from purger.errors import InputError, LockedError, StateError

__all__ = [
    "FileIdentity",
    "check_magic",
    "create_whole",
    "identity",
    "is_disk_trouble",
    "lock",
    "write_refused",
    "write_trouble",
]

SQLITE_MAGIC: Final = b"SQLite format 3\x00"
#: SQLite's primary result codes that mean "the disk refused", not "this is no state".
_SQLITE_IOERR: Final = 10
_SQLITE_FULL: Final = 13
_SQLITE_CANTOPEN: Final = 14
_SQLITE_READONLY: Final = 8
_DISK_CODES: Final = {
    _SQLITE_IOERR: errno.EIO,
    _SQLITE_FULL: errno.ENOSPC,
    _SQLITE_CANTOPEN: None,
    _SQLITE_READONLY: errno.EROFS,
}

#: (st_dev, st_ino): a file, whatever its path says now.
FileIdentity = tuple[int, int]


def check_magic(path: Path) -> None:
    """Refuse a file that exists and is not SQLite, empty ones included (a truncated state
    is not a fresh one), before anything (even the lock file) is created."""
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as err:
        raise InputError(f"cannot read state: {err.strerror or err}", where=str(path)) from None
    if not head:
        raise InputError(
            "not a purger state file (empty: truncated?); nothing was sent. Move it away to "
            "start a new run",
            where=str(path),
        )
    if head != SQLITE_MAGIC:
        raise InputError("not a purger state file (not an SQLite database)", where=str(path))


def lock(path: Path) -> int:
    """Hold an exclusive flock on ``FILE.lock`` and write our pid in it for the next comer.
    The file is never deleted: unlinking a lock file lets two runs lock two inodes."""
    lock_path = f"{path}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise InputError(
            f"cannot create lock file: {err.strerror or err}", where=lock_path
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise LockedError(f"{path} is in use by another purger run (pid {holder})") from None
    except OSError as err:
        os.close(fd)
        raise StateError(f"cannot lock {lock_path}: {err.strerror or err}") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as err:
        os.close(fd)
        raise write_refused(lock_path, err.strerror or str(err), sent=False) from None
    return fd


def create_whole(path: Path, statements: Iterable[str]) -> None:
    """Make a new state at ``path`` with ``statements`` run in it, so that the path holds
    a whole state or nothing: built beside it, fsync'd, then linked in (never over a file
    that appeared meanwhile). A run killed at any moment leaves no empty file behind."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        temporary.unlink(missing_ok=True)
        db = sqlite3.connect(temporary, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            for statement in statements:
                db.execute(statement)
            db.execute("COMMIT")
        finally:
            db.close()
        fd = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return  # made meanwhile: the caller checks what it is
        _sync_directory(path.parent)
    except sqlite3.Error as err:
        raise write_trouble(path, err, sent=False) from None
    except OSError as err:
        raise write_refused(str(path), err.strerror or str(err), sent=False) from None
    finally:
        temporary.unlink(missing_ok=True)
        Path(f"{temporary}-journal").unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def identity(path: Path | str) -> FileIdentity | None:
    """The file now at ``path``, or ``None`` when there is none."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


def is_disk_trouble(err: sqlite3.Error) -> bool:
    """SQLite could not write or open (full, I/O error, read-only), as against a file that
    is not a state."""
    code = getattr(err, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _DISK_CODES


def write_trouble(path: Path, err: sqlite3.Error, *, sent: bool) -> StateError:
    """The one-line error for a write SQLite could not make, in the system's own words."""
    code = getattr(err, "sqlite_errorcode", None)
    known = _DISK_CODES.get(code & 0xFF) if code is not None else None
    return write_refused(str(path), os.strerror(known) if known else str(err), sent=sent)


def write_refused(where: str, why: str, *, sent: bool) -> StateError:
    """``purge.sqlite: cannot write the state (No space left on device); ...``: what failed,
    why, and what to do; ``sent``: the run had begun (it stopped, resumable)."""
    fix = "free space" if why == os.strerror(errno.ENOSPC) else "fix the disk"
    if sent:
        return StateError(
            f"{where}: cannot write the state ({why}); stopped, nothing is lost: "
            f"{fix}, then --resume",
            resumable=True,
        )
    return StateError(
        f"{where}: cannot write the state ({why}); nothing was sent: {fix}, then run again"
    )
