"""Real servers on loopback for the end-to-end tests: the origin (``bench/origin.py``),
Varnish with xkey before it, and Prometheus scraping it where a test needs metrics.

A missing binary or vmod skips the test with the apt command that installs it, except when
``PURGER_E2E_REQUIRED=1`` (CI sets it): then the test fails, so a CI image that lost a
package cannot pass by skipping.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

from bench.cluster import Cluster, Missing, find_missing, install_hint, run_cluster
from tests.e2e.recording import RecordingCache


def require(missing: list[Missing]) -> None:
    """Skip (or, with PURGER_E2E_REQUIRED=1, fail) when a part of the cluster is missing."""
    if not missing:
        return
    reason = install_hint(missing)
    if os.environ.get("PURGER_E2E_REQUIRED") == "1":
        pytest.fail(f"PURGER_E2E_REQUIRED=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cache() -> Iterator[Cluster]:
    """Origin + Varnish, shared by a module's tests: each test uses names of its own, and
    the origin counts fetches per name."""
    require(find_missing(prometheus=False, wrk=True))
    with run_cluster() as cluster:
        yield cluster


@pytest.fixture
def monitored_cache() -> Iterator[Cluster]:
    """Origin + Varnish + Prometheus scraping the origin every second, for one test (tests
    change the origin's capacity)."""
    require(find_missing(prometheus=True))
    with run_cluster(prometheus=True) as cluster:
        yield cluster


@pytest.fixture
def recording_cache() -> Iterator[RecordingCache]:
    """A loopback cache that counts every key and URL purged (``recording.py``)."""
    server = RecordingCache()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
