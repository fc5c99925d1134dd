"""No provider error shows a secret, whole or in part: tokens echoed in 4xx bodies (cut
or not), EdgeGrid secrets, and the user name and password of an --api-base or node URL."""

from __future__ import annotations

import httpx
import pytest

from purger.errors import ProviderError, UsageError
from purger.model import FRAGMENT_CHARS, Batch, TargetKind
from purger.providers import ProviderOptions, create_provider
from purger.providers.base import Provider

pytestmark = pytest.mark.anyio

TOKEN = "Zq7xK2mP9vLw4RtY8nBc3HsD6fGj1aEu5oIk0yTrWq2ZxCvBnM"  # noqa: S105 - 50 chars, fake
PASSWORD = "hunter2-proxy-pw"  # noqa: S105 - a fake
USER = "proxyuser"
KEYS = Batch(TargetKind.KEY, ("project/a", "project/b"))
AKAMAI_ENV = {
    "AKAMAI_CLIENT_TOKEN": "akab-client-token-1",
    "AKAMAI_CLIENT_SECRET": TOKEN,
    "AKAMAI_ACCESS_TOKEN": "akab-access-token-1",
    "AKAMAI_HOST": "akab-host.luna.akamaiapis.net",
}


def fragments(text: str, secret: str) -> list[str]:
    """Every run of FRAGMENT_CHARS characters of ``secret`` found in ``text``."""
    width = FRAGMENT_CHARS
    return [
        secret[i : i + width]
        for i in range(len(secret) - width + 1)
        if secret[i : i + width] in text
    ]


def make(client: httpx.AsyncClient, name: str, api_base: str | None = None) -> Provider:
    options = ProviderOptions(name=name, service_id="SVC", zone_id="ZONE", api_base=api_base)
    env = AKAMAI_ENV if name == "akamai" else {f"{name.upper()}_API_TOKEN": TOKEN}
    return create_provider(options, client, env)


def echo(name: str, pad: int, html: bool) -> dict[str, object]:
    """A 400 whose body echoes the token after ``pad`` characters, in the provider's form."""
    text = "y" * pad + TOKEN + " was refused"
    if html:
        return {"status_code": 400, "html": f"{text}</body>"}
    bodies: dict[str, object] = {
        "fastly": {"msg": "Bad request", "detail": text},
        "cloudflare": {"success": False, "errors": [{"code": 1012, "message": text}]},
        "akamai": {"title": "Bad request", "detail": text},
    }
    return {"status_code": 400, "json": bodies[name]}


@pytest.mark.parametrize(
    ("name", "pad", "html"),
    [
        # Cut at 300 (JSON) and 200 (HTML) right after the token's first 49 characters.
        ("fastly", 300 - len("Bad request: ") - 49, False),
        ("fastly", 200 - 49, True),
        ("cloudflare", 300 - 49, False),
        ("cloudflare", 200 - 49, True),
        ("akamai", 300 - len("HTTP 400: Bad request: ") - 49, False),
        ("fastly", 10, False),
        ("cloudflare", 10, True),
    ],
)
async def test_an_echoed_token_cut_by_the_message_limit_leaks_nothing(
    client, httpx_mock, name, pad, html
):
    """The message is scrubbed before it is cut: no 8 characters of the token are left."""
    httpx_mock.add_response(method="POST", **echo(name, pad, html))
    with pytest.raises(ProviderError) as caught:
        await make(client, name).purge(KEYS)
    assert fragments(str(caught.value), TOKEN) == []
    assert "***" in str(caught.value)


async def test_a_body_holding_part_of_the_token_leaks_nothing(client, httpx_mock):
    """A body that itself cut the token still shows none of it."""
    detail = f"key {TOKEN[:20]}... is unknown; did you mean ...{TOKEN[-12:]}?"
    httpx_mock.add_response(method="POST", status_code=400, json={"msg": "Bad", "detail": detail})
    with pytest.raises(ProviderError) as caught:
        await make(client, "fastly").purge(KEYS)
    assert fragments(str(caught.value), TOKEN) == []


@pytest.mark.parametrize("name", ["fastly", "cloudflare", "akamai"])
async def test_api_base_userinfo_is_never_shown(client, httpx_mock, name):
    """A proxy's user name and password stay out of repr, transport and usage errors."""
    base = f"http://{USER}:{PASSWORD}@proxy.example:3128"
    provider = make(client, name, base)
    assert PASSWORD not in repr(provider)
    assert USER not in repr(provider)
    httpx_mock.add_exception(httpx.ConnectError(f"cannot connect to {base} as {USER}:{PASSWORD}"))
    with pytest.raises(ProviderError) as caught:
        await provider.purge(KEYS)
    assert PASSWORD not in str(caught.value)
    assert USER not in str(caught.value)
    httpx_mock.add_response(method="POST", status_code=302 if name != "akamai" else 404)
    with pytest.raises(UsageError) as usage:
        await provider.purge(KEYS)
    assert "proxy.example:3128" in str(usage.value)
    assert PASSWORD not in str(usage.value)
    assert USER not in str(usage.value)


async def test_varnish_nodes_are_named_without_their_userinfo(client, httpx_mock):
    """A node URL with user:password@ is named by host and port in every failure."""
    nodes = (f"http://{USER}:{PASSWORD}@10.0.0.1:6081", "http://10.0.0.2:6081")
    options = ProviderOptions(name="varnish", endpoints=nodes)
    provider = create_provider(options, client, {})
    assert PASSWORD not in repr(provider)
    httpx_mock.add_exception(httpx.ConnectError(f"{USER}:{PASSWORD} refused"))
    httpx_mock.add_response(method="PURGE", status_code=400)
    with pytest.raises(ProviderError) as caught:
        await provider.purge(KEYS)
    message = str(caught.value)
    assert "http://***@10.0.0.1:6081" in message
    assert PASSWORD not in message
    assert USER not in message
    with pytest.raises(UsageError) as bad:
        create_provider(
            ProviderOptions(name="varnish", endpoints=(f"ftp://{USER}:{PASSWORD}@x",)), client, {}
        )
    assert PASSWORD not in str(bad.value)
