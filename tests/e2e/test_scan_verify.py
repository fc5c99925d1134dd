"""2022 replayed on real Varnish (issue 14, "Done means", first bullet).

The origin first redirects each project's normalized URL to its verbatim one, and two cache
nodes keep those answers; then the origin flips (verbatim -> normalized) and the purges
that should follow fail for a planted set of names: their normalized URL still holds the
old redirect, so the two URLs now redirect to each other. ``purger scan`` finds exactly the
planted names, ``purger run`` on its output purges only those, ``purger verify`` then finds
no loop, through every node.
"""

from __future__ import annotations

import json
import re
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
NAMES = [f"Proj_{i:03d}.Lib" for i in range(120)]
PLANTED = NAMES[7::10]  # 12 names whose second purge "failed"
TEMPLATES = ("--url-template", f"http://{HOST}/pypi/{{name}}/json")
TEMPLATES += ("--url-template", f"http://{HOST}/pypi/{{raw}}/json")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def purger(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "purger", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def send(node: Varnish, method: str, paths: Sequence[str]) -> list[httpx.Response]:
    with httpx.Client(base_url=node.url, headers={"Host": HOST}, timeout=30) as client:
        return [client.request(method, path) for path in paths]


def paths(names: Sequence[str], *, verbatim: bool) -> list[str]:
    return [f"/pypi/{name if verbatim else normalized(name)}/json" for name in names]


@pytest.fixture(scope="module")
def nodes(cache: Cluster) -> Iterator[tuple[Varnish, Varnish]]:
    """The module's Varnish and a second node before the same origin."""
    with run_varnish(cache.origin.port) as second:
        yield cache.varnish, second


def set_canonical(cache: Cluster, form: str) -> None:
    response = cache.origin.client.post(
        "/admin/canonical", params={"form": form}, content="\n".join(NAMES)
    )
    response.raise_for_status()


@pytest.fixture(scope="module")
def looping(
    cache: Cluster, nodes: tuple[Varnish, Varnish], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The cache after 2022: planted names loop on both nodes. Returns the names file."""
    set_canonical(cache, "verbatim")
    for node in nodes:
        warm = send(node, "GET", paths(NAMES, verbatim=False) + paths(NAMES, verbatim=True))
        assert sorted({r.status_code for r in warm}) == [200, 301]
    set_canonical(cache, "normalized")
    healthy = [n for n in NAMES if n not in PLANTED]
    for node in nodes:
        purged = send(node, "PURGE", paths(NAMES, verbatim=True) + paths(healthy, verbatim=False))
        assert all(r.headers["X-Purged-Count"] == "1" for r in purged)
    names = tmp_path_factory.mktemp("scan") / "names.txt"
    names.write_text("\n".join(NAMES) + "\n")
    return names


def test_scan_finds_the_planted_loops_run_purges_only_them_verify_finds_none(
    cache: Cluster, nodes: tuple[Varnish, Varnish], looping: Path
) -> None:
    via = [arg for node in nodes for arg in ("--via", node.url)]
    bad = looping.parent / "bad.txt"
    scanned = purger("scan", str(looping), *TEMPLATES, *via, "--out", str(bad), "--json")
    assert scanned.returncode == 1, scanned.stderr
    report = json.loads(scanned.stdout)
    assert bad.read_text().split() == sorted(PLANTED)  # exactly, as spelled
    assert report["scanned"] == 2 * len(NAMES) * 2
    assert report["bad"] == len(PLANTED)
    assert report["by_class"] == {
        "ok": 2 * 2 * (len(NAMES) - len(PLANTED)),
        "redirect_loop": 2 * 2 * len(PLANTED),
    }
    for node in nodes:
        assert report["by_node"][node.url]["redirect_loop"] == 2 * len(PLANTED)

    before = cache.origin.project_counts()
    purged_before = [node.counters()["MAIN.n_obj_purged"] for node in nodes]
    state = looping.parent / "fix.sqlite"
    endpoints = [arg for node in nodes for arg in ("--endpoint", node.url)]
    ran = purger(
        "run", str(bad), "--provider", "varnish", *endpoints, *TEMPLATES,
        "--state", str(state), "--yes",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    purged_after = [node.counters()["MAIN.n_obj_purged"] for node in nodes]
    # Two objects a planted name on each node (its two URLs), nothing else.
    assert [b - a for a, b in zip(purged_before, purged_after, strict=True)] == [
        2 * len(PLANTED)
    ] * 2

    verified = purger("verify", str(bad), "--state", str(state), "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    checked = json.loads(verified.stdout)
    assert checked["checked"] == 2 * len(PLANTED) * 2  # every target through both nodes
    assert checked["by_class"] == {"fresh": 2 * len(PLANTED) * 2}
    assert set(checked["by_node"]) == {node.url for node in nodes}

    # The origin refilled the planted names only; a full scan finds nothing left.
    after = cache.origin.project_counts()
    refilled = {project for project, count in after.items() if count > before.get(project, 0)}
    planted = {p for name in PLANTED for p in (name, normalized(name))}
    assert refilled <= planted
    rescan = purger("scan", str(looping), *TEMPLATES, *via, "--out", str(bad), "--json")
    assert rescan.returncode == 0, rescan.stdout
    assert json.loads(rescan.stdout)["by_class"] == {"ok": 2 * 2 * len(NAMES)}
    assert bad.read_text() == ""


def soft_purged(cache: Cluster, directory: Path, prefix: str) -> tuple[Path, Path, int]:
    """Names cached a few seconds ago, then soft-purged by key (the default): the names
    file, the run's state, how many names."""
    names = [f"{prefix}-{i:02d}" for i in range(20)]
    listing = directory / f"{prefix}.txt"
    listing.write_text("\n".join(names) + "\n")
    send(cache.varnish, "GET", [f"/pypi/{name}/json" for name in names])
    time.sleep(3.0)  # Age >= 3: surely before the purge, past verify's 1 s of slack
    state = directory / f"{prefix}.sqlite"
    ran = purger(
        "run", str(listing), "--provider", "varnish", "--endpoint", cache.varnish.url,
        "--key-template", "project/{name}", "--state", str(state), "--yes",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    return listing, state, len(names)


def test_a_soft_purges_one_stale_answer_is_looked_at_again(cache: Cluster, tmp_path: Path) -> None:
    """After xkey.softpurge the first GET is served stale while Varnish refetches: with a
    grace, verify looks again and finds it fresh; without one it would call it stale."""
    url = ("--url-template", f"http://{HOST}/pypi/{{name}}/json")
    listing, state, count = soft_purged(cache, tmp_path, "soft-grace")
    # A grace with room for the background fetch on a loaded machine.
    graced = purger(
        "verify", str(listing), "--state", str(state), *url, "--soft-grace", "3", "--json"
    )
    assert graced.returncode == 0, graced.stdout + graced.stderr
    assert json.loads(graced.stdout)["by_class"] == {"fresh": count}

    listing, state, count = soft_purged(cache, tmp_path, "soft-none")
    blunt = purger(
        "verify", str(listing), "--state", str(state), *url, "--soft-grace", "0", "--json"
    )
    assert blunt.returncode == 1
    assert json.loads(blunt.stdout)["by_class"] == {"stale": count}
