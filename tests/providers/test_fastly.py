"""Fastly adapter: the wire format of key and URL purges, and how each failure is raised."""

from __future__ import annotations

import httpx
import pytest

from purger.errors import AuthError, RateLimitedError, RejectedError, TransientError, UsageError
from purger.model import Batch, TargetKind
from purger.providers import ProviderOptions, create_provider
from purger.providers.fastly import FastlyProvider, from_options

pytestmark = pytest.mark.anyio

TOKEN = "fastly-token-s3cr3t-0123456789"  # noqa: S105 (a fake, looked for in output)
ENV = {"FASTLY_API_TOKEN": TOKEN}
NOW = 1_700_000_000.0
KEYS_URL = "https://api.fastly.com/service/SVC123/purge"
KEYS = Batch(TargetKind.KEY, ("project/requests", "all-json"))
URL = Batch(TargetKind.URL, ("https://pypi.example.org/simple/Foo_Bar/?x=1",))
URL_API = "https://api.fastly.com/purge/pypi.example.org/simple/Foo_Bar/?x=1"


def make(client: httpx.AsyncClient, **options: object) -> FastlyProvider:
    opts = ProviderOptions(name="fastly", service_id="SVC123", timeout=3.5, **options)  # type: ignore[arg-type]
    return from_options(opts, client, ENV, clock=lambda: NOW)


async def test_keys_are_soft_purged_in_one_json_call(client, httpx_mock):
    """Keys go in one POST with a JSON body, the token, and Fastly-Soft-Purge: 1."""
    httpx_mock.add_response(
        method="POST",
        url=KEYS_URL,
        match_headers={
            "Fastly-Key": TOKEN,
            "Accept": "application/json",
            "Content-Type": "application/json",
            "Fastly-Soft-Purge": "1",
        },
        match_json={"surrogate_keys": ["project/requests", "all-json"]},
        json={"project/requests": "108-1", "all-json": "108-2"},
    )
    result = await make(client).purge(KEYS)
    assert (result.purged, result.purge_id) == (2, "108-1")
    assert httpx_mock.get_request().extensions["timeout"]["read"] == 3.5


async def test_hard_key_purge_drops_the_soft_header(client, httpx_mock):
    """With --hard the same call goes without Fastly-Soft-Purge."""
    httpx_mock.add_response(
        method="POST",
        url=KEYS_URL,
        match_headers={"Fastly-Key": TOKEN},
        match_json={"surrogate_keys": ["project/requests", "all-json"]},
        json={"project/requests": "1", "all-json": "2"},
    )
    provider = make(client, hard=True)
    await provider.purge(KEYS)
    assert "Fastly-Soft-Purge" not in httpx_mock.get_request().headers
    assert provider.limits.soft_purge is False


async def test_url_purge_uses_the_api_form_verbatim(client, httpx_mock):
    """A URL goes to POST /purge/{host/path?query} as given, soft, with the token."""
    httpx_mock.add_response(
        method="POST",
        url=URL_API,
        match_headers={"Fastly-Key": TOKEN, "Accept": "application/json", "Fastly-Soft-Purge": "1"},
        match_content=b"",
        json={"status": "ok", "id": "108-1391560174-974124"},
    )
    result = await make(client).purge(URL)
    assert (result.purged, result.purge_id) == (1, "108-1391560174-974124")
    assert httpx_mock.get_request().url.raw_path == b"/purge/pypi.example.org/simple/Foo_Bar/?x=1"


async def test_hard_url_purge(client, httpx_mock):
    """A hard URL purge has no soft header."""
    httpx_mock.add_response(method="POST", url=URL_API, json={"status": "ok", "id": "9"})
    await make(client, hard=True).purge(URL)
    assert "Fastly-Soft-Purge" not in httpx_mock.get_request().headers


async def test_api_base_points_elsewhere(client, httpx_mock):
    """--api-base replaces https://api.fastly.com (a proxy or a local fake)."""
    httpx_mock.add_response(
        method="POST", url="http://127.0.0.1:8999/service/SVC123/purge", json={"a": "1"}
    )
    await make(client, api_base="http://127.0.0.1:8999/").purge(Batch(TargetKind.KEY, ("a",)))


async def test_a_key_missing_from_the_answer_rejects_the_batch(client, httpx_mock):
    """Every key must come back with a purge id; a missing one makes the batch split."""
    httpx_mock.add_response(method="POST", url=KEYS_URL, json={"project/requests": "1"})
    with pytest.raises(RejectedError, match=r"no purge id for 1 of 2 keys.*'all-json'"):
        await make(client).purge(KEYS)


async def test_429_with_retry_after_then_success(client, httpx_mock):
    """429 carries Retry-After; the next call goes through."""
    httpx_mock.add_response(
        method="POST", url=KEYS_URL, status_code=429, headers={"Retry-After": "7"}
    )
    httpx_mock.add_response(
        method="POST", url=KEYS_URL, json={"project/requests": "1", "all-json": "2"}
    )
    provider = make(client)
    with pytest.raises(RateLimitedError) as caught:
        await provider.purge(KEYS)
    assert caught.value.retry_after == 7.0
    assert (await provider.purge(KEYS)).purged == 2


async def test_429_falls_back_to_the_reset_epoch(client, httpx_mock):
    """Without Retry-After, Fastly-RateLimit-Reset (epoch seconds) is read against the clock."""
    httpx_mock.add_response(
        method="POST",
        url=KEYS_URL,
        status_code=429,
        headers={"Fastly-RateLimit-Reset": str(int(NOW) + 42)},
    )
    with pytest.raises(RateLimitedError) as caught:
        await make(client).purge(KEYS)
    assert caught.value.retry_after == 42.0


async def test_429_without_a_hint(client, httpx_mock):
    """No header at all: retry_after is None, the run's backoff decides."""
    httpx_mock.add_response(method="POST", url=KEYS_URL, status_code=429)
    with pytest.raises(RateLimitedError) as caught:
        await make(client).purge(KEYS)
    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_transient(client, httpx_mock, status):
    """A 5xx may pass: TransientError with the status."""
    httpx_mock.add_response(method="POST", url=KEYS_URL, status_code=status)
    with pytest.raises(TransientError) as caught:
        await make(client).purge(KEYS)
    assert caught.value.status == status


@pytest.mark.parametrize(
    "exception", [httpx.ReadTimeout("read timed out"), httpx.ConnectError("connection refused")]
)
async def test_timeouts_and_connection_errors_are_transient(client, httpx_mock, exception):
    """Timeouts and transport errors are TransientError."""
    httpx_mock.add_exception(exception)
    with pytest.raises(TransientError):
        await make(client).purge(KEYS)


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_name_the_variable(client, httpx_mock, status):
    """401/403 is an AuthError that points at FASTLY_API_TOKEN."""
    httpx_mock.add_response(method="POST", url=KEYS_URL, status_code=status)
    with pytest.raises(AuthError, match="FASTLY_API_TOKEN") as caught:
        await make(client).purge(KEYS)
    assert (caught.value.provider, caught.value.status) == ("fastly", status)


async def test_400_is_rejected_with_fastly_message(client, httpx_mock):
    """A 400 is RejectedError carrying Fastly's msg and detail, never the token."""
    httpx_mock.add_response(
        method="POST",
        url=KEYS_URL,
        status_code=400,
        json={"msg": "Bad request", "detail": f"key {TOKEN}"},
    )
    with pytest.raises(RejectedError, match="Bad request: key \\*\\*\\*") as caught:
        await make(client).purge(KEYS)
    assert TOKEN not in str(caught.value)


async def test_unknown_service_is_a_usage_error(client, httpx_mock):
    """404 on the service path means --service-id is wrong."""
    httpx_mock.add_response(method="POST", url=KEYS_URL, status_code=404)
    with pytest.raises(UsageError, match="--service-id"):
        await make(client).purge(KEYS)


async def test_url_answer_not_ok_is_transient(client, httpx_mock):
    """A 200 whose status is not "ok" is retried, as PyPI does."""
    httpx_mock.add_response(method="POST", url=URL_API, json={"status": "error"})
    with pytest.raises(TransientError):
        await make(client).purge(URL)


async def test_missing_token_and_service_id_are_usage_errors(client):
    """FASTLY_API_TOKEN and --service-id are checked before anything is sent."""
    with pytest.raises(UsageError, match=r"^FASTLY_API_TOKEN is not set$"):
        from_options(ProviderOptions(name="fastly", service_id="S"), client, {})
    with pytest.raises(UsageError, match="--service-id"):
        from_options(ProviderOptions(name="fastly"), client, ENV)


async def test_token_is_never_shown(client, httpx_mock):
    """Neither repr(provider) nor any error message contains the token."""
    provider = create_provider(ProviderOptions(name="fastly", service_id="S"), client, ENV)
    assert TOKEN not in repr(provider)
    httpx_mock.add_response(status_code=401)
    with pytest.raises(AuthError) as caught:
        await provider.purge(KEYS)
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value)


async def test_limits(client):
    """256 keys or one URL a call, soft by default, no published bucket."""
    limits = make(client).limits
    assert limits.max_targets == {TargetKind.KEY: 256, TargetKind.URL: 1}
    assert limits.soft_purge is True
    assert limits.buckets == ()
    assert make(client).target_bytes(TargetKind.KEY, "a/b") == len('"a/b"') + 1
