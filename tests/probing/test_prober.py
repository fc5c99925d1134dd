"""The prober on a fake node: what it sends (the target's Host and path on the node's
connection), redirects through the same node, the soft grace, unreachable nodes."""

from __future__ import annotations

import math

import httpx
import pytest

from purger.probing.classify import Freshness, ProbeClass
from purger.probing.prober import DIRECT, Prober, ProbeSettings, probe_pacer
from purger.probing.tally import Probe
from purger.probing.targets import ProbeTarget

pytestmark = pytest.mark.anyio

NODE = "http://127.0.0.1:6081"
NOW = 10_000.0


class Node:
    """Answers from a table of (Host, path) -> list of responses, the last one repeating."""

    def __init__(self, table: dict[tuple[str, str], list[httpx.Response]]) -> None:
        self.table = table
        self.seen: list[tuple[str, str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.headers["Host"]
        path = request.url.raw_path.decode()
        self.seen.append((str(request.url.netloc.decode()), host, path))
        answers = self.table.get((host, path))
        if not answers:
            return httpx.Response(404)
        return answers.pop(0) if len(answers) > 1 else answers[0]


def prober(node: Node, **settings: object) -> tuple[Prober, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    chosen = ProbeSettings(**settings)  # type: ignore[arg-type]
    return Prober(
        httpx.MockTransport(node), probe_pacer(math.inf, 4), chosen, wall=lambda: NOW, sleep=sleep
    ), slept


async def test_the_node_gets_the_targets_host_and_path_verbatim() -> None:
    node = Node({("pypi.test", "/pypi/Foo_Bar/json"): [httpx.Response(200)]})
    probe, _ = prober(node)
    verdict = await probe.probe("https://pypi.test/pypi/Foo_Bar/json", NODE)
    assert verdict.cls is ProbeClass.OK
    assert node.seen == [("127.0.0.1:6081", "pypi.test", "/pypi/Foo_Bar/json")]


async def test_redirects_are_followed_through_the_same_node_until_a_loop() -> None:
    node = Node(
        {
            ("pypi.test", "/pypi/Foo_Bar/json"): [
                httpx.Response(301, headers={"Location": "/pypi/foo-bar/json"})
            ],
            ("pypi.test", "/pypi/foo-bar/json"): [
                httpx.Response(301, headers={"Location": "https://pypi.test/pypi/Foo_Bar/json"})
            ],
        }
    )
    probe, _ = prober(node)
    verdict = await probe.probe("https://pypi.test/pypi/Foo_Bar/json", NODE)
    assert verdict.cls is ProbeClass.REDIRECT_LOOP
    assert [netloc for netloc, _, _ in node.seen] == ["127.0.0.1:6081"] * 2
    assert [path for _, _, path in node.seen] == ["/pypi/Foo_Bar/json", "/pypi/foo-bar/json"]


async def test_a_stale_answer_during_revalidation_is_looked_at_again() -> None:
    path = ("pypi.test", "/a")
    node = Node(
        {
            path: [
                httpx.Response(200, headers={"Age": "600", "X-Cache": "STALE"}),
                httpx.Response(200, headers={"Age": "0", "X-Cache": "MISS"}),
            ]
        }
    )
    probe, slept = prober(node, freshness=Freshness(purged_at=NOW - 5), soft_grace=0.5)
    verdict = await probe.probe("http://pypi.test/a", NODE)
    assert verdict.cls is ProbeClass.FRESH
    assert slept == [0.5]
    assert len(node.seen) == 2


async def test_without_grace_the_first_stale_answer_stands() -> None:
    node = Node({("pypi.test", "/a"): [httpx.Response(200, headers={"Age": "600"})]})
    probe, slept = prober(node, freshness=Freshness(purged_at=NOW - 5))
    assert (await probe.probe("http://pypi.test/a", NODE)).cls is ProbeClass.STALE
    assert slept == []
    # With a grace, a node that still serves the stale object is stale.
    again, slept = prober(node, freshness=Freshness(purged_at=NOW - 5), soft_grace=1.0)
    assert (await again.probe("http://pypi.test/a", NODE)).cls is ProbeClass.STALE
    assert slept == [1.0]


async def test_a_node_that_does_not_answer_is_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    probe = Prober(httpx.MockTransport(refuse), probe_pacer(math.inf, 1), ProbeSettings())
    verdict = await probe.probe("http://pypi.test/a", NODE)
    assert verdict.cls is ProbeClass.UNREACHABLE
    assert "refused" in verdict.detail


async def test_probe_all_goes_through_every_node_and_direct() -> None:
    node = Node({("pypi.test", "/a"): [httpx.Response(200)], ("pypi.test", "/b"): []})
    probe, _ = prober(node)
    got: list[Probe] = []
    targets = [ProbeTarget(f"http://pypi.test/{n}", n, (n,)) for n in "ab"]
    work = [(t, n) for t in targets for n in (NODE, "http://127.0.0.2:6081", None)]
    await probe.probe_all(work, got.append, workers=3)
    assert len(got) == 6
    assert {(p.target.name, p.node, p.verdict.cls) for p in got} == {
        (name, node_name, ProbeClass.OK if name == "a" else ProbeClass.ERROR)
        for name in "ab"
        for node_name in (NODE, "http://127.0.0.2:6081", DIRECT)
    }
