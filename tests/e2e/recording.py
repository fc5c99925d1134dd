"""A small cache on loopback that speaks the Varnish contract purger's ``varnish`` provider
sends (``PURGE /`` with keys in ``xkey-softpurge``, or ``PURGE /path`` with the URL's
``Host``) and counts every key and URL it is sent, so a test can check that each target
was purged exactly once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["RecordingCache"]


class RecordingCache(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.purged: Counter[str] = Counter()
        self.requests = 0
        #: Every call: when it was answered (``time.monotonic()``) and its keys.
        self.calls: list[tuple[float, int]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def total(self) -> int:
        with self.lock:
            return sum(self.purged.values())


class _Handler(BaseHTTPRequestHandler):
    server: RecordingCache

    def do_PURGE(self) -> None:
        keys = self.headers.get("xkey-softpurge", "").split()
        if not keys and self.path != "/":  # a URL purge: the URL as the client named it
            keys = [f"http://{self.headers.get('Host', '')}{self.path}"]
        time.sleep(0.004)  # a real node takes a little while: stops land mid-flight
        with self.server.lock:
            self.server.purged.update(keys)
            self.server.requests += 1
            self.server.calls.append((time.monotonic(), len(keys)))
        self.send_response(200, f"Softpurged {len(keys)}")
        self.send_header("X-Purged-Count", str(len(keys)))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass
