"""Tiers on real Varnish: one shield before the origin, two edges whose backend is the
shield (issue 14, "Done means", second bullet). Purging the edges before the shield lets
the edges refetch the shield's stale copy, and ``verify`` reports it stale at the edges;
purger's tier order, shield first, leaves none, and ``verify`` reports every node fresh."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from bench.cluster import Cluster, Varnish, run_varnish

pytestmark = pytest.mark.e2e

HOST = "pypi.test"
TEMPLATE = ("--url-template", f"http://{HOST}/pypi/{{name}}/json")
#: Age counts whole seconds and verify allows one of slack: objects this old are surely
#: from before a purge started now.
AGED = 3.0


@pytest.fixture(scope="module")
def tiers(cache: Cluster) -> Iterator[tuple[Varnish, Varnish, Varnish]]:
    """The module's Varnish as the shield, two edges before it."""
    with run_varnish(cache.varnish.port) as one, run_varnish(cache.varnish.port) as two:
        yield cache.varnish, one, two


def purger(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "purger", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def get_through(nodes: Sequence[Varnish], names: Sequence[str]) -> None:
    for node in nodes:
        with httpx.Client(base_url=node.url, headers={"Host": HOST}, timeout=30) as client:
            for name in names:
                client.get(f"/pypi/{name}/json").raise_for_status()


def names_file(directory: Path, prefix: str) -> tuple[Path, list[str]]:
    names = [f"{prefix}-{i:02d}" for i in range(20)]
    path = directory / f"{prefix}.txt"
    path.write_text("\n".join(names) + "\n")
    return path, names


def run(names: Path, state: Path, *tier_args: str) -> None:
    done = purger(
        "run", str(names), "--provider", "varnish", *tier_args, *TEMPLATE, "--hard",
        "--state", str(state), "--yes",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_edges_purged_before_the_shield_serve_stale_and_verify_says_so(
    tiers: tuple[Varnish, Varnish, Varnish], tmp_path: Path
) -> None:
    shield, *edges = tiers
    names, listed = names_file(tmp_path, "edge-first")
    get_through(edges, listed)  # cached at both edges and, once, at the shield
    time.sleep(AGED)
    purge_started = time.time()
    run(names, tmp_path / "edges.sqlite", "--tier", "edge=" + ",".join(e.url for e in edges))
    get_through(edges, listed)  # clients come back: the edges refetch from the shield
    run(names, tmp_path / "shield.sqlite", "--tier", "shield=" + shield.url)
    via = [arg for node in tiers for arg in ("--via", node.url)]
    verified = purger(
        "verify", str(names), "--state", str(tmp_path / "shield.sqlite"), *via,
        "--purged-at", str(purge_started), "--soft-grace", "0", "--json",
    )  # fmt: skip
    assert verified.returncode == 1, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["by_node"] == {
        shield.url: {"fresh": len(listed)},
        edges[0].url: {"stale": len(listed)},
        edges[1].url: {"stale": len(listed)},
    }


def test_purgers_tier_order_leaves_nothing_stale(
    tiers: tuple[Varnish, Varnish, Varnish], tmp_path: Path
) -> None:
    shield, *edges = tiers
    names, listed = names_file(tmp_path, "shield-first")
    get_through(edges, listed)
    time.sleep(AGED)
    state = tmp_path / "tiers.sqlite"
    edge_tier = "edge=" + ",".join(e.url for e in edges)
    run(names, state, "--tier", "shield=" + shield.url, "--tier", edge_tier)
    get_through(edges, listed)  # the edges refetch from a shield that refetched
    verified = purger("verify", str(names), "--state", str(state), "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["checked"] == 3 * len(listed)  # every node of every tier, without --via
    assert report["by_class"] == {"fresh": 3 * len(listed)}
