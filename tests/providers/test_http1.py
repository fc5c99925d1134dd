"""The lean HTTP/1.1 transport against real servers on loopback: what it sends, how it reads
each kind of answer, when it reuses a connection, and how it fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from purger.model import Batch, TargetKind
from purger.providers.http1 import Http1Transport
from purger.providers.varnish import VarnishProvider

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the transport is built on asyncio streams


Answer = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class Server:
    """A loopback server: each request head (and body) goes to ``answer``, which writes the
    answer and says whether to keep the connection open."""

    answer: Answer
    port: int = 0
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                self.heads.append(head)
                if not await self.answer(head, reader, writer):
                    return
        finally:
            writer.close()


@asynccontextmanager
async def serve(answer: Answer) -> AsyncIterator[Server]:
    server = Server(answer)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()


def replying(raw: bytes, *, keep: bool = True) -> Answer:
    async def answer(head: bytes, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        w.write(raw)
        await w.drain()
        return keep

    return answer


PURGED = b"HTTP/1.1 200 Purged 3\r\nX-Purged-Count: 3\r\nContent-Length: 2\r\n\r\nok"


@asynccontextmanager
async def client(**transport: object) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=Http1Transport(**transport), timeout=2.0) as c:  # type: ignore[arg-type]
        yield c


async def test_sends_the_path_verbatim_with_the_host_and_reuses_the_connection():
    """The request line keeps the path as given (the 2022 outage: caches hold URLs
    verbatim), the Host is the one asked for, and three requests share one connection."""
    async with serve(replying(PURGED)) as server, client() as c:
        for _ in range(3):
            response = await c.request(
                "PURGE", f"{server.url}/simple/Foo_Bar/?x=%2F", headers={"Host": "pypi.test"}
            )
            assert response.status_code == 200
            assert response.reason_phrase == "Purged 3"
            assert response.headers["X-Purged-Count"] == "3"
            assert response.content == b"ok"
    assert server.connections == 1
    first = server.heads[0].split(b"\r\n")
    assert first[0] == b"PURGE /simple/Foo_Bar/?x=%2F HTTP/1.1"
    assert b"Host: pypi.test" in first


async def test_a_body_goes_with_its_length():
    seen: list[bytes] = []

    async def answer(head: bytes, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        seen.append(await reader.readexactly(5))
        w.write(PURGED)
        return True

    async with serve(answer) as server, client() as c:
        await c.post(server.url + "/", content=b"hello")
    assert b"Content-Length: 5" in server.heads[0]
    assert seen == [b"hello"]


async def test_reads_chunked_and_close_delimited_answers():
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: x\r\n\r\n"
    )
    async with serve(replying(chunked)) as server, client() as c:
        assert (await c.get(server.url)).content == b"abcde"
        assert (await c.get(server.url)).content == b"abcde"
        assert server.connections == 1  # a whole chunked answer leaves the connection usable
    to_close = b"HTTP/1.0 200 OK\r\n\r\nall of it"
    async with serve(replying(to_close, keep=False)) as server, client() as c:
        assert (await c.get(server.url)).content == b"all of it"
        assert (await c.get(server.url)).content == b"all of it"
        assert server.connections == 2  # read to the close: never reused


async def test_connection_close_is_honoured():
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    async with serve(replying(answer, keep=False)) as server, client() as c:
        for _ in range(3):
            assert (await c.get(server.url)).status_code == 200
    assert server.connections == 3


async def test_a_connection_closed_while_idle_is_replaced_for_an_idempotent_request():
    """The server keeps the connection after the answer, then drops it while idle (a
    keep-alive timeout): the next PURGE goes out again on a new connection."""
    calls = 0

    async def answer(head: bytes, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        nonlocal calls
        calls += 1
        w.write(PURGED)
        await w.drain()
        return False  # close after answering, without saying so

    async with serve(answer) as server, client() as c:
        await c.request("PURGE", server.url + "/a")
        await asyncio.sleep(0.05)  # the close reaches the idle connection
        response = await c.request("PURGE", server.url + "/b")
        assert response.status_code == 200
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.RemoteProtocolError, match="without an answer"):
            await c.post(server.url + "/c", content=b"x")  # not idempotent: not resent
    assert calls == 2  # /a and /b, each on its own connection; /c never reached the server
    assert server.connections == 2


async def test_failures_are_httpx_errors():
    """A garbled status line, a slow answer, a refused port, a cut answer: each one of
    httpx's errors, so a provider handles them as it handles httpx's own."""
    async with serve(replying(b"SSH-2.0-OpenSSH\r\n\r\n")) as server, client() as c:
        with pytest.raises(httpx.RemoteProtocolError, match="status line"):
            await c.get(server.url)

    async def silent(head: bytes, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    async with serve(silent) as server, client() as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.get(server.url, timeout=0.2)

    async with serve(replying(PURGED)) as server:
        port = server.port
    async with client() as c:
        with pytest.raises(httpx.ConnectError):
            await c.get(f"http://127.0.0.1:{port}/")

    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    async with serve(replying(cut, keep=False)) as server, client() as c:
        with pytest.raises(httpx.RemoteProtocolError, match="mid-answer"):
            await c.get(server.url)


async def test_other_schemes_go_to_the_fallback_or_are_refused():
    seen: list[str] = []

    def fallback(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(204)

    async with client(fallback=httpx.MockTransport(fallback)) as c:
        assert (await c.get("https://node.test/x")).status_code == 204
    assert seen == ["https://node.test/x"]
    async with client() as c:
        with pytest.raises(httpx.UnsupportedProtocol):
            await c.get("https://node.test/x")


async def test_the_varnish_adapter_counts_purges_through_it():
    """The adapter over this transport reads the node's count as it does over httpx's."""
    async with serve(replying(PURGED)) as server, client() as c:
        provider = VarnishProvider(client=c, endpoints=[server.url], hard=True)
        result = await provider.purge(Batch(TargetKind.URL, ("http://pypi.test/pypi/foo/json",)))
        keys = await provider.purge(Batch(TargetKind.KEY, ("project/foo", "project/bar")))
    assert (result.purged, keys.purged) == (3, 3)
    assert server.heads[0].startswith(b"PURGE /pypi/foo/json HTTP/1.1\r\n")
    assert b"Host: pypi.test" in server.heads[0]
    assert b"xkey-purge: project/foo project/bar" in server.heads[1]


def numbered() -> Answer:
    """Each answer says which request it answers, after the informational heads a server
    may send first (103 Early Hints, 100 Continue, both, or none), in turn."""
    interims = [b"", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
                b"HTTP/1.1 100 Continue\r\n\r\n",
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n"]  # fmt: skip
    served = 0

    async def answer(head: bytes, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        nonlocal served
        served += 1
        body = str(served).encode()
        w.write(interims[served % len(interims)])
        w.write(b"HTTP/1.1 200 Purged\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await w.drain()
        return True

    return answer


async def test_informational_answers_are_skipped_and_answers_stay_in_step():
    """A 1xx head is not the answer: each request gets its own final answer, on one
    connection, however many informational heads came before it."""
    async with serve(numbered()) as server, client() as c:
        for expected in range(1, 9):
            response = await c.request("PURGE", server.url + "/x")
            assert (response.status_code, response.text) == (200, str(expected))
    assert server.connections == 1


async def test_switching_protocols_is_an_error_and_the_connection_is_not_reused():
    switch = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    async with serve(replying(switch)) as server, client() as c:
        with pytest.raises(httpx.RemoteProtocolError, match="switched protocols"):
            await c.request("PURGE", server.url)
        with pytest.raises(httpx.RemoteProtocolError, match="switched protocols"):
            await c.request("PURGE", server.url)
    assert server.connections == 2


async def test_endless_informational_heads_are_refused():
    """A server that never stops sending 1xx heads is an error, not a hang."""

    async def endless(head: bytes, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        for _ in range(2000):
            w.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
        await w.drain()
        return False

    async with serve(endless) as server, client() as c:
        with pytest.raises(httpx.RemoteProtocolError, match="over"):
            await c.request("PURGE", server.url)
