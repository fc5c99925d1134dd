"""Where purger's metrics go: a ``/metrics`` page for Prometheus to scrape (an incident, a
long run, several runners), a textfile for node_exporter (cron jobs on a host), a
Pushgateway (Kubernetes CronJobs). prometheus-client does the work; this module names the
three and makes them safe to call every tick.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import push_to_gateway, start_http_server, write_to_textfile
from prometheus_client.registry import CollectorRegistry

from purger.errors import UnavailableError, UsageError

__all__ = ["MetricsServer", "push", "serve", "write_textfile"]

#: The Pushgateway's job label: one purge job, grouped by run id.
JOB = "purger"


@dataclass(slots=True)
class MetricsServer:
    """A running ``/metrics`` page; :meth:`close` stops it and frees the port."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(registry: CollectorRegistry, address: str, port: int) -> MetricsServer:
    """Serve ``registry`` on ``http://address:port/metrics`` from a daemon thread (port 0:
    any free one, read back from :attr:`MetricsServer.port`)."""
    try:
        server, thread = start_http_server(port, addr=address, registry=registry)
    except OSError as error:
        raise UsageError(
            f"--metrics-port: cannot listen on {address}:{port} ({error.strerror or error})"
        ) from error
    return MetricsServer(server, thread)


def write_textfile(path: Path, registry: CollectorRegistry) -> None:
    """Write the metrics to ``path`` atomically (a temporary file beside it, renamed), so
    node_exporter never reads half a file."""
    try:
        write_to_textfile(str(path), registry)
    except OSError as error:
        raise UnavailableError(
            f"{path}: cannot write the metrics textfile ({error.strerror or error})"
        ) from error


def push(url: str, registry: CollectorRegistry, run_id: str) -> None:
    """Replace this run's group on the Pushgateway at ``url`` (blocking: call it off the
    event loop)."""
    try:
        push_to_gateway(
            url, job=JOB, registry=registry, grouping_key={"run_id": run_id}, timeout=10
        )
    except OSError as error:
        raise UnavailableError(f"{url}: cannot push metrics ({error})") from error
