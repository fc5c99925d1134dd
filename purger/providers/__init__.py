"""CDN providers: the options an operator gives, and the registry that builds adapters.

``create_provider(options, client, env)`` is the one way the run engine gets a provider:
it checks the options and the credentials in ``env`` (raising :class:`UsageError` for a
missing service id or token variable, before anything is sent) and wraps ``client``.

May import: ``errors``, ``model``. Adapters receive an httpx client; they never build one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from purger.errors import UsageError
from purger.providers.base import Provider, ProviderLimits, RateBucket

__all__ = [
    "PROVIDER_NAMES",
    "TOKEN_VARIABLES",
    "Provider",
    "ProviderLimits",
    "ProviderOptions",
    "RateBucket",
    "create_provider",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderOptions:
    """Every provider option the CLI and config file accept; each adapter reads its own.

    Secrets are not here: adapters read them from ``env`` (or an ``.edgerc`` file) when
    they are created, so options can be logged and stored in the state file.
    """

    name: str
    #: Send requests here instead of the provider's public API (a proxy or a local fake).
    api_base: str | None = None
    #: Hard purge (evict) instead of the soft purge (mark stale) that is the default.
    hard: bool = False
    #: Seconds for each API call, connect to last byte.
    timeout: float = 10.0
    #: A file holding the API token (fastly, cloudflare), instead of its variable. The
    #: path, not the token: options stay safe to log.
    token_file: Path | None = None
    # fastly
    service_id: str | None = None
    # cloudflare
    zone_id: str | None = None
    #: URLs per purge_cache call: 30 (legacy), 100 (current plans), 500 (Enterprise).
    files_cap: int = 30
    # akamai
    edgerc: Path | None = None
    edgerc_section: str = "default"
    network: Literal["staging", "production"] = "production"
    #: ``invalidate`` (mark stale, the default) or ``delete`` (evict).
    akamai_action: Literal["invalidate", "delete"] = "invalidate"
    #: What key templates name on Akamai: cache ``tag``s or ``cpcode``s.
    akamai_key_type: Literal["tag", "cpcode"] = "tag"
    # varnish
    #: Every cache node, as ``http://host:port``; each one gets every batch.
    endpoints: tuple[str, ...] = ()
    #: Request header carrying keys; default ``xkey-softpurge`` (soft) or ``xkey-purge``.
    key_header: str | None = None
    #: Instead of ``endpoints``: tiers from the origin outwards, ``name=http://a,http://b``
    #: each; a batch is purged on every node of a tier before the next tier sees it.
    tiers: tuple[str, ...] = ()
    #: Purge every batch a second time this many seconds after the first (internal tiers:
    #: Fastly shielding); ``None``: once.
    repurge_after: float | None = None


ProviderFactory = Callable[[ProviderOptions, httpx.AsyncClient, Mapping[str, str]], Provider]

PROVIDER_NAMES: tuple[str, ...] = ("akamai", "cloudflare", "fastly", "null", "varnish")
#: The providers whose credential is one API token (a variable, or ``token_file``).
TOKEN_VARIABLES: dict[str, str] = {
    "cloudflare": "CLOUDFLARE_API_TOKEN",
    "fastly": "FASTLY_API_TOKEN",
}


def create_provider(
    options: ProviderOptions, client: httpx.AsyncClient, env: Mapping[str, str]
) -> Provider:
    """Build the adapter ``options.name`` names, on ``client``, with credentials from ``env``."""
    if options.name not in PROVIDER_NAMES:
        raise UsageError(
            f"unknown provider {options.name!r}; choose one of {', '.join(PROVIDER_NAMES)}"
        )
    if options.token_file is not None and options.name == "akamai":
        # Akamai signs with EdgeGrid credentials: a token file would be silently unused.
        raise UsageError(
            "akamai reads its credentials from --edgerc or the AKAMAI_* variables, "
            "not from --token-file (provider.token_file)"
        )
    # Only the adapter in use is imported: each is its own module with its own helpers.
    module = importlib.import_module(f"purger.providers.{options.name}")
    factory: ProviderFactory = module.from_options
    return factory(options, client, env)
