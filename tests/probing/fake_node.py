"""A loopback cache node for the CLI tests: answers GETs from a table by (Host, path),
cached an hour ago (``Age: 3600``, ``X-Cache: HIT``) until a ``PURGE`` of that URL, after
which it answers as just fetched (``Age: 0``, ``X-Cache: MISS``). A ``deaf`` node answers
every PURGE ``200 Purged 1`` and evicts nothing, as the nodes of hexpm/hexpm#1841 did."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Table:
    #: (Host, path) -> (status, Location or None); absent: 404.
    answers: dict[tuple[str, str], tuple[int, str | None]] = field(default_factory=dict)
    purged: set[tuple[str, str]] = field(default_factory=set)
    purges: list[tuple[str, str]] = field(default_factory=list)
    gets: list[tuple[str, str]] = field(default_factory=list)
    deaf: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    table: Table


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        table = self.server.table
        key = (self.headers.get("Host", ""), self.path)
        with table.lock:
            table.gets.append(key)
            status, location = table.answers.get(key, (404, None))
            fresh = key in table.purged
        self.send_response(status)
        self.send_header("Age", "0" if fresh else "3600")
        self.send_header("X-Cache", "MISS" if fresh else "HIT")
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PURGE(self) -> None:
        table = self.server.table
        key = (self.headers.get("Host", ""), self.path)
        with table.lock:
            table.purges.append(key)
            if not table.deaf:
                table.purged.add(key)
        self.send_response(200, "Purged 1")
        self.send_header("X-Purged-Count", "1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def fake_node(table: Table) -> Iterator[str]:
    """Serve ``table`` on a free loopback port; yields ``http://127.0.0.1:PORT``."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.table = table
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
