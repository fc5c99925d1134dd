"""Through the CLI: no part of a token echoed by the API, and no user name or password of
an --api-base, reaches the terminal, the state file, `purger failures` or `purger status`."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from purger.cli import app
from purger.model import FRAGMENT_CHARS

TOKEN = "Zq7xK2mP9vLw4RtY8nBc3HsD6fGj1aEu5oIk0yTrWq2ZxCvBnM"  # noqa: S105 - 50 chars, fake
ENV = {"COLUMNS": "200", "NO_COLOR": "1", "FASTLY_API_TOKEN": TOKEN}
PASSWORD = "hunter2-proxy-pw"  # noqa: S105 - a fake
BASE = "https://api.fastly.example"


def fragments(text: str | bytes) -> list[str]:
    """Every run of FRAGMENT_CHARS characters of the token (or the password) in ``text``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    found = []
    for secret in (TOKEN, PASSWORD):
        width = min(FRAGMENT_CHARS, len(secret))
        found += [secret[i : i + width] for i in range(len(secret) - width + 1)]
    return [piece for piece in found if piece in text]


def cli(*args: str, yes: bool = True):
    return CliRunner().invoke(app, [*args, *(["--yes"] if yes else [])], env=ENV)


@pytest.fixture
def names(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("alpha\nbeta\n")
    return path


@pytest.mark.parametrize("html", [False, True])
def test_a_token_echoed_in_a_400_is_nowhere_in_state_failures_or_status(
    names, tmp_path, httpx_mock, html
):
    """Fastly echoes the token where the 300 (JSON) or 200 (HTML) character cut splits it."""
    if html:
        answer = {"html": "y" * (200 - 49) + TOKEN}
    else:
        answer = {"json": {"msg": "Bad request", "detail": "y" * 238 + TOKEN}}
    httpx_mock.add_response(method="POST", status_code=400, is_reusable=True, **answer)
    state = tmp_path / "state.sqlite"
    run = cli(
        "run", str(names), "--provider", "fastly", "--service-id", "SVC", "--api-base", BASE,
        "--key-template", "project/{name}", "--state", str(state), "--rate", "inf",
    )  # fmt: skip
    assert run.exit_code == 1, run.output
    assert fragments(run.output) == []
    for path in tmp_path.iterdir():
        assert fragments(path.read_bytes()) == [], path
    shown = [
        cli("failures", "--state", str(state), yes=False),
        cli("failures", "--state", str(state), "--json", yes=False),
        cli("status", "--state", str(state), "--json", yes=False),
    ]
    assert [result.exit_code for result in shown] == [1, 1, 0]
    assert "***" in shown[0].output
    assert "***" in json.dumps(json.loads(shown[1].output))
    for result in shown:
        assert fragments(result.output) == [], result.output


def test_api_base_userinfo_is_not_in_the_summary_nor_the_state(names, tmp_path, httpx_mock):
    """The confirmation summary and the state file name the proxy without its credentials,
    while the request still carries them (as basic auth)."""
    base = f"http://operator:{PASSWORD}@proxy.example:3128"
    summary = cli(
        "run", str(names), "--provider", "fastly", "--service-id", "SVC", "--api-base", base,
        "--key-template", "project/{name}", "--state", str(tmp_path / "s.sqlite"), yes=False,
    )  # fmt: skip
    assert "via http://***@proxy.example:3128" in summary.output
    assert fragments(summary.output) == []
    assert "operator" not in summary.output

    def ok(request: httpx.Request) -> httpx.Response:
        keys = json.loads(request.content)["surrogate_keys"]
        return httpx.Response(200, json=dict.fromkeys(keys, "id"))

    httpx_mock.add_callback(ok, is_reusable=True)
    state = tmp_path / "state.sqlite"
    run = cli(
        "run", str(names), "--provider", "fastly", "--service-id", "SVC", "--api-base", base,
        "--key-template", "project/{name}", "--state", str(state), "--rate", "inf",
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert httpx_mock.get_requests()[0].headers["Authorization"].startswith("Basic ")
    for path in tmp_path.iterdir():
        assert fragments(path.read_bytes()) == [], path
        assert b"operator" not in path.read_bytes()
    status = cli("status", "--state", str(state), "--json", yes=False)
    assert PASSWORD not in status.output
    assert "operator" not in status.output
    # The same base on resume matches what was stored (redacted alike): no mismatch.
    again = cli(
        "run", str(names), "--provider", "fastly", "--service-id", "SVC", "--api-base", base,
        "--key-template", "project/{name}", "--state", str(state), "--rate", "inf", "--resume",
    )  # fmt: skip
    assert again.exit_code == 0, again.output


def test_config_show_masks_url_credentials_from_a_job_file(tmp_path):
    """`purger config show` prints --api-base, --endpoint and a names URL without their
    user name and password (a job file may hold a proxy's)."""
    job = tmp_path / "job.toml"
    job.write_text(
        "[names]\n"
        f'source = "https://reader:{PASSWORD}@pypi.example/simple/"\n'
        "[provider]\n"
        'name = "varnish"\n'
        f'api_base = "http://operator:{PASSWORD}@proxy.example:3128"\n'
        f'endpoints = ["http://node:{PASSWORD}@10.0.0.1:6081", "http://10.0.0.2:6081"]\n'
    )
    result = CliRunner().invoke(app, ["config", "show", str(job)], env=ENV)
    assert result.exit_code == 0, result.output
    assert fragments(result.output) == []
    assert "http://***@proxy.example:3128" in result.output
    assert "http://***@10.0.0.1:6081 http://10.0.0.2:6081" in result.output
    assert "https://***@pypi.example/simple/" in result.output
