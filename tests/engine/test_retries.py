"""A retried call is seen: the run keeps the last one (host, error, attempt, next wait),
the snapshot shows it and whether the API answers again, the state records it."""

from __future__ import annotations

import httpx
import pytest

from purger.engine.retries import RetryNotice, host_of
from purger.errors import TransientError
from tests.engine.test_monitor import live_run

pytestmark = pytest.mark.anyio


def connect_error(url: str) -> TransientError:
    """A provider's error raised from httpx's, as the adapters raise it."""
    try:
        try:
            raise httpx.ConnectError(
                "All connection attempts failed", request=httpx.Request("POST", url)
            )
        except httpx.ConnectError as exc:
            raise TransientError(
                "ConnectError: All connection attempts failed", provider="fastly"
            ) from exc
    except TransientError as error:
        return error


def test_the_host_comes_from_the_request_and_never_carries_userinfo():
    assert host_of(connect_error("https://user:pass@api.fastly.com/purge")) == "api.fastly.com"
    assert host_of(connect_error("http://127.0.0.1:8080/x")) == "127.0.0.1:8080"
    assert host_of(TransientError("503", provider="varnish")) is None
    # An httpx error without its request (RuntimeError on .request) names no host.
    assert host_of(httpx.ConnectError("no request")) is None


def test_a_notice_says_which_host_what_error_which_attempt_and_when_next():
    notice = RetryNotice.of(
        connect_error("https://api.fastly.com/purge"), 2, 1.5, attempts=8, at=10.0, calls_before=0
    )
    assert notice.describe(now=10.5) == (
        "fastly: ConnectError: All connection attempts failed "
        "(api.fastly.com; attempt 2 of 8, next in 1.0 s)"
    )
    assert notice.describe() == (
        "fastly: ConnectError: All connection attempts failed (api.fastly.com; attempt 2 of 8)"
    )
    long = RetryNotice.of(
        TransientError("x" * 1000, provider="p"), 1, 0.1, attempts=2, at=0, calls_before=0
    )
    assert len(long.error) == 300


async def test_the_snapshot_and_the_state_show_the_last_retry(tmp_path):
    """The first two calls fail to connect, then every call goes through: the snapshot
    shows the retries, and that the API answers again; the state's status keeps the
    last error for `purger status`."""
    live, run, _, store = live_run(tmp_path)
    failures = iter([connect_error("https://api.fastly.com/purge")] * 2)

    def script(call: int, batch: object) -> None:
        error = next(failures, None)
        if error is not None:
            raise error

    run._providers[0].script = script
    assert live.snapshot().retry is None
    await run.execute()
    retry = live.snapshot().retry
    assert retry is not None
    assert retry.retries == 2
    assert retry.host == "api.fastly.com"
    assert retry.error.startswith("fastly: ConnectError")
    assert retry.attempt in (1, 2)
    assert retry.answering
    last_error = store.status()["last_error"]
    assert "fastly: ConnectError" in last_error
    assert "api.fastly.com" in last_error
    store.close()
