"""A Simple API project list in either form: PEP 691 JSON (preferred) or PEP 503 HTML."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import httpx
import pytest
from pytest_httpx import HTTPXMock

from purger.errors import InputError
from purger.names.simple_index import PEP503_HTML, PEP691_JSON, html_records
from purger.names.sources import fetch_simple_index

URL = "https://pypi.example/simple/"
HTML = b"""<!DOCTYPE html>
<html>
  <head>
    <meta name="pypi:repository-version" content="1.1">
    <title>Simple index</title>
  </head>
  <body>
    <a href="/simple/django/">Django</a>
    <a href="/simple/zope-interface/"> zope.interface </a>
    <a href="/simple/a-b/">a&amp;b</a><a href="/simple/x/">caf&#233;</a>
  </body>
</html>
"""
EXPECTED = [("Django", None, 8), ("zope.interface", None, 9), ("a&b", None, 10), ("café", None, 10)]


@pytest.mark.parametrize(
    "content_type", [PEP503_HTML, "text/html", "text/html; charset=utf-8", "TEXT/HTML"]
)
def test_an_html_index_is_read_from_its_anchors(httpx_mock: HTTPXMock, content_type: str) -> None:
    """PEP 503: each anchor's text is a project name, with its line in the page."""
    httpx_mock.add_response(url=URL, headers={"Content-Type": content_type}, content=HTML)
    with httpx.Client() as client:
        assert fetch_simple_index(client, URL) == EXPECTED


def test_json_is_asked_for_first_and_html_after_it(httpx_mock: HTTPXMock) -> None:
    """The Accept header prefers PEP 691 JSON, then the PEP 503 HTML types, by q-value."""
    httpx_mock.add_response(url=URL, headers={"Content-Type": PEP503_HTML}, content=HTML)
    with httpx.Client() as client:
        fetch_simple_index(client, URL)
    accept = [part.strip() for part in httpx_mock.get_request().headers["Accept"].split(",")]
    assert accept[0] == PEP691_JSON
    assert accept[1:] == [f"{PEP503_HTML};q=0.2", "text/html;q=0.01"]


def test_a_latin1_html_index_is_decoded_by_its_charset(httpx_mock: HTTPXMock) -> None:
    body = '<a href="/simple/cafe/">café</a>'.encode("latin-1")
    headers = {"Content-Type": "text/html; charset=iso-8859-1"}
    httpx_mock.add_response(url=URL, headers=headers, content=body)
    with httpx.Client() as client:
        assert fetch_simple_index(client, URL) == [("café", None, 1)]


@pytest.mark.parametrize(
    ("body", "charset", "message"),
    [
        (b"<html><body>Log in</body></html>", None, "HTML page with no project links"),
        (b'<meta name="pypi:repository-version" content="2.0"><a>x</a>', None, "'2.0'"),
        (b"<a>caf\xe9</a>", None, "not UTF-8 text"),
        (b"<a>x</a>", "no-such-charset", "not no-such-charset text"),
    ],
)
def test_an_html_page_that_is_not_a_v1_index_is_an_input_error(
    body: bytes, charset: str | None, message: str
) -> None:
    with pytest.raises(InputError, match=message) as caught:
        html_records(body, URL, charset)
    assert str(caught.value).startswith(f"{URL}: ")


@pytest.fixture
def html_index_server() -> Iterator[str]:
    """A static PEP 503 index on loopback, as `python -m http.server` in a simple/ dir."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(HTML)))
            self.end_headers()
            self.wfile.write(HTML)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.httpx_mock(should_mock=lambda request: False)
def test_an_html_index_on_a_real_server_is_read(html_index_server: str) -> None:
    """Over a real socket: a plain static HTML index gives every project."""
    with httpx.Client() as client:
        assert fetch_simple_index(client, html_index_server) == EXPECTED
