"""Akamai adapter: Fast Purge v3 paths and bodies, EdgeGrid headers, failures, body cap."""

from __future__ import annotations

import json

import httpx
import pytest

from purger.errors import AuthError, RateLimitedError, RejectedError, TransientError, UsageError
from purger.model import Batch, TargetKind
from purger.providers import ProviderOptions, create_provider
from purger.providers.akamai import AkamaiProvider, from_options
from purger.providers.edgegrid import authorization, load_credentials

pytestmark = pytest.mark.anyio

SECRET = "akamai-client-secret-s3cr3t+xyz="  # noqa: S105 (a fake, looked for in output)
ENV = {
    "AKAMAI_CLIENT_TOKEN": "akab-client-token-1",
    "AKAMAI_CLIENT_SECRET": SECRET,
    "AKAMAI_ACCESS_TOKEN": "akab-access-token-1",
    "AKAMAI_HOST": "akab-host.luna.akamaiapis.net",
}
NOW = 1_700_000_000.0
BASE = "https://akab-host.luna.akamaiapis.net"
TAGS = Batch(TargetKind.KEY, ("project/requests", "all-json"))
ACCEPTED = {
    "httpStatus": 201,
    "detail": "Request accepted",
    "estimatedSeconds": 5,
    "purgeId": "edcp-purge-1",
    "supportId": "edcp-support-1",
}


def make(client: httpx.AsyncClient, **options: object) -> AkamaiProvider:
    opts = ProviderOptions(name="akamai", timeout=6.0, **options)  # type: ignore[arg-type]
    return from_options(opts, client, ENV, clock=lambda: NOW, nonce=lambda: "nonce-1")


def expected_authorization(url: str, body: bytes) -> str:
    """What the request must carry: signed over exactly this URL and body."""
    request = httpx.Request("POST", url, content=body, headers={"Content-Type": "application/json"})
    return authorization(
        request,
        load_credentials(ENV, None, "default"),
        timestamp="20231114T22:13:20+0000",
        nonce="nonce-1",
    )


async def test_tags_are_invalidated_by_default(client, httpx_mock):
    """Keys go to /ccu/v3/invalidate/tag/production as {"objects": [...]}, signed."""
    url = f"{BASE}/ccu/v3/invalidate/tag/production"
    body = b'{"objects":["project/requests","all-json"]}'
    httpx_mock.add_response(
        method="POST",
        url=url,
        match_headers={
            "Content-Type": "application/json",
            "Authorization": expected_authorization(url, body),
        },
        match_content=body,
        status_code=201,
        json=ACCEPTED,
    )
    provider = make(client)
    result = await provider.purge(TAGS)
    assert (result.purged, result.purge_id) == (2, "edcp-purge-1")
    assert provider.limits.soft_purge is True
    sent = httpx_mock.get_request()
    assert sent.headers["Authorization"].startswith(
        "EG1-HMAC-SHA256 client_token=akab-client-token-1;access_token=akab-access-token-1;"
        "timestamp=20231114T22:13:20+0000;nonce=nonce-1;signature="
    )
    assert sent.extensions["timeout"]["read"] == 6.0


@pytest.mark.parametrize("options", [{"hard": True}, {"akamai_action": "delete"}])
async def test_hard_or_delete_action_deletes(client, httpx_mock, options):
    """--hard and --akamai-action delete both go to /ccu/v3/delete/..."""
    httpx_mock.add_response(
        method="POST",
        url=f"{BASE}/ccu/v3/delete/tag/production",
        match_json={"objects": list(TAGS.targets)},
        status_code=201,
        json=ACCEPTED,
    )
    provider = make(client, **options)
    await provider.purge(TAGS)
    assert provider.limits.soft_purge is False


async def test_urls_on_staging(client, httpx_mock):
    """URLs go to .../url/{network}, as given."""
    urls = ("https://www.example.com/Simple/Foo_Bar/", "https://www.example.com/x?y=1")
    httpx_mock.add_response(
        method="POST",
        url=f"{BASE}/ccu/v3/invalidate/url/staging",
        match_json={"objects": list(urls)},
        status_code=201,
        json=ACCEPTED,
    )
    await make(client, network="staging").purge(Batch(TargetKind.URL, urls))


async def test_cpcodes_are_sent_as_integers(client, httpx_mock):
    """With --akamai-key-type cpcode, keys are JSON numbers."""
    httpx_mock.add_response(
        method="POST",
        url=f"{BASE}/ccu/v3/invalidate/cpcode/production",
        match_content=b'{"objects":[12345,98765]}',
        status_code=201,
        json=ACCEPTED,
    )
    provider = make(client, akamai_key_type="cpcode")
    await provider.purge(Batch(TargetKind.KEY, ("12345", "98765")))
    assert provider.target_bytes(TargetKind.KEY, "12345") == len("12345,")


async def test_a_non_integer_cpcode_is_rejected_unsent(client, httpx_mock):
    """A CP code that is not an integer rejects its batch without a request."""
    with pytest.raises(RejectedError, match="'12a'"):
        await make(client, akamai_key_type="cpcode").purge(Batch(TargetKind.KEY, ("1", "12a")))
    assert httpx_mock.get_requests() == []


async def test_api_base_points_elsewhere(client, httpx_mock):
    """--api-base replaces the .edgerc host."""
    httpx_mock.add_response(
        method="POST",
        url="http://127.0.0.1:8997/ccu/v3/invalidate/tag/production",
        status_code=201,
        json=ACCEPTED,
    )
    await make(client, api_base="http://127.0.0.1:8997").purge(TAGS)
    assert httpx_mock.get_request().headers["Host"] == "127.0.0.1:8997"


async def test_object_bucket_429_shrinks_the_batch_then_succeeds(client, httpx_mock):
    """An object-bucket 429 waits 5 s and sets max_targets to rateLimitRemaining."""
    httpx_mock.add_response(
        method="POST",
        status_code=429,
        json={"title": "URL Rate Limit exceeded", "httpStatus": 429, "rateLimitRemaining": 1},
    )
    httpx_mock.add_response(method="POST", status_code=201, json=ACCEPTED)
    provider = make(client)
    with pytest.raises(RateLimitedError, match="URL Rate Limit exceeded") as caught:
        await provider.purge(TAGS)
    assert (caught.value.retry_after, caught.value.max_targets) == (5.0, 1)
    assert (await provider.purge(TAGS)).purge_id == "edcp-purge-1"


async def test_request_bucket_429_honours_retry_after(client, httpx_mock):
    """Retry-After wins over 5 s; the request bucket's remaining count is not objects."""
    httpx_mock.add_response(
        method="POST",
        status_code=429,
        headers={"Retry-After": "2"},
        json={"title": "Rate Limit exceeded", "httpStatus": 429, "rateLimitRemaining": 0},
    )
    with pytest.raises(RateLimitedError) as caught:
        await make(client).purge(TAGS)
    assert (caught.value.retry_after, caught.value.max_targets) == (2.0, None)


@pytest.mark.parametrize("status", [500, 503, 504, 507])
async def test_5xx_is_transient(client, httpx_mock, status):
    """A 5xx is TransientError."""
    httpx_mock.add_response(method="POST", status_code=status)
    with pytest.raises(TransientError):
        await make(client).purge(TAGS)


async def test_timeout_is_transient(client, httpx_mock):
    """A read timeout is TransientError."""
    httpx_mock.add_exception(httpx.ReadTimeout("read timed out"))
    with pytest.raises(TransientError):
        await make(client).purge(TAGS)


async def test_401_names_where_the_credentials_came_from(client, httpx_mock):
    """401 is an AuthError naming the AKAMAI_* variables (or the .edgerc section)."""
    httpx_mock.add_response(method="POST", status_code=401, json={"title": "Unauthorized"})
    with pytest.raises(AuthError, match="AKAMAI_CLIENT_TOKEN"):
        await make(client).purge(TAGS)


async def test_401_names_the_edgerc_section(client, httpx_mock, tmp_path):
    """With an .edgerc, the AuthError points at its file and section."""
    edgerc = tmp_path / "edgerc"
    edgerc.write_text(
        "[ccu]\nclient_token = c\nclient_secret = s\naccess_token = a\nhost = akab-x.net\n"
    )
    options = ProviderOptions(name="akamai", edgerc=edgerc, edgerc_section="ccu")
    httpx_mock.add_response(
        method="POST", url="https://akab-x.net/ccu/v3/invalidate/tag/production", status_code=401
    )
    with pytest.raises(AuthError, match=r"section \[ccu\]"):
        await create_provider(options, client, {}).purge(TAGS)


async def test_403_for_a_foreign_url_is_rejected(client, httpx_mock):
    """403 "unauthorized arl" is about a URL in the batch, not the credential."""
    httpx_mock.add_response(
        method="POST",
        status_code=403,
        json={"title": "unauthorized arl", "detail": "https://other.example/x"},
    )
    with pytest.raises(RejectedError, match=r"unauthorized arl: https://other\.example/x"):
        await make(client).purge(TAGS)


async def test_400_is_rejected_with_title_and_detail(client, httpx_mock):
    """A problem+json 400 becomes RejectedError with its title and detail."""
    httpx_mock.add_response(
        method="POST",
        status_code=400,
        headers={"Content-Type": "application/problem+json"},
        json={"title": "Bad request", "detail": "Invalid tag: a b", "httpStatus": 400},
    )
    with pytest.raises(RejectedError, match="HTTP 400: Bad request: Invalid tag: a b"):
        await make(client).purge(TAGS)


async def test_404_is_a_usage_error(client, httpx_mock):
    """The paths are fixed: a 404 means --api-base or the host is wrong."""
    httpx_mock.add_response(method="POST", status_code=404)
    with pytest.raises(UsageError, match="--api-base"):
        await make(client).purge(TAGS)


async def test_missing_credentials_are_a_usage_error(client, tmp_path):
    """No AKAMAI_* variables and no ~/.edgerc: UsageError naming --edgerc."""
    with pytest.raises(UsageError, match="--edgerc"):
        from_options(ProviderOptions(name="akamai"), client, {"HOME": str(tmp_path)})


async def test_secrets_are_never_shown(client, httpx_mock):
    """Neither repr(provider) nor an error echoing the secret shows it."""
    provider = make(client)
    assert SECRET not in repr(provider)
    httpx_mock.add_response(
        method="POST", status_code=400, json={"title": "Bad", "detail": f"saw {SECRET}"}
    )
    with pytest.raises(RejectedError) as caught:
        await provider.purge(TAGS)
    assert SECRET not in str(caught.value)


def largest_batch(provider: AkamaiProvider, kind: TargetKind, targets: list[str]) -> list[str]:
    """The batcher's rule: add targets while their bytes plus overhead fit max_bytes."""
    limits = provider.limits
    assert limits.max_bytes is not None
    size, batch = limits.overhead_bytes, list[str]()
    for target in targets:
        cost = provider.target_bytes(kind, target)
        if size + cost > limits.max_bytes or len(batch) == limits.max_targets[kind]:
            break
        batch.append(target)
        size += cost
    return batch


@pytest.mark.parametrize(
    "template",
    [
        "https://www.example.com/{i:06d}/" + "x" * 400,
        'https://www.example.com/ü/"quoted"\\/{i}/' + "é" * 150,  # JSON escapes grow these
    ],
)
async def test_the_largest_batch_stays_under_50000_bytes(client, httpx_mock, template):
    """Built by target_bytes and max_bytes, the body actually sent is <= 50,000 bytes."""
    provider = make(client)
    targets = [template.format(i=i) for i in range(1000)]
    batch = largest_batch(provider, TargetKind.URL, targets)
    httpx_mock.add_response(method="POST", status_code=201, json=ACCEPTED)
    await provider.purge(Batch(TargetKind.URL, tuple(batch)))
    body = httpx_mock.get_request().content
    assert len(body) <= 50_000
    assert json.loads(body) == {"objects": batch}
    # One more target would not have fitted.
    assert len(body) + provider.target_bytes(TargetKind.URL, targets[len(batch)]) > 50_000 - 1


async def test_buckets_follow_the_reference(client):
    """Requests 100 at 50/s; tags 5,000 at 500/min; URLs 10,000 at 200/s."""
    buckets = {(b.unit, b.burst, b.per_second) for b in make(client).limits.buckets}
    assert buckets == {("calls", 100, 50), ("targets", 5000, 500 / 60), ("targets", 10_000, 200)}
