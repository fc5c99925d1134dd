"""The sweep's API faults (issue 12): a loopback fake of Fastly's API that echoes the token
in its bodies and headers, answers 4xx, 5xx, 429 with Retry-After, garbage, a redirect or a
huge body. Each run says what happened in one last line, exits as documented, and no
8-character fragment of the token reaches stdout, stderr, the state file, ``status --json``
or ``failures``. None of these found a bug: they are kept as a representative set."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

TOKEN = "SeCrEtToKeN0123456789abcdefXYZ"  # noqa: S105 (a fake token, the one probed for)
NAMES = "requests\nflask\ndjango\nnumpy\n"


def _answer(mode: str, token: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """The fake's answer: status, headers, body."""
    if mode == "echo400":
        text = json.dumps({"msg": f"bad token {token}", "detail": "x" * 500 + token})
        return 400, {"X-Echo": token}, text.encode()
    if mode == "echo503":
        return 503, {"X-Echo": token}, f"<html>{token}</html>".encode()
    if mode == "429":
        return 429, {"Retry-After": "1"}, f"slow down {token}".encode()
    if mode == "garbage":
        return 200, {}, b"\xff\xfe{{{" + token.encode()
    if mode == "redirect":
        return 302, {"Location": f"http://127.0.0.1:9/?t={token}"}, b""
    if mode == "huge":
        return 400, {}, token.encode() * 10 + b"A" * 5_000_000
    raise AssertionError(mode)


@pytest.fixture
def fake_fastly(request) -> Iterator[str]:
    mode = request.param

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            status, headers, out = _answer(mode, self.headers.get("Fastly-Key", ""), body)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _purger(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FASTLY_API_TOKEN": TOKEN, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "purger", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # a generous bound on a loaded machine; the runs take seconds
        stdin=subprocess.DEVNULL,
    )


# mode, the documented exit code: 1 refused targets, 2 a usage error (a redirect from
# --api-base), 3 a provider that kept failing after its retries.
FAULTS = [("echo400", 1), ("echo503", 3), ("429", 3), ("garbage", 3), ("redirect", 2),
          ("huge", 1)]  # fmt: skip


@pytest.mark.parametrize(
    ("fake_fastly", "code"), FAULTS, indirect=["fake_fastly"], ids=[f[0] for f in FAULTS]
)
def test_an_api_fault_exits_as_documented_and_leaks_no_part_of_the_token(
    tmp_path, fake_fastly, code
):
    (tmp_path / "names.txt").write_text(NAMES)
    run = _purger(
        "run", "names.txt", "--provider", "fastly", "--service-id", "S", "--api-base",
        fake_fastly, "--key-template", "k/{name}", "--state", "s.sqlite", "--yes",
        "--timeout", "3", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == code, run.stderr
    assert "Traceback" not in run.stderr
    shown = [run.stdout, run.stderr]
    if (tmp_path / "s.sqlite").exists():
        shown.append((tmp_path / "s.sqlite").read_bytes().decode("latin-1"))
        for command in (["status", "--json"], ["failures"], ["failures", "--json"]):
            result = _purger(command[0], "s.sqlite", *command[1:], cwd=tmp_path)
            shown += [result.stdout, result.stderr]
    fragments = {TOKEN[i : i + 8] for i in range(len(TOKEN) - 7)}
    for text in shown:
        assert not any(fragment in text for fragment in fragments), text[-500:]
