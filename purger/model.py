"""Value types shared by the planner's consumers: targets, batches, results, secrets; and
the one way any text that may hold a secret is made safe to show or store."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import unquote, urlsplit

__all__ = [
    "FRAGMENT_CHARS",
    "Batch",
    "BatchResult",
    "Secret",
    "TargetKind",
    "http_url_problem",
    "redact_url",
    "scrub",
    "url_secrets",
]


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


#: A run of this many characters of a secret is scrubbed, even away from the rest of it: a
#: body cut in the middle of an echoed token must not leak its first half.
FRAGMENT_CHARS: Final = 8


def scrub(text: str, secrets: Iterable[Secret | str], *, limit: int | None = None) -> str:
    """``text`` with every secret, and every run of :data:`FRAGMENT_CHARS` or more characters
    of one, replaced by ``***``; then cut to ``limit`` characters, never before scrubbing.

    Cutting first is how half a token leaks: the cut can split it so the whole no longer
    matches. Only a bounded prefix is scrubbed when ``limit`` is given (a body may be megabytes).
    """
    values = sorted(
        {s.reveal() if isinstance(s, Secret) else s for s in secrets} - {""}, key=len, reverse=True
    )
    if limit is not None:
        # Every fragment that reaches into the first ``limit`` characters lies in this prefix.
        longest = len(values[0]) if values else 0
        text = text[: limit + max(longest, FRAGMENT_CHARS)]
    for value in values:
        text = text.replace(value, _MASK)
    for value in values:
        text = _scrub_fragments(text, value)
    return text if limit is None else text[:limit]


def _scrub_fragments(text: str, secret: str) -> str:
    """Mask every maximal run of ``text`` whose every window of FRAGMENT_CHARS characters is
    one of ``secret``'s: a slight over-reach (windows from different places) is the safe side."""
    width = FRAGMENT_CHARS
    if len(secret) < width or len(text) < width:
        return text
    # Case-blind (a server may echo a token upper-cased), where lower() keeps positions.
    folded = text.lower() if len(text.lower()) == len(text) else text
    secret = secret.lower()
    windows = {secret[i : i + width] for i in range(len(secret) - width + 1)}
    covered = [False] * len(text)
    found = False
    for i in range(len(text) - width + 1):
        if folded[i : i + width] in windows:
            covered[i : i + width] = [True] * width
            found = True
    if not found:
        return text
    out: list[str] = []
    for i, char in enumerate(text):
        if not covered[i]:
            out.append(char)
        elif i == 0 or not covered[i - 1]:
            out.append(_MASK)
    return "".join(out)


def _split_userinfo(url: str) -> tuple[str, str, str] | None:
    """``(before, userinfo, after)`` around ``user:password@`` in ``url``'s authority."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, _ = rest[:cut].rpartition("@")
    if not at:
        return None
    return scheme + sep, userinfo, rest[len(userinfo) + 1 :]


def redact_url(url: str) -> str:
    """``url`` with its user name and password shown as ``***`` and its query dropped (a
    query may carry a token): the one form in which a URL is shown, logged or stored."""
    parts = _split_userinfo(url)
    if parts is not None:
        url = f"{parts[0]}{_MASK}@{parts[2]}"
    try:
        query = urlsplit(url).query
    except ValueError:
        return url.partition("?")[0]
    if query:
        url = url.replace("?" + query, "", 1)
    return url


def http_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an http(s) base URL (an API base, a Varnish node), or ``None``.

    One check for every such URL: a port past 65535, a broken IPv6 literal or a line
    break otherwise surfaced only at the first call, as a traceback or endless retries.
    """
    if not url.isprintable() or " " in url:
        return "holds white space or a control character"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:  # a bad IPv6 literal or port; never quotes userinfo
        return f"is not a usable URL ({err})"
    if parts.scheme not in ("http", "https"):
        return "needs http:// or https://"
    if not parts.hostname:
        return "has no host"
    if port == 0:
        return "has port 0"
    return None


def url_secrets(url: str | None) -> tuple[str, ...]:
    """The user name and password in ``url``, as written and decoded, for :func:`scrub`:
    an error about the URL may quote them."""
    parts = _split_userinfo(url) if url else None
    if parts is None:
        return ()
    userinfo = parts[1]
    pieces = {userinfo, *userinfo.split(":", 1)}
    return tuple(sorted(pieces | {unquote(p) for p in pieces}, key=len, reverse=True))
