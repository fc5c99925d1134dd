"""A PyPI-like JSON origin for the real-cache bench and the end-to-end tests (stdlib only).

``GET /pypi/<name>/json`` answers a small JSON document with ``Surrogate-Key: project/<name>
all-json`` and ``Cache-Control: public, max-age=...``; Varnish copies the keys into ``xkey``
(shared/reference/varnish-bench.md, P5). The origin serves at most ``capacity`` of those at
once, each taking ``service_time`` seconds; more wait in line, so it can be made to struggle.

- ``GET /metrics``: Prometheus text 0.0.4. ``origin_project_requests_total{project}`` counts
  fetches per project (what the end-to-end tests assert on); ``origin_requests_total{endpoint,
  code}``; ``origin_in_flight_requests``; ``origin_request_duration_seconds`` (a histogram of
  project fetches, queueing included, 1 ms to 2.5 s); ``origin_request_latency_p99_seconds``
  (over the last 1000 project fetches of the last minute).
- ``GET /healthz``: ``ok``; never queued behind project fetches (Varnish probes it).
- ``POST /admin/capacity?n=K`` and ``POST /admin/service-time?s=S``: change the load the origin
  takes while it runs (answered only to loopback clients).
- ``POST /admin/canonical?form=verbatim|normalized|none`` with the verbatim spellings in the
  body, a name a line: replays 2022 (issue 14). ``verbatim``: a project's normalized URL
  answers ``301`` to its verbatim one; ``normalized``: a verbatim URL answers ``301`` to the
  normalized one; ``none`` (the default): every project URL answers 200. Redirects carry the
  project's surrogate keys and cache like any answer.

Run ``python bench/origin.py --port 0`` to print ``listening on http://127.0.0.1:PORT``, or
build an :class:`OriginServer` in-process.

A thread per connection: behind Varnish on 2 cores it serves about 2,000 fetches/s. Thousands
of connections at once (background fetches when everything soft-purged is requested at
once) starve it, /metrics included; keep such refresh traffic under that rate.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final
from urllib.parse import parse_qs, urlsplit

__all__ = ["BUCKETS", "Capacity", "OriginServer", "main"]

#: Histogram upper bounds in seconds, 1 ms to 2.5 s (+Inf is added when rendering).
BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
P99_WINDOW_REQUESTS: Final = 1000
P99_WINDOW_SECONDS: Final = 60.0
_PROJECT: Final = re.compile(r"/pypi/([A-Za-z0-9][A-Za-z0-9._-]*)/json")


class Capacity:
    """A semaphore whose size can change while requests wait on it."""

    def __init__(self, size: int) -> None:
        self._check(size)
        self._size = size
        self._in_use = 0
        self._changed = threading.Condition()

    @staticmethod
    def _check(size: int) -> None:
        if size < 1:
            raise ValueError(f"capacity must be >= 1, not {size}")

    @property
    def size(self) -> int:
        return self._size

    def resize(self, size: int) -> None:
        """Admit up to ``size`` at once from now on; requests already admitted finish."""
        self._check(size)
        with self._changed:
            self._size = size
            self._changed.notify_all()

    def __enter__(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._in_use < self._size)
            self._in_use += 1

    def __exit__(self, *exc: object) -> None:
        with self._changed:
            self._in_use -= 1
            self._changed.notify()


class OriginServer(ThreadingHTTPServer):
    """The origin: counters behind one lock, a resizable capacity, settings that may change."""

    daemon_threads = True
    request_queue_size = 1024  # the default 5 drops connections under load (P8)

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        capacity: int = 64,
        service_time: float = 0.0,
        max_age: int = 3600,
    ) -> None:
        super().__init__((host, port), _Handler)
        self.capacity = Capacity(capacity)
        self.service_time = service_time
        self.max_age = max_age
        self.lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.projects: Counter[str] = Counter()
        self.in_flight = 0
        self.bucket_counts = [0] * (len(BUCKETS) + 1)
        self.duration_sum = 0.0
        self.recent: deque[tuple[float, float]] = deque(maxlen=P99_WINDOW_REQUESTS)
        #: Which spelling of a project's URL answers 200; the other redirects to it.
        self.canonical = "none"
        #: Normalized name -> its verbatim spelling, for ``canonical = "verbatim"``.
        self.spellings: dict[str, str] = {}

    def redirect_for(self, name: str) -> str | None:
        """Where a project URL spelled ``name`` redirects now, or ``None`` (it answers)."""
        normalized = normalize(name)
        if self.canonical == "normalized" and name != normalized:
            return normalized
        verbatim = self.spellings.get(normalized)
        if self.canonical == "verbatim" and verbatim is not None and name != verbatim:
            return verbatim
        return None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def observe(self, endpoint: str, code: int, *, project: str | None, seconds: float) -> int:
        """Count one answered request; for a project fetch return its fetch number (1, 2...)."""
        with self.lock:
            self.requests[endpoint, code] += 1
            if project is None:
                return 0
            self.projects[project] += 1
            index = next((i for i, bound in enumerate(BUCKETS) if seconds <= bound), len(BUCKETS))
            self.bucket_counts[index] += 1
            self.duration_sum += seconds
            self.recent.append((time.monotonic(), seconds))
            return self.projects[project]

    def p99(self) -> float:
        """The 99th percentile of recent project fetches, 0 when there were none."""
        horizon = time.monotonic() - P99_WINDOW_SECONDS
        with self.lock:
            values = sorted(seconds for at, seconds in self.recent if at >= horizon)
        if not values:
            return 0.0
        return values[min(len(values) - 1, math.ceil(0.99 * len(values)) - 1)]

    def metrics(self) -> str:
        p99 = self.p99()
        with self.lock:
            requests = sorted(self.requests.items())
            projects = sorted(self.projects.items())
            in_flight = self.in_flight
            buckets = list(self.bucket_counts)
            total_seconds = self.duration_sum
        lines = [
            "# HELP origin_requests_total Requests answered, by endpoint and status code.",
            "# TYPE origin_requests_total counter",
            *(f'origin_requests_total{{endpoint="{e}",code="{c}"}} {n}' for (e, c), n in requests),
            "# HELP origin_project_requests_total Fetches of each project's JSON.",
            "# TYPE origin_project_requests_total counter",
            *(f'origin_project_requests_total{{project="{_escape(p)}"}} {n}' for p, n in projects),
            "# HELP origin_in_flight_requests Requests being answered now, this scrape included.",
            "# TYPE origin_in_flight_requests gauge",
            f"origin_in_flight_requests {in_flight}",
            "# HELP origin_request_duration_seconds Project fetch time, queueing included.",
            "# TYPE origin_request_duration_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip((*map(repr, BUCKETS), "+Inf"), buckets, strict=True):
            cumulative += count
            lines.append(f'origin_request_duration_seconds_bucket{{le="{bound}"}} {cumulative}')
        lines += [
            f"origin_request_duration_seconds_sum {total_seconds!r}",
            f"origin_request_duration_seconds_count {cumulative}",
            "# HELP origin_request_latency_p99_seconds p99 of the last 1000 project fetches"
            " of the last minute.",
            "# TYPE origin_request_latency_p99_seconds gauge",
            f"origin_request_latency_p99_seconds {p99!r}",
        ]
        return "\n".join(lines) + "\n"


def normalize(name: str) -> str:
    """PEP 503: runs of ``-_.`` become one ``-``, lower case."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Handler(BaseHTTPRequestHandler):
    server: OriginServer
    protocol_version = "HTTP/1.1"  # keep-alive with Varnish
    disable_nagle_algorithm = True  # headers and body go out separately: no 40 ms stalls (P8)
    wbufsize = 64 * 1024

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.in_flight += 1
        try:
            self._get()
        finally:
            with self.server.lock:
                self.server.in_flight -= 1

    def do_HEAD(self) -> None:
        self.do_GET()

    def _get(self) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._answer("healthz", 200, b"ok\n", "text/plain")
        elif path == "/metrics":
            body = self.server.metrics().encode()
            self._answer("metrics", 200, body, "text/plain; version=0.0.4; charset=utf-8")
        elif match := _PROJECT.fullmatch(path):
            self._project(match.group(1))
        else:
            self._answer("other", 404, b"not found\n", "text/plain")

    def _project(self, name: str) -> None:
        started = time.monotonic()
        with self.server.capacity:
            if self.server.service_time > 0:
                time.sleep(self.server.service_time)
        seconds = time.monotonic() - started
        target = self.server.redirect_for(name)
        key = name if self.server.canonical == "none" else normalize(name)
        code = 200 if target is None else 301
        fetch = self.server.observe("project", code, project=name, seconds=seconds)
        keys = {
            "Cache-Control": f"public, max-age={self.server.max_age}",
            # In 2022 mode both spellings are one project; otherwise as the path says.
            "Surrogate-Key": f"project/{key} all-json",
            "X-Origin-Fetch": str(fetch),
        }
        if target is not None:
            keys["Location"] = f"/pypi/{target}/json"  # relative, as warehouse sends them
            self._send(301, b"", "text/plain", keys)
            return
        body = json.dumps({"info": {"name": name}, "fetch": fetch}).encode()
        self._send(200, body, "application/json", keys)

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        if not ipaddress.ip_address(self.client_address[0]).is_loopback:
            self._answer("admin", 403, b"admin calls are for loopback clients\n", "text/plain")
            return
        try:
            if parts.path == "/admin/capacity":
                self.server.capacity.resize(int(query["n"]))
            elif parts.path == "/admin/service-time":
                seconds = float(query["s"])
                if not 0 <= seconds < math.inf:
                    raise ValueError(f"service time must be >= 0 and finite, not {seconds}")
                self.server.service_time = seconds
            elif parts.path == "/admin/canonical":
                self._set_canonical(query.get("form", ""))
            else:
                self._answer("other", 404, b"not found\n", "text/plain")
                return
        except (KeyError, ValueError) as exc:
            self._answer("admin", 400, f"bad admin call: {exc!r}\n".encode(), "text/plain")
            return
        settings = {
            "capacity": self.server.capacity.size,
            "service_time": self.server.service_time,
            "canonical": self.server.canonical,
        }
        self._answer("admin", 200, json.dumps(settings).encode(), "application/json")

    def _set_canonical(self, form: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if form not in ("none", "verbatim", "normalized"):
            raise ValueError(f"form must be none, verbatim or normalized, not {form!r}")
        names = [line.strip() for line in body.splitlines() if line.strip()]
        with self.server.lock:
            self.server.spellings.update({normalize(name): name for name in names})
            self.server.canonical = form

    def _answer(self, endpoint: str, code: int, body: bytes, content_type: str) -> None:
        self.server.observe(endpoint, code, project=None, seconds=0.0)
        self._send(code, body, content_type, {"Cache-Control": "no-store"})

    def _send(self, code: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # tens of thousands of requests: no access log


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--capacity", type=int, default=64, help="project fetches at once")
    parser.add_argument("--service-time", type=float, default=0.0, help="seconds per fetch")
    parser.add_argument("--max-age", type=int, default=3600, help="Cache-Control max-age")
    args = parser.parse_args(argv)
    server = OriginServer(
        args.host,
        args.port,
        capacity=args.capacity,
        service_time=args.service_time,
        max_age=args.max_age,
    )
    print(f"listening on http://{args.host}:{server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
