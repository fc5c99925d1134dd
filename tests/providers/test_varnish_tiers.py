"""Varnish tiers: a batch reaches every node of a tier before any node of the next one,
from the origin outwards; a tier that fails keeps the batch from the outer tiers."""

from __future__ import annotations

import anyio
import httpx
import pytest

from purger.errors import TransientError, UsageError
from purger.model import Batch, TargetKind
from purger.providers import ProviderOptions
from purger.providers.varnish import VarnishProvider, from_options, parse_tiers

pytestmark = pytest.mark.anyio

SHIELD = "http://10.0.0.1:6081"
EDGES = ("http://10.0.0.2:6081", "http://10.0.0.3:6081")
TIERS = ("shield=" + SHIELD, "edge=" + ",".join(EDGES))
URL = Batch(TargetKind.URL, ("https://pypi.test/pypi/foo/json",))


class Nodes:
    """Records when each node's PURGE started and ended; the shield answers slowly."""

    def __init__(self, failing: str | None = None) -> None:
        self.events: list[tuple[str, str]] = []
        self.failing = failing

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        node = f"http://{request.url.netloc.decode()}"
        self.events.append(("start", node))
        await anyio.sleep(0.05 if node == SHIELD else 0)
        self.events.append(("end", node))
        if node == self.failing:
            return httpx.Response(503)
        return httpx.Response(200, headers={"X-Purged-Count": "1"})


def provider(nodes: Nodes, tiers: tuple[str, ...] = TIERS) -> VarnishProvider:
    client = httpx.AsyncClient(transport=httpx.MockTransport(nodes))
    options = ProviderOptions(name="varnish", tiers=tiers, timeout=2.0)
    return from_options(options, client, {}, clock=lambda: 0.0)


@pytest.mark.parametrize("batch", [URL, Batch(TargetKind.KEY, ("project/foo",))])
async def test_the_shield_is_purged_before_any_edge(batch: Batch) -> None:
    nodes = Nodes()
    result = await provider(nodes).purge(batch)
    assert result.purged == 3
    assert nodes.events[:2] == [("start", SHIELD), ("end", SHIELD)]
    assert {node for _, node in nodes.events[2:]} == set(EDGES)


async def test_given_edges_first_the_edges_go_first() -> None:
    """The order is the operator's: tiers as given, origin outwards."""
    nodes = Nodes()
    await provider(nodes, ("edge=" + ",".join(EDGES), "shield=" + SHIELD)).purge(URL)
    assert nodes.events[-2:] == [("start", SHIELD), ("end", SHIELD)]


async def test_a_failing_shield_keeps_the_batch_from_the_edges() -> None:
    nodes = Nodes(failing=SHIELD)
    with pytest.raises(TransientError, match=r"10\.0\.0\.1"):
        await provider(nodes).purge(URL)
    assert {node for _, node in nodes.events} == {SHIELD}


@pytest.mark.parametrize(
    ("specs", "fragment"),
    [
        (["shield"], "NAME=http"),
        (["=http://a:1"], "NAME=http"),
        (["edge="], "NAME=http"),
        (["edge=http://a:1", "edge=http://b:1"], "twice"),
    ],
)
def test_bad_tiers_are_usage_errors(specs: list[str], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        parse_tiers(specs)


async def test_tiers_and_endpoints_are_one_or_the_other() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(Nodes()))
    options = ProviderOptions(name="varnish", tiers=TIERS, endpoints=(SHIELD,))
    with pytest.raises(UsageError, match="not both"):
        from_options(options, client, {})
    bad = ProviderOptions(name="varnish", tiers=("edge=ftp://x",))
    with pytest.raises(UsageError, match="--endpoint 'ftp://x'"):
        from_options(bad, client, {})
