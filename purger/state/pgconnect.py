"""Reaching PostgreSQL for the state: the URL checked and shown redacted, the password from
libpq's environment (``PGPASSWORD``, ``PGPASSFILE``, ``~/.pgpass``) or a file, never from
the URL, and errors as one scrubbed line."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

from purger.errors import InputError, UnavailableError, UsageError

__all__ = ["Connected", "connect", "is_postgres_url", "one_line", "redact"]

SCHEMES: Final = ("postgresql://", "postgres://")
_CONNECT_TIMEOUT: Final = 10
_MASK: Final = "***"
#: A password in a URL that :func:`urlsplit` could not take apart: ``user:PASSWORD@``.
_USERINFO: Final = re.compile(r"(://[^:/@]*:)[^@/]*@")


class Connected:
    """An open connection, the URL to show for it, and the secrets to scrub from errors."""

    __slots__ = ("db", "secrets", "shown")

    def __init__(self, db: psycopg.Connection[tuple[object, ...]], shown: str, secrets: list[str]):
        self.db = db
        self.shown = shown
        self.secrets = secrets

    def error(self, doing: str, err: BaseException, where: str = "") -> UnavailableError:
        """``cannot DOING state WHERE: first line``, with no password in it (``where``:
        the redacted URL unless told)."""
        message = one_line(err, self.secrets)
        return UnavailableError(f"cannot {doing} state {where or self.shown}: {message}")


def is_postgres_url(spec: str) -> bool:
    return spec.startswith(SCHEMES)


def redact(url: str) -> str:
    """The URL with any password (user info or ``?password=``) shown as ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0]}:{_MASK}@{host}"
        query = urlencode(
            [(k, _MASK if k == "password" else v) for k, v in parse_qsl(parts.query)], safe="*"
        )
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:  # an unparseable port or host: mask what looks like a password
        return _USERINFO.sub(rf"\g<1>{_MASK}@", url).split("?", 1)[0]


def one_line(err: BaseException, secrets: list[str]) -> str:
    """The first non-empty line of an error, with every secret replaced."""
    text = str(err)
    for secret in secrets:  # providers._http.scrub's job, but state/ may not import providers
        if secret:
            text = text.replace(secret, _MASK)
    return next((line.strip() for line in text.splitlines() if line.strip()), type(err).__name__)


def connect(url: str, password_file: Path | None = None) -> Connected:
    """Connect in autocommit mode (transactions are explicit). A password in the URL is
    refused: a URL is shown, logged and kept in job files; the password is not."""
    shown = redact(url)
    if not is_postgres_url(url):
        raise UsageError(f"state URL {shown}: expected postgresql://user@host:port/database")
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as err:
        raise UsageError(f"state URL {shown}: {one_line(err, [])}") from None
    if "password" in params:
        raise UsageError(
            f"state URL {shown}: the password goes in PGPASSWORD, a passfile"
            " (PGPASSFILE, ~/.pgpass) or a password file, not in the URL"
        )
    secrets = [os.environ.get("PGPASSWORD", "")]
    extra: dict[str, Any] = {}  # psycopg.connect passes keywords on to libpq
    if password_file is not None:
        extra["password"] = _read_password(password_file)
        secrets.append(extra["password"])
    try:
        db = psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=_CONNECT_TIMEOUT,
            application_name=f"purger pid {os.getpid()} on {socket.gethostname()}"[:63],
            # No server-side prepared statements: they break behind PgBouncer's
            # transaction pooling, and the store's statements are few and cheap.
            prepare_threshold=None,
            **extra,
        )
    except psycopg.Error as err:
        raise UnavailableError(
            f"cannot connect to state {shown}: {one_line(err, secrets)}"
        ) from None
    return Connected(db, shown, secrets)


def _read_password(path: Path) -> str:
    """The file's first line (a Kubernetes secret mounted as a file, say)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else "unreadable"
        raise InputError(f"cannot read the password file: {reason}", where=str(path)) from None
    password = text.split("\n", 1)[0].rstrip("\r")
    if not password:
        raise InputError("the password file is empty", where=str(path))
    return password
