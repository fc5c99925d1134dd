"""Start and stop a real cache cluster on loopback for the bench and the end-to-end tests.

The origin (``bench/origin.py``), Varnish with the xkey VCL (``bench/xkey.vcl``) in front of
it, and Prometheus scraping the origin every second: each in a context manager that starts
it in a temporary directory on a free loopback port, waits until it answers, and stops it,
and any process it left in its process group, on the way out, whatever happened inside.
No systemd, no fixed ports (shared/reference/varnish-bench.md, P2 and P14).

    with run_cluster(prometheus=True) as cluster:
        httpx.get(cluster.varnish.url + "/pypi/foo/json")
        cluster.origin.project_counts()  # {"foo": 1}

:func:`find_missing` says which binaries and vmods are absent and which apt packages hold them.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import glob
import json
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Final, TypeVar

import httpx

from purger.health.exposition import Exposition, parse_exposition

__all__ = [
    "Cluster",
    "ClusterError",
    "Missing",
    "Origin",
    "Prometheus",
    "Varnish",
    "find_missing",
    "free_port",
    "install_hint",
    "render_vcl",
    "run_cluster",
    "run_origin",
    "run_prometheus",
    "run_pushgateway",
    "run_varnish",
    "varnish_version",
]

HERE: Final = Path(__file__).resolve().parent
ORIGIN_SCRIPT: Final = HERE / "origin.py"
VCL_TEMPLATE: Final = HERE / "xkey.vcl"
#: varnishd lives in /usr/sbin, which is not on every user's PATH.
_SEARCH_PATH: Final = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
_VMOD_DIRS: Final = (
    "/usr/lib/*/varnish/vmods",
    "/usr/lib/varnish/vmods",
    "/usr/lib64/varnish/vmods",
    "/usr/local/lib/varnish/vmods",
)
_PORT_TAKEN: Final = ("address already in use", "could not get socket")
_STOP_TIMEOUT: Final = 10.0
#: A burst of misses (20,000 background fetches after a soft purge) opens thousands of
#: backend connections, each a thread in the origin, which slows it down by half for as
#: long as Varnish keeps them idle (60 s by default): close them after 2 s instead.
VARNISH_PARAMETERS: Final = ("backend_idle_timeout=2",)
_T = TypeVar("_T")


class ClusterError(RuntimeError):
    """A part of the cluster could not start; the message holds the tail of its log."""


@dataclass(frozen=True, slots=True)
class Missing:
    """An absent binary or vmod and the Debian package that installs it."""

    part: str
    package: str


def find_missing(*, prometheus: bool = True, wrk: bool = False) -> list[Missing]:
    """What the cluster needs and this machine lacks: varnishd, varnishstat, the xkey vmod,
    and Prometheus and wrk when asked for."""
    wanted = [("varnishd", "varnish"), ("varnishstat", "varnish")]
    if prometheus:
        wanted.append(("prometheus", "prometheus"))
    if wrk:
        wanted.append(("wrk", "wrk"))
    missing = [Missing(name, package) for name, package in wanted if not _which(name)]
    if not any(glob.glob(os.path.join(d, "libvmod_xkey.so")) for d in _VMOD_DIRS):
        missing.append(Missing("xkey vmod (libvmod_xkey.so)", "varnish-modules"))
    return missing


def install_hint(missing: Sequence[Missing]) -> str:
    """One line: what is missing and the apt command that installs it."""
    packages = " ".join(dict.fromkeys(m.package for m in missing))
    parts = ", ".join(m.part for m in missing)
    return f"{parts} not found; install with: apt-get install {packages}"


def _which(name: str) -> str | None:
    return shutil.which(name, path=_SEARCH_PATH)


def free_port() -> int:
    """A loopback port nobody listens on now (P14): bind port 0, read it, close it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- processes ---------------------------------------------------------------------------

_PR_SET_PDEATHSIG: Final = 1
_LIBC_NAME = ctypes.util.find_library("c") if sys.platform == "linux" else None
_LIBC = ctypes.CDLL(_LIBC_NAME, use_errno=True) if _LIBC_NAME else None


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL me if the test runner dies without cleaning up.
    (varnishd drops this when it changes user; its cache process dies with its manager.)"""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class _Service:
    """A server process in its own process group, with its output in a log file."""

    _live: ClassVar[set[_Service]] = set()  # what atexit stops if nothing else did

    def __init__(self, name: str, argv: Sequence[str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, to kill what it forks
                preexec_fn=_die_with_parent,
            )
        self._live.add(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise ClusterError(f"{self.name} exited with code {code}:\n{self.log_tail()}")

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """SIGTERM the leader, SIGKILL the group if it does not end in time, then wait
        until nothing of the group but zombies is left (init reaps those, P4)."""
        self._live.discard(self)
        pgid = self.process.pid  # start_new_session: the leader's pid is the group id
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        self.process.wait()
        deadline = time.monotonic() + timeout
        while _group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)

    @classmethod
    def stop_all(cls) -> None:
        for service in list(cls._live):
            service.stop()


atexit.register(_Service.stop_all)


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``, from /proc."""
    members = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue  # ended while we looked
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.split("/")[2]))
    return members


def _wait_until(service: _Service, ready: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        service.check_alive()
        if ready():
            return
        if time.monotonic() > deadline:
            raise ClusterError(
                f"{service.name} did not {what} within {timeout:g} s:\n{service.log_tail()}"
            )
        time.sleep(0.05)


def _answers(url: str, status: int = 200) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == status
        except httpx.HTTPError:
            return False

    return check


def _with_free_port(start: Callable[[int], _T], attempts: int = 3) -> _T:
    """``start(port)`` on a free port; again on another if someone took it meanwhile."""
    for attempt in range(attempts):
        try:
            return start(free_port())
        except ClusterError as error:
            taken = any(text in str(error).lower() for text in _PORT_TAKEN)
            if not taken or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _directory(workdir: Path | None, prefix: str) -> Iterator[Path]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as made:
        yield Path(made)


# -- origin ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Origin:
    url: str
    port: int
    pid: int
    client: httpx.Client = field(repr=False)

    def metrics(self) -> Exposition:
        response = self.client.get("/metrics")
        response.raise_for_status()
        return parse_exposition(response.text)

    def project_counts(self) -> dict[str, int]:
        """Fetches per project so far, from ``origin_project_requests_total``."""
        family = self.metrics().series.get("origin_project_requests_total", {})
        return {dict(labels)["project"]: int(value) for labels, value in family.items()}

    def set_capacity(self, capacity: int) -> None:
        self.client.post("/admin/capacity", params={"n": capacity}).raise_for_status()

    def set_service_time(self, seconds: float) -> None:
        self.client.post("/admin/service-time", params={"s": seconds}).raise_for_status()


@contextlib.contextmanager
def run_origin(
    *,
    capacity: int = 64,
    service_time: float = 0.0,
    max_age: int = 3600,
    workdir: Path | None = None,
    timeout: float = 10.0,
) -> Iterator[Origin]:
    """``bench/origin.py`` in a subprocess on a port it picks itself (no race to lose)."""
    with _directory(workdir, "purger-origin-") as directory:
        argv = [
            sys.executable,
            str(ORIGIN_SCRIPT),
            "--port=0",
            f"--capacity={capacity}",
            f"--service-time={service_time}",
            f"--max-age={max_age}",
        ]
        service = _Service("origin", argv, directory / "origin.log")
        try:
            url = ""

            def listening() -> bool:
                nonlocal url
                for line in service.log.read_text(errors="replace").splitlines():
                    if line.startswith("listening on "):
                        url = line.removeprefix("listening on ").strip()
                return bool(url) and _answers(url + "/healthz")()

            _wait_until(service, listening, timeout, "answer /healthz")
            with httpx.Client(base_url=url, timeout=10.0) as client:
                yield Origin(url, int(url.rsplit(":", 1)[1]), service.pid, client)
        finally:
            service.stop()


# -- varnish -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Varnish:
    url: str
    port: int
    pid: int
    workdir: Path  # varnishd -n: varnishstat and varnishadm need it too (P2)

    def counters(self) -> dict[str, int]:
        """``varnishstat -1 -j`` as ``{"MAIN.n_obj_purged": 20000, ...}``."""
        stat = _which("varnishstat") or "varnishstat"
        output = subprocess.run(
            [stat, "-n", str(self.workdir), "-1", "-j"],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        document = json.loads(output)
        found = document.get("counters", document)  # 7.x nests them under "counters"
        return {
            name: int(entry["value"])
            for name, entry in found.items()
            if isinstance(entry, dict) and "value" in entry
        }


def varnish_version() -> str:
    """``varnishd -V``'s first line, e.g. ``varnishd (varnish-7.1.1 revision ...)``."""
    varnishd = _which("varnishd")
    if varnishd is None:
        return "absent"
    done = subprocess.run([varnishd, "-V"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().splitlines()[0]


def render_vcl(backend_port: int, *, grace: float = 30.0) -> str:
    return string.Template(VCL_TEMPLATE.read_text()).substitute(
        backend_port=backend_port, grace=f"{grace:g}"
    )


@contextlib.contextmanager
def run_varnish(
    backend_port: int,
    *,
    grace: float = 30.0,
    storage: str = "malloc,256m",
    parameters: Sequence[str] = (),
    timeout: float = 20.0,
) -> Iterator[Varnish]:
    """varnishd in the foreground (``-F``) before the origin at ``backend_port``.

    Its directory is made world-readable: run as root, varnishd reads the VCL and its work
    directory as the unprivileged ``varnish`` user (P3), and pytest's tmp_path is 0700.
    """
    if missing := find_missing(prometheus=False):
        raise ClusterError(install_hint(missing))
    varnishd = _which("varnishd") or "varnishd"
    with tempfile.TemporaryDirectory(prefix="purger-varnish-") as made:
        directory = Path(made)
        directory.chmod(0o755)
        vcl = directory / "xkey.vcl"
        vcl.write_text(render_vcl(backend_port, grace=grace))
        vcl.chmod(0o644)
        workdir = directory / "work"
        check = subprocess.run(
            [varnishd, "-C", "-f", str(vcl), "-n", str(workdir)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check.returncode != 0:  # -C writes the C program, or the error, to stderr
            raise ClusterError(f"varnishd -C rejects the VCL:\n{check.stderr[-2000:]}")

        def start(port: int) -> tuple[_Service, Varnish]:
            argv = [
                varnishd,
                "-F",
                "-a",
                f"127.0.0.1:{port}",
                "-T",
                "none",
                "-n",
                str(workdir),
                "-f",
                str(vcl),
                "-s",
                storage,
                *(item for p in (*VARNISH_PARAMETERS, *parameters) for item in ("-p", p)),
            ]
            service = _Service("varnishd", argv, directory / "varnishd.log")
            try:
                # /healthz passes through to the origin: the whole chain answers.
                url = f"http://127.0.0.1:{port}"
                _wait_until(service, _answers(url + "/healthz"), timeout, "answer")
            except BaseException:
                service.stop()
                raise
            return service, Varnish(url, port, service.pid, workdir)

        service, varnish = _with_free_port(start)
        try:
            yield varnish
        finally:
            service.stop()


# -- prometheus --------------------------------------------------------------------------


def _ready_service(
    name: str, argv: Sequence[str], directory: Path, port: int, timeout: float
) -> tuple[_Service, int]:
    """Start a Prometheus-family server (its ``/-/ready`` answers once it serves) on ``port``."""
    service = _Service(name, argv, directory / f"{name}.log")
    try:
        _wait_until(service, _answers(f"http://127.0.0.1:{port}/-/ready"), timeout, "become ready")
    except BaseException:
        service.stop()
        raise
    return service, port


@dataclass(frozen=True, slots=True)
class Prometheus:
    url: str
    port: int
    pid: int
    client: httpx.Client = field(repr=False)

    def query(self, expression: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        """The instant vector of ``expression`` now, or at unix time ``at``
        (``/api/v1/query``): labels and value."""
        params = {"query": expression} | ({} if at is None else {"time": f"{at:.3f}"})
        response = self.client.get("/api/v1/query", params=params)
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success" or body["data"]["resultType"] != "vector":
            raise ClusterError(f"prometheus query {expression!r} failed: {body}")
        return [(item["metric"], float(item["value"][1])) for item in body["data"]["result"]]

    def query_range(
        self, expression: str, start: float, end: float, step: float = 1.0
    ) -> list[tuple[float, float]]:
        """The samples of the one series ``expression`` gives between ``start`` and
        ``end`` (unix times), every ``step`` seconds: (time, value)."""
        params = {"query": expression, "start": start, "end": end, "step": step}
        response = self.client.get("/api/v1/query_range", params=params)
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success" or body["data"]["resultType"] != "matrix":
            raise ClusterError(f"prometheus range query {expression!r} failed: {body}")
        return [
            (float(at), float(value))
            for series in body["data"]["result"]
            for at, value in series["values"]
        ]

    def wait_for_scrape(self, job: str = "origin", timeout: float = 15.0) -> None:
        """Until the first scrape of ``job`` succeeded (``up == 1``). Prometheus 2.42 takes
        about 5 s to start scraping (its discovery manager sends targets every 5 s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(value == 1 for _, value in self.query(f'up{{job="{job}"}}')):
                return
            time.sleep(0.2)
        raise ClusterError(f"prometheus has not scraped {job} within {timeout:g} s")


@contextlib.contextmanager
def run_prometheus(
    targets: Sequence[str],
    *,
    job: str = "origin",
    scrape_interval: float = 1.0,
    workdir: Path | None = None,
    timeout: float = 30.0,
    extra_jobs: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[Prometheus]:
    """Prometheus scraping ``targets`` (``host:port``) every ``scrape_interval`` seconds,
    its TSDB in the temporary directory."""
    binary = _which("prometheus")
    if binary is None:
        raise ClusterError(install_hint([Missing("prometheus", "prometheus")]))
    with _directory(workdir, "purger-prometheus-") as directory:
        config = directory / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {
                        "scrape_interval": f"{scrape_interval:g}s",
                        "evaluation_interval": f"{scrape_interval:g}s",
                    },
                    "scrape_configs": [
                        {
                            "job_name": name,
                            "scrape_timeout": f"{scrape_interval:g}s",
                            "static_configs": [{"targets": list(hosts)}],
                        }
                        for name, hosts in {job: targets, **(extra_jobs or {})}.items()
                    ],
                },
                indent=1,
            )
        )

        def start(port: int) -> tuple[_Service, int]:
            argv = [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ]
            return _ready_service("prometheus", argv, directory, port, timeout)

        service, port = _with_free_port(start)
        try:
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, timeout=10.0) as client:
                yield Prometheus(url, port, service.pid, client)
        finally:
            service.stop()


# -- pushgateway -------------------------------------------------------------------------


@contextlib.contextmanager
def run_pushgateway(*, timeout: float = 30.0) -> Iterator[str]:
    """A Prometheus Pushgateway on a free loopback port, nothing persisted; yields its URL."""
    binary = _which("prometheus-pushgateway")
    if binary is None:
        raise ClusterError(
            install_hint([Missing("prometheus-pushgateway", "prometheus-pushgateway")])
        )
    with _directory(None, "purger-pushgateway-") as directory:

        def start(port: int) -> tuple[_Service, int]:
            argv = [binary, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
            return _ready_service("pushgateway", argv, directory, port, timeout)

        service, port = _with_free_port(start)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            service.stop()


# -- all together ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cluster:
    origin: Origin
    varnish: Varnish
    prometheus: Prometheus | None = None


@contextlib.contextmanager
def run_cluster(
    *,
    prometheus: bool = False,
    capacity: int = 64,
    service_time: float = 0.0,
    max_age: int = 3600,
    grace: float = 30.0,
    workdir: Path | None = None,
    extra_jobs: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[Cluster]:
    """Origin, then Varnish before it, then (if asked) Prometheus scraping the origin and
    already holding its first scrape; stopped in the reverse order."""
    with (
        run_origin(
            capacity=capacity, service_time=service_time, max_age=max_age, workdir=workdir
        ) as origin,
        run_varnish(origin.port, grace=grace) as varnish,
    ):
        if not prometheus:
            yield Cluster(origin, varnish)
            return
        target = f"127.0.0.1:{origin.port}"
        with run_prometheus(
            [target], workdir=workdir and workdir / "prometheus", extra_jobs=extra_jobs
        ) as server:
            server.wait_for_scrape()
            yield Cluster(origin, varnish, server)
