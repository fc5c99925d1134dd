"""The provider option group: every provider flag of ``purger run``, made into
:class:`~purger.providers.ProviderOptions`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from purger.cli._app import (
    PROVIDER_PANEL,
)
from purger.cli._options import number, number_value, option_group
from purger.config.schema import from_flag, setting_of
from purger.errors import UsageError
from purger.providers import PROVIDER_NAMES, ProviderOptions

__all__ = ["AkamaiAction", "AkamaiKeyType", "FilesCapOpt", "HardOpt", "Network", "ProviderOptions"]

#: ``--hard``, here and in ``purger estimate`` (whose provider needs no account).
HardOpt = Annotated[
    bool,
    typer.Option(
        "--hard",
        help="Hard purge (evict; every purged object is fetched again) instead of the"
        " default soft purge.",
        rich_help_panel=PROVIDER_PANEL,
    ),
]
#: ``--files-cap``, here and in ``purger estimate``.
FilesCapOpt = Annotated[
    str,
    number("provider.files_cap", "Cloudflare URLs per call: 30, 100 or 500.", PROVIDER_PANEL),
]


class Network(StrEnum):
    STAGING = "staging"
    PRODUCTION = "production"


class AkamaiAction(StrEnum):
    INVALIDATE = "invalidate"
    DELETE = "delete"


class AkamaiKeyType(StrEnum):
    TAG = "tag"
    CPCODE = "cpcode"


@option_group
def _provider(
    provider_name: Annotated[
        str,
        typer.Option(
            "--provider",
            help=f"CDN API: {', '.join(PROVIDER_NAMES)}.",
            show_default=False,
            rich_help_panel=PROVIDER_PANEL,
        ),
    ] = "",
    api_base: Annotated[
        str | None,
        typer.Option(
            "--api-base",
            help="Send API calls here (a proxy or a fake).",
            rich_help_panel=PROVIDER_PANEL,
        ),
    ] = None,
    hard: HardOpt = False,
    timeout: Annotated[
        str, number("provider.timeout", "Seconds for each API call.", PROVIDER_PANEL)
    ] = "10",
    service_id: Annotated[
        str | None,
        typer.Option("--service-id", help="Fastly service.", rich_help_panel=PROVIDER_PANEL),
    ] = None,
    zone_id: Annotated[
        str | None,
        typer.Option("--zone-id", help="Cloudflare zone.", rich_help_panel=PROVIDER_PANEL),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="File holding the Fastly or Cloudflare API token (instead of its variable).",
            metavar="FILE",
            rich_help_panel=PROVIDER_PANEL,
        ),
    ] = None,
    files_cap: FilesCapOpt = "30",
    edgerc: Annotated[
        Path | None,
        typer.Option(
            "--edgerc", help="Akamai credentials file (~/.edgerc).", rich_help_panel=PROVIDER_PANEL
        ),
    ] = None,
    edgerc_section: Annotated[
        str,
        typer.Option(
            "--edgerc-section", help="Section of --edgerc.", rich_help_panel=PROVIDER_PANEL
        ),
    ] = "default",
    network: Annotated[
        Network,
        typer.Option("--network", help="Akamai network.", rich_help_panel=PROVIDER_PANEL),
    ] = Network.PRODUCTION,
    akamai_action: Annotated[
        AkamaiAction,
        typer.Option(
            "--akamai-action",
            help="Akamai: invalidate (soft) or delete.",
            rich_help_panel=PROVIDER_PANEL,
        ),
    ] = AkamaiAction.INVALIDATE,
    akamai_key_type: Annotated[
        AkamaiKeyType,
        typer.Option(
            "--akamai-key-type",
            help="Akamai keys are tags or cpcodes.",
            rich_help_panel=PROVIDER_PANEL,
        ),
    ] = AkamaiKeyType.TAG,
    endpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--endpoint",
            help="Varnish node http://host:port (repeat for each node).",
            rich_help_panel=PROVIDER_PANEL,
        ),
    ] = None,
    tier: Annotated[
        list[str] | None,
        typer.Option(
            "--tier",
            help="Instead of --endpoint: a Varnish tier NAME=http://host:port[,...], from the"
            " origin outwards (repeat); each batch is purged tier by tier.",
            rich_help_panel=PROVIDER_PANEL,
        ),
    ] = None,
    key_header: Annotated[
        str | None,
        typer.Option(
            "--key-header",
            help="Varnish header for keys (xkey-softpurge / xkey-purge).",
            rich_help_panel=PROVIDER_PANEL,
        ),
    ] = None,
    repurge_after: Annotated[
        str | None,
        number(
            "provider.repurge_after",
            "Purge each batch again SECONDS later (internal tiers, e.g. Fastly shielding).",
            PROVIDER_PANEL,
        ),
    ] = None,
) -> ProviderOptions:
    if api_base is not None:
        from_flag(setting_of("provider.api_base"), api_base)  # a URL, checked as the key's
    for node in endpoint or ():
        from_flag(setting_of("provider.endpoints"), node)
    if not provider_name:
        raise UsageError("--provider is required")
    return ProviderOptions(
        name=provider_name,
        api_base=api_base,
        hard=hard,
        timeout=number_value("provider.timeout", timeout),
        service_id=service_id,
        zone_id=zone_id,
        token_file=token_file,
        files_cap=number_value("provider.files_cap", files_cap),
        edgerc=edgerc,
        edgerc_section=edgerc_section,
        network=network.value,
        akamai_action=akamai_action.value,
        akamai_key_type=akamai_key_type.value,
        endpoints=tuple(endpoint or ()),
        tiers=tuple(tier or ()),
        key_header=key_header,
        repurge_after=number_value("provider.repurge_after", repurge_after),
    )
