"""What a probe fetches: each name's URL targets with the spellings that made them, and the
request that sends a target URL through a cache node (pure)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from purger.errors import UsageError
from purger.model import TargetKind
from purger.planning.targets import Template, targets_of

__all__ = ["ProbeTarget", "check_nodes", "in_sample", "probe_targets", "through_node"]


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """A URL to probe, the normalized name it belongs to, and the spellings of that name
    as given (written back by ``scan --out``, so ``run`` renders ``{raw}`` targets too)."""

    url: str
    name: str
    spellings: tuple[str, ...]


def probe_targets(
    names: Iterable[str], templates: Sequence[Template], aliases: Mapping[str, tuple[str, ...]]
) -> Iterator[ProbeTarget]:
    """Every URL target of every name (one per row for column templates), in name then
    template order, without repeats: the targets a run purges."""
    for name in names:
        spellings = aliases.get(name) or (name,)
        for url in targets_of(name, templates, TargetKind.URL, aliases):
            yield ProbeTarget(url, name, spellings)


def check_nodes(nodes: Sequence[str]) -> tuple[str, ...]:
    """``--via`` values: ``http://host:port`` each (a cache node speaks plain HTTP here)."""
    for node in nodes:
        parts = urlsplit(node)
        if "@" in parts.netloc:  # never echo a password back
            raise UsageError("--via: a cache node takes no user:password@ (it would be shown)")
        if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
            raise UsageError(f"--via {node!r}: give a cache node as http://host:port")
    return tuple(dict.fromkeys(node.rstrip("/") for node in nodes))


def through_node(url: str, node: str | None) -> tuple[str, str | None]:
    """The URL to request and the ``Host`` to send: the target's own host and path,
    verbatim, on a connection to ``node`` (like curl's ``--connect-to``); without a node,
    the URL itself."""
    if node is None:
        return url, None
    _scheme, sep, rest = url.partition("://")
    if not sep or not rest or rest[0] in "/?#":
        raise UsageError(f"{url!r} has no scheme and host")
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:].partition("#")[0]
    if not path.startswith("/"):
        path = "/" + path
    return node + path, authority.rpartition("@")[2]


def in_sample(url: str, fraction: float) -> bool:
    """Whether ``url`` is in a ``fraction`` sample: by its hash, so that the same targets
    are checked again on the next verify."""
    if fraction >= 1:
        return True
    digest = hashlib.blake2b(url.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2**64
