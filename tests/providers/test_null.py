"""Null provider: records what it would send and sends nothing (``--dry-run``)."""

from __future__ import annotations

import pytest

from purger.model import Batch, TargetKind
from purger.providers import ProviderOptions, create_provider
from purger.providers.null import NullProvider

pytestmark = pytest.mark.anyio


async def test_batches_are_recorded_in_order_and_nothing_is_sent(client, httpx_mock):
    """Every batch is accepted and kept; no request reaches the client."""
    provider = create_provider(ProviderOptions(name="null", api_base="http://x"), client, {})
    assert isinstance(provider, NullProvider)
    first = Batch(TargetKind.KEY, ("a", "b"))
    second = Batch(TargetKind.URL, ("https://example.com/",))
    assert (await provider.purge(first)).purged == 2
    assert (await provider.purge(second)).purged == 1
    assert provider.sent == [first, second]
    assert httpx_mock.get_requests() == []


async def test_limits_take_both_kinds_without_pacing(client):
    """Both kinds are supported, nothing is paced, no time is spent."""
    provider = create_provider(ProviderOptions(name="null"), client, {})
    limits = provider.limits
    assert set(limits.max_targets) == {TargetKind.KEY, TargetKind.URL}
    assert limits.buckets == ()
    assert limits.api_latency == 0.0
    assert provider.target_bytes(TargetKind.KEY, "ü") == 2
