"""A lean HTTP/1.1 transport for plain-``http`` cache nodes (Varnish), under httpx.

Why: a URL purge is one request, and Varnish answers it in microseconds, so the client's
own cost per request sets the pace. httpcore, h11 and anyio's stream wrappers under httpx
cost several times more per request than this does (varnish-bench.md, P10; measured in
``bench/varnish_bench.py``). The client above stays httpx (the same requests, timeouts and
errors as every other provider, and tests that pin the wire format with pytest-httpx); only
the connection work is done here, on asyncio streams.

Scope, on purpose: ``http://`` only (other schemes go to ``fallback``, httpx's own
transport, or raise :class:`httpx.UnsupportedProtocol`), no proxies, no HTTP/2, request
bodies sent with their length. Keep-alive connections per host, one request at a time
each (no pipelining: a node that closes mid-pipeline would leave requests in doubt), as
many at once as callers ask for (the run's concurrency bounds them). Responses are read
by ``Content-Length``, chunked, or to the close, past any 1xx informational heads. A
connection is reused only after a whole response that did not ask to close; anything
else (a timeout, a cancel, an error) closes it. An idempotent request (a PURGE is) that
finds its reused connection closed by the server before any answer byte is sent once
more, on another connection: that is what a keep-alive race looks like.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import httpx

__all__ = ["Http1Transport"]

#: A response head larger than this is refused (Varnish's own limit is 8 KiB a header).
_MAX_HEAD: Final = 64 * 1024
_NO_BODY_STATUS: Final = frozenset({204, 304})
#: Methods sent once more when a reused connection turns out closed (RFC 9110, 9.2.2).
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PURGE"})


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class _ClosedBeforeAnswer(Exception):
    """The server closed a reused connection before sending anything back."""


class Http1Transport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 on asyncio streams; ``max_idle`` connections kept per host;
    requests for other schemes than ``http`` go to ``fallback``."""

    def __init__(
        self, *, max_idle: int = 64, fallback: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._max_idle = max_idle
        self._fallback = fallback
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            if self._fallback is not None:
                return await self._fallback.handle_async_request(request)
            raise httpx.UnsupportedProtocol(
                f"the lean HTTP/1.1 transport speaks http only, not {url.scheme!r}",
                request=request,
            )
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        head = _request_head(request, body)
        key = (url.host, url.port or 80)
        idle = self._idle.setdefault(key, [])
        while idle:
            connection = idle.pop()
            try:
                return await self._exchange(connection, request, head + body, timeouts, key)
            except _ClosedBeforeAnswer:
                if request.method not in _IDEMPOTENT:
                    raise httpx.RemoteProtocolError(
                        "the server closed the connection without an answer", request=request
                    ) from None
                # Closed while idle: try the next, then a new connection.
        connection = await self._connect(key, request, timeouts.get("connect"))
        try:
            return await self._exchange(connection, request, head + body, timeouts, key)
        except _ClosedBeforeAnswer:
            raise httpx.RemoteProtocolError(
                "the server closed the connection without an answer", request=request
            ) from None

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        if self._fallback is not None:
            await self._fallback.aclose()

    async def _connect(
        self, key: tuple[str, int], request: httpx.Request, limit: float | None
    ) -> _Connection:
        try:
            async with asyncio.timeout(limit):
                reader, writer = await asyncio.open_connection(*key, limit=_MAX_HEAD)
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"no connection within {_seconds(limit)}", request=request
            ) from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        return _Connection(reader, writer)

    async def _exchange(
        self,
        connection: _Connection,
        request: httpx.Request,
        message: bytes,
        timeouts: dict[str, float | None],
        key: tuple[str, int],
    ) -> httpx.Response:
        """Send ``message``, read the whole answer; the connection goes back to the idle
        list only when the answer was whole and did not ask to close."""
        reusable = False
        try:
            with _as_httpx_errors(request, timeouts.get("read")):
                connection.writer.write(message)
                async with asyncio.timeout(timeouts.get("write")):
                    await connection.writer.drain()
                async with asyncio.timeout(timeouts.get("read")):
                    version, status, reason, headers = await _final_head(connection.reader, request)
                    content, keep = await _read_body(
                        connection.reader, request, status, version, headers
                    )
            reusable = keep
        except (ConnectionResetError, BrokenPipeError):
            raise _ClosedBeforeAnswer from None
        finally:
            if reusable and len(self._idle.setdefault(key, [])) < self._max_idle:
                self._idle[key].append(connection)
            else:
                connection.close()
        return httpx.Response(
            status,
            headers=headers,
            content=content,
            extensions={"reason_phrase": reason, "http_version": version},
        )


def _request_head(request: httpx.Request, body: bytes) -> bytes:
    target = request.url.raw_path or b"/"
    lines = [request.method.encode("ascii") + b" " + target + b" HTTP/1.1"]
    has_length = False
    for name, value in request.headers.raw:
        lowered = name.lower()
        if lowered == b"content-length":
            has_length = True
        elif lowered == b"transfer-encoding":
            continue  # the body was read whole: it goes with its length
        lines.append(name + b": " + value)
    if body and not has_length:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _final_head(
    reader: asyncio.StreamReader, request: httpx.Request
) -> tuple[bytes, int, bytes, list[tuple[bytes, bytes]]]:
    """The final answer's head, past any 1xx informational heads (``100 Continue``, ``103
    Early Hints``): taking one for the answer would shift every later answer on the
    connection by one. ``101 Switching Protocols`` is an error: the connection then speaks
    something else, and is closed."""
    interim = 0  # bytes of informational heads: bounded like one head
    while True:
        try:
            raw_head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial and not interim:
                raise _ClosedBeforeAnswer from None
            raise
        head = _parse_head(raw_head, request)
        status = head[1]
        if not 100 <= status < 200:
            return head
        if status == 101:
            raise httpx.RemoteProtocolError(
                "the server switched protocols (101); a purge needs an HTTP/1.1 answer",
                request=request,
            )
        interim += len(raw_head)
        if interim > _MAX_HEAD:
            raise asyncio.LimitOverrunError("informational heads", interim)


def _parse_head(
    raw: bytes, request: httpx.Request
) -> tuple[bytes, int, bytes, list[tuple[bytes, bytes]]]:
    status_line, *header_lines = raw[:-4].split(b"\r\n")
    version, _, rest = status_line.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if not version.startswith(b"HTTP/1.") or not code.isdigit() or len(code) != 3:
        raise httpx.RemoteProtocolError(
            f"not an HTTP/1 status line: {status_line[:80]!r}", request=request
        )
    headers = []
    for line in header_lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise httpx.RemoteProtocolError(
                f"malformed header line: {line[:80]!r}", request=request
            )
        headers.append((name, value.strip()))
    return version, int(code), reason, headers


async def _read_body(
    reader: asyncio.StreamReader,
    request: httpx.Request,
    status: int,
    version: bytes,
    headers: list[tuple[bytes, bytes]],
) -> tuple[bytes, bool]:
    """The body, and whether the connection may carry another request."""
    fields = {name.lower(): value for name, value in headers}
    connection = fields.get(b"connection", b"").lower()
    keep = connection != b"close" and (version == b"HTTP/1.1" or connection == b"keep-alive")
    if request.method == "HEAD" or status in _NO_BODY_STATUS:
        return b"", keep
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        return await _read_chunked(reader, request), keep
    length = fields.get(b"content-length")
    if length is not None:
        if not length.isdigit():
            raise httpx.RemoteProtocolError(f"bad Content-Length {length[:20]!r}", request=request)
        return await reader.readexactly(int(length)), keep
    return await reader.read(), False  # delimited by the close


async def _read_chunked(reader: asyncio.StreamReader, request: httpx.Request) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size_text = size_line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise httpx.RemoteProtocolError(
                f"bad chunk size {size_text[:20]!r}", request=request
            ) from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers, ignored
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


@contextmanager
def _as_httpx_errors(request: httpx.Request, read_timeout: float | None) -> Iterator[None]:
    """asyncio's and the socket's errors as httpx's, so callers handle one family."""
    try:
        yield
    except TimeoutError:
        raise httpx.ReadTimeout(
            f"no answer within {_seconds(read_timeout)}", request=request
        ) from None
    except asyncio.IncompleteReadError as exc:
        raise httpx.RemoteProtocolError(
            f"the connection closed mid-answer ({len(exc.partial)} bytes)", request=request
        ) from None
    except asyncio.LimitOverrunError:
        raise httpx.RemoteProtocolError(
            f"an answer's head over {_MAX_HEAD} bytes", request=request
        ) from None
    except (ConnectionResetError, BrokenPipeError):
        raise  # the caller knows whether the connection was a reused one
    except OSError as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc


def _seconds(timeout: float | None) -> str:
    return "no limit" if timeout is None else f"{timeout:g} s"
