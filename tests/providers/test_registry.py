"""The registry: create_provider builds every adapter from options and a fake env."""

from __future__ import annotations

import pytest

from purger.errors import UsageError
from purger.providers import PROVIDER_NAMES, ProviderOptions, create_provider
from purger.providers.akamai import AkamaiProvider
from purger.providers.cloudflare import CloudflareProvider
from purger.providers.fastly import FastlyProvider
from purger.providers.null import NullProvider
from purger.providers.varnish import VarnishProvider

pytestmark = pytest.mark.anyio

ENV = {
    "FASTLY_API_TOKEN": "f-token",
    "CLOUDFLARE_API_TOKEN": "cf-token",
    "AKAMAI_CLIENT_TOKEN": "akab-c",
    "AKAMAI_CLIENT_SECRET": "akab-s",
    "AKAMAI_ACCESS_TOKEN": "akab-a",
    "AKAMAI_HOST": "akab-h.luna.akamaiapis.net",
}
CASES = [
    (ProviderOptions(name="akamai"), AkamaiProvider),
    (ProviderOptions(name="cloudflare", zone_id="Z"), CloudflareProvider),
    (ProviderOptions(name="fastly", service_id="S"), FastlyProvider),
    (ProviderOptions(name="null"), NullProvider),
    (ProviderOptions(name="varnish", endpoints=("http://127.0.0.1:6081",)), VarnishProvider),
]


@pytest.mark.parametrize(("options", "cls"), CASES, ids=[c[0].name for c in CASES])
async def test_each_provider_is_built_from_options(client, httpx_mock, options, cls):
    """Each name builds its adapter, with its name, limits and no request sent."""
    provider = create_provider(options, client, ENV)
    assert isinstance(provider, cls)
    assert provider.name == options.name
    assert provider.limits.max_targets
    for secret in ("f-token", "cf-token", "akab-s"):
        assert secret not in repr(provider)
    assert httpx_mock.get_requests() == []


def test_every_registered_name_is_covered():
    """The cases above cover PROVIDER_NAMES."""
    assert sorted(options.name for options, _ in CASES) == sorted(PROVIDER_NAMES)


async def test_unknown_provider_is_a_usage_error(client):
    """An unknown name is a UsageError listing the known ones."""
    with pytest.raises(UsageError, match=r"unknown provider 'bunny'.*akamai, cloudflare"):
        create_provider(ProviderOptions(name="bunny"), client, ENV)


@pytest.mark.parametrize(
    ("options", "flag"),
    [
        (ProviderOptions(name="fastly", service_id="S"), "FASTLY_API_TOKEN"),
        (ProviderOptions(name="cloudflare", zone_id="Z"), "CLOUDFLARE_API_TOKEN"),
        (ProviderOptions(name="varnish"), "--endpoint"),
    ],
)
async def test_missing_requirements_are_usage_errors(client, options, flag):
    """A missing variable or option is a UsageError naming it, before anything is sent."""
    with pytest.raises(UsageError, match=flag):
        create_provider(options, client, {})
