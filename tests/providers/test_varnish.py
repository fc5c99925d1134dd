"""Varnish adapter: PURGE fan-out to every node, xkey headers, URL Host, failures per node."""

from __future__ import annotations

import httpx
import pytest

from purger.errors import AuthError, RateLimitedError, RejectedError, TransientError, UsageError
from purger.model import Batch, TargetKind
from purger.providers import ProviderOptions, create_provider
from purger.providers.varnish import VarnishProvider, from_options

pytestmark = pytest.mark.anyio

NODES = ("http://10.0.0.1:6081", "http://10.0.0.2:6081/")
KEYS = Batch(TargetKind.KEY, ("project/foo", "all-json"))


def make(client: httpx.AsyncClient, **options: object) -> VarnishProvider:
    opts = ProviderOptions(name="varnish", endpoints=NODES, timeout=2.0, **options)  # type: ignore[arg-type]
    return from_options(opts, client, {}, clock=lambda: 0.0)


def purged(count: int) -> dict[str, object]:
    """The bench VCL's answer: 200 "Purged N" with X-Purged-Count."""
    return {
        "headers": {"X-Purged-Count": str(count), "Content-Type": "application/json"},
        "json": {"status": "ok", "purged": count},
    }


async def test_keys_are_soft_purged_on_every_node(client, httpx_mock):
    """Every node gets PURGE / with the keys space-separated in xkey-softpurge."""
    for node, count in (("http://10.0.0.1:6081/", 2), ("http://10.0.0.2:6081/", 3)):
        httpx_mock.add_response(
            method="PURGE",
            url=node,
            match_headers={"xkey-softpurge": "project/foo all-json"},
            match_content=b"",
            **purged(count),
        )
    provider = make(client)
    result = await provider.purge(KEYS)
    assert result.purged == 5
    assert provider.limits.soft_purge is True
    assert {r.extensions["timeout"]["read"] for r in httpx_mock.get_requests()} == {2.0}


async def test_hard_keys_use_xkey_purge(client, httpx_mock):
    """--hard sends xkey-purge, and no xkey-softpurge."""
    httpx_mock.add_response(
        method="PURGE",
        match_headers={"xkey-purge": "project/foo all-json"},
        is_reusable=True,
        **purged(1),
    )
    provider = make(client, hard=True)
    await provider.purge(KEYS)
    assert all("xkey-softpurge" not in r.headers for r in httpx_mock.get_requests())
    assert len(httpx_mock.get_requests()) == 2
    assert provider.limits.soft_purge is False


async def test_key_header_is_configurable(client, httpx_mock):
    """--key-header names the header the VCL reads."""
    httpx_mock.add_response(
        method="PURGE", match_headers={"key": "project/foo all-json"}, is_reusable=True
    )
    await make(client, key_header="key").purge(KEYS)


async def test_url_purge_keeps_the_path_and_sets_host(client, httpx_mock):
    """PURGE {node}{path?query} verbatim, with the URL's own Host."""
    url = "https://pypi.example.org:8443/simple/Foo_Bar/?a=b+c&x=%2F#frag"
    httpx_mock.add_response(
        method="PURGE",
        match_headers={"Host": "pypi.example.org:8443"},
        is_reusable=True,
        **purged(1),
    )
    result = await make(client).purge(Batch(TargetKind.URL, (url,)))
    assert result.purged == 2
    sent = httpx_mock.get_requests()
    assert sorted(str(r.url.netloc, "ascii") for r in sent) == ["10.0.0.1:6081", "10.0.0.2:6081"]
    assert {r.url.raw_path for r in sent} == {b"/simple/Foo_Bar/?a=b+c&x=%2F"}
    assert all("xkey-softpurge" not in r.headers for r in sent)


async def test_count_without_header_falls_back(client, httpx_mock):
    """No X-Purged-Count anywhere: purged is the number of targets."""
    httpx_mock.add_response(method="PURGE", is_reusable=True)
    assert (await make(client).purge(KEYS)).purged == 2


async def test_old_vcl_404_on_a_url_means_not_cached(client, httpx_mock):
    """404 "Not in cache" to a URL PURGE is success with nothing purged."""
    httpx_mock.add_response(method="PURGE", status_code=404, is_reusable=True)
    result = await make(client).purge(Batch(TargetKind.URL, ("http://h/x",)))
    assert result.purged == 0


async def test_one_failing_node_fails_the_batch_and_is_named(client, httpx_mock):
    """Node 2 answers 503: TransientError naming node 2 only."""
    httpx_mock.add_response(method="PURGE", url="http://10.0.0.1:6081/", **purged(1))
    httpx_mock.add_response(method="PURGE", url="http://10.0.0.2:6081/", status_code=503)
    with pytest.raises(
        TransientError, match=r"1 of 2 nodes failed: http://10\.0\.0\.2:6081: HTTP 503"
    ) as caught:
        await make(client).purge(KEYS)
    assert "10.0.0.1" not in str(caught.value)


async def test_the_most_severe_node_failure_wins(client, httpx_mock):
    """400 on one node and a timeout on the other: RejectedError naming both."""
    httpx_mock.add_exception(httpx.ReadTimeout("read timed out"), url="http://10.0.0.1:6081/")
    httpx_mock.add_response(method="PURGE", url="http://10.0.0.2:6081/", status_code=400)
    with pytest.raises(RejectedError, match="2 of 2 nodes failed") as caught:
        await make(client).purge(KEYS)
    assert "http://10.0.0.1:6081: no answer within 2 s" in str(caught.value)


async def test_429_with_retry_after_then_success(client, httpx_mock):
    """A throttling VCL's 429 (vsthrottle) carries Retry-After; the next call succeeds."""
    httpx_mock.add_response(method="PURGE", url="http://10.0.0.1:6081/", **purged(1))
    httpx_mock.add_response(
        method="PURGE", url="http://10.0.0.2:6081/", status_code=429, headers={"Retry-After": "3"}
    )
    httpx_mock.add_response(method="PURGE", is_reusable=True, **purged(1))
    provider = make(client)
    with pytest.raises(RateLimitedError) as caught:
        await provider.purge(KEYS)
    assert caught.value.retry_after == 3.0
    assert (await provider.purge(KEYS)).purged == 2


async def test_timeout_is_transient(client, httpx_mock):
    """Timeouts on every node are TransientError."""
    httpx_mock.add_exception(httpx.ReadTimeout("read timed out"), is_reusable=True)
    with pytest.raises(TransientError, match="2 of 2 nodes failed"):
        await make(client).purge(KEYS)


@pytest.mark.parametrize("status", [401, 403, 405])
async def test_acl_refusal_is_an_auth_error(client, httpx_mock, status):
    """A node outside the purgers ACL answers 403 (or 405): AuthError naming the node."""
    httpx_mock.add_response(method="PURGE", url="http://10.0.0.1:6081/", **purged(0))
    httpx_mock.add_response(method="PURGE", url="http://10.0.0.2:6081/", status_code=status)
    with pytest.raises(AuthError, match=r"PURGE ACL of http://10\.0\.0\.2:6081"):
        await make(client).purge(KEYS)


async def test_400_is_rejected(client, httpx_mock):
    """A 400 from the nodes is RejectedError."""
    httpx_mock.add_response(method="PURGE", status_code=400, is_reusable=True)
    with pytest.raises(RejectedError):
        await make(client).purge(KEYS)


@pytest.mark.parametrize("key", ["two words", "a,b", "tab\there", ""])
async def test_keys_that_would_split_are_rejected_unsent(client, httpx_mock, key):
    """A key holding a separator would purge other keys: rejected before sending."""
    with pytest.raises(RejectedError):
        await make(client).purge(Batch(TargetKind.KEY, ("ok", key)))
    assert httpx_mock.get_requests() == []


@pytest.mark.parametrize("endpoints", [(), ("10.0.0.1:6081",), ("ftp://x",)])
async def test_endpoints_are_required_and_checked(client, endpoints):
    """At least one http(s)://host:port --endpoint."""
    with pytest.raises(UsageError, match="--endpoint"):
        from_options(ProviderOptions(name="varnish", endpoints=endpoints), client, {})


async def test_api_base_is_the_node_when_no_endpoint_is_given(client, httpx_mock):
    """--api-base alone names one node."""
    httpx_mock.add_response(method="PURGE", url="http://127.0.0.1:6091/")
    provider = create_provider(
        ProviderOptions(name="varnish", api_base="http://127.0.0.1:6091"), client, {}
    )
    await provider.purge(KEYS)


async def test_limits_keep_the_header_under_the_budget(client, httpx_mock):
    """The largest key batch the limits allow fits 6,000 bytes of header and 256 keys."""
    provider = make(client)
    limits = provider.limits
    assert limits.buckets == ()
    assert limits.max_bytes is not None
    keys = [f"project/{i:05d}-" + "k" * 40 for i in range(1000)]
    size, batch = limits.overhead_bytes, list[str]()
    for key in keys:
        cost = provider.target_bytes(TargetKind.KEY, key)
        if size + cost > limits.max_bytes or len(batch) == limits.max_targets[TargetKind.KEY]:
            break
        batch.append(key)
        size += cost
    httpx_mock.add_response(method="PURGE", is_reusable=True)
    await provider.purge(Batch(TargetKind.KEY, tuple(batch)))
    header = httpx_mock.get_requests()[0].headers["xkey-softpurge"]
    assert len("xkey-softpurge: ") + len(header.encode()) <= 6000
    assert header.split(" ") == batch
