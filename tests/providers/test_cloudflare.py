"""Cloudflare adapter: purge_cache bodies, the v4 envelope, and how each failure is raised."""

from __future__ import annotations

import httpx
import pytest

from purger.errors import AuthError, RateLimitedError, RejectedError, TransientError, UsageError
from purger.model import Batch, TargetKind
from purger.providers import ProviderOptions, create_provider
from purger.providers.cloudflare import CloudflareProvider, from_options

pytestmark = pytest.mark.anyio

TOKEN = "cf-token-s3cr3t-abcdefghijklmnop"  # noqa: S105 (a fake, looked for in output)
ENV = {"CLOUDFLARE_API_TOKEN": TOKEN}
ENDPOINT = "https://api.cloudflare.com/client/v4/zones/ZONE1/purge_cache"
TAGS = Batch(TargetKind.KEY, ("project-requests", "all-json"))
FILES = Batch(TargetKind.URL, ("https://www.example.com/a.css", "https://www.example.com/b?x=1"))
OK = {"success": True, "errors": [], "messages": [], "result": {"id": "purge-123"}}
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def make(client: httpx.AsyncClient, **options: object) -> CloudflareProvider:
    opts = ProviderOptions(name="cloudflare", zone_id="ZONE1", timeout=4.0, **options)  # type: ignore[arg-type]
    return from_options(opts, client, ENV, clock=lambda: 0.0)


def failure(code: int, message: str) -> dict[str, object]:
    return {"success": False, "errors": [{"code": code, "message": message}], "result": None}


async def test_tags_are_purged_in_one_call(client, httpx_mock):
    """Keys go as {"tags": [...]} with the bearer token; result.id is the purge id."""
    httpx_mock.add_response(
        method="POST",
        url=ENDPOINT,
        match_headers=AUTH,
        match_json={"tags": ["project-requests", "all-json"]},
        json=OK,
    )
    result = await make(client).purge(TAGS)
    assert (result.purged, result.purge_id) == (2, "purge-123")
    assert httpx_mock.get_request().extensions["timeout"]["read"] == 4.0


async def test_urls_are_purged_as_files(client, httpx_mock):
    """URLs go as {"files": [...]}, verbatim."""
    httpx_mock.add_response(
        method="POST",
        url=ENDPOINT,
        match_headers=AUTH,
        match_json={"files": list(FILES.targets)},
        json=OK,
    )
    assert (await make(client).purge(FILES)).purged == 2


async def test_hard_changes_nothing(client, httpx_mock):
    """Cloudflare has no soft purge: --hard sends the same request, soft_purge is False."""
    httpx_mock.add_response(
        method="POST",
        url=ENDPOINT,
        match_headers=AUTH,
        match_json={"tags": list(TAGS.targets)},
        json=OK,
    )
    provider = make(client, hard=True)
    await provider.purge(TAGS)
    assert make(client).limits.soft_purge is False
    assert provider.limits == make(client).limits


async def test_api_base_points_elsewhere(client, httpx_mock):
    """--api-base replaces https://api.cloudflare.com."""
    httpx_mock.add_response(
        method="POST", url="http://127.0.0.1:8998/client/v4/zones/ZONE1/purge_cache", json=OK
    )
    await make(client, api_base="http://127.0.0.1:8998").purge(TAGS)


async def test_success_false_is_rejected_with_code_and_message(client, httpx_mock):
    """A success: false envelope names the first error's code and message."""
    httpx_mock.add_response(
        method="POST", url=ENDPOINT, status_code=400, json=failure(1012, "bad tag")
    )
    with pytest.raises(RejectedError, match="HTTP 400: error 1012: bad tag"):
        await make(client).purge(TAGS)


async def test_success_false_on_200_is_rejected(client, httpx_mock):
    """Even on a 200, success: false is a failure."""
    httpx_mock.add_response(method="POST", url=ENDPOINT, json=failure(1015, "too many files"))
    with pytest.raises(RejectedError, match="error 1015: too many files"):
        await make(client).purge(FILES)


async def test_200_that_is_not_an_envelope_is_transient(client, httpx_mock):
    """A 200 with an HTML body came from something in between: retry."""
    httpx_mock.add_response(method="POST", url=ENDPOINT, html="<html>gateway</html>")
    with pytest.raises(TransientError):
        await make(client).purge(TAGS)


async def test_429_with_retry_after_then_success(client, httpx_mock):
    """429 carries Retry-After; the next call goes through."""
    httpx_mock.add_response(
        method="POST",
        url=ENDPOINT,
        status_code=429,
        headers={"Retry-After": "30"},
        json=failure(971, "slow down"),
    )
    httpx_mock.add_response(method="POST", url=ENDPOINT, json=OK)
    provider = make(client)
    with pytest.raises(RateLimitedError, match="error 971: slow down") as caught:
        await provider.purge(TAGS)
    assert caught.value.retry_after == 30.0
    assert (await provider.purge(TAGS)).purge_id == "purge-123"


async def test_429_reads_the_ratelimit_header(client, httpx_mock):
    """Without Retry-After, the t= of the 2025 Ratelimit header is the wait."""
    httpx_mock.add_response(
        method="POST", url=ENDPOINT, status_code=429, headers={"Ratelimit": '"default";r=0;t=12'}
    )
    with pytest.raises(RateLimitedError) as caught:
        await make(client).purge(TAGS)
    assert caught.value.retry_after == 12.0


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_is_transient(client, httpx_mock, status):
    """A 5xx is TransientError."""
    httpx_mock.add_response(method="POST", url=ENDPOINT, status_code=status)
    with pytest.raises(TransientError):
        await make(client).purge(TAGS)


async def test_timeout_is_transient(client, httpx_mock):
    """A read timeout is TransientError."""
    httpx_mock.add_exception(httpx.ReadTimeout("read timed out"))
    with pytest.raises(TransientError, match="no answer within 4 s"):
        await make(client).purge(TAGS)


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_name_the_variable(client, httpx_mock, status):
    """401/403 is an AuthError that points at CLOUDFLARE_API_TOKEN."""
    httpx_mock.add_response(
        method="POST", url=ENDPOINT, status_code=status, json=failure(10000, "Authentication error")
    )
    with pytest.raises(AuthError, match="CLOUDFLARE_API_TOKEN"):
        await make(client).purge(TAGS)


@pytest.mark.parametrize(("status", "code"), [(404, 7003), (400, 7003), (400, 7000)])
async def test_unknown_zone_is_a_usage_error(client, httpx_mock, status, code):
    """A 404 or "could not route" means --zone-id is wrong."""
    httpx_mock.add_response(
        method="POST", url=ENDPOINT, status_code=status, json=failure(code, "no route")
    )
    with pytest.raises(UsageError, match="--zone-id"):
        await make(client).purge(TAGS)


async def test_missing_token_and_zone_are_usage_errors(client):
    """CLOUDFLARE_API_TOKEN and --zone-id are checked before anything is sent."""
    with pytest.raises(UsageError, match=r"^CLOUDFLARE_API_TOKEN is not set$"):
        from_options(ProviderOptions(name="cloudflare", zone_id="Z"), client, {})
    with pytest.raises(UsageError, match="--zone-id"):
        from_options(ProviderOptions(name="cloudflare"), client, ENV)


@pytest.mark.parametrize("cap", [0, 501, -30])
async def test_files_cap_is_validated(client, cap):
    """--files-cap must be 1..500 (30, 100 and 500 are the plans' caps)."""
    with pytest.raises(UsageError, match="--files-cap"):
        make(client, files_cap=cap)


@pytest.mark.parametrize("cap", [30, 100, 500])
async def test_files_cap_sets_the_url_batch(client, cap):
    """URLs per call follow --files-cap; tags stay at 100."""
    assert make(client, files_cap=cap).limits.max_targets == {
        TargetKind.KEY: 100,
        TargetKind.URL: cap,
    }


async def test_token_is_never_shown(client, httpx_mock):
    """Neither repr(provider) nor an error echoing the token shows it."""
    provider = create_provider(ProviderOptions(name="cloudflare", zone_id="Z"), client, ENV)
    assert TOKEN not in repr(provider)
    httpx_mock.add_response(status_code=400, json=failure(9109, f"Invalid token {TOKEN}"))
    with pytest.raises(RejectedError) as caught:
        await provider.purge(TAGS)
    assert TOKEN not in str(caught.value)
    assert "***" in str(caught.value)


async def test_buckets_stay_under_the_global_api_limit(client):
    """The declared bucket never allows more than 1,200 calls in 5 minutes."""
    (bucket,) = make(client).limits.buckets
    assert bucket.unit == "calls"
    assert bucket.burst + bucket.per_second * 300 <= 1200
