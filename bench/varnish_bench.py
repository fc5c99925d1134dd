"""Purge throughput against a real Varnish with xkey, next to the raw figures for the same
requests: ``purger run`` (a subprocess, as an operator runs it), a bare httpx loop sending
the same PURGEs (the HTTP client's own ceiling), and ``wrk`` (what Varnish takes).

    python -m bench.varnish_bench [--urls 20000] [--keys 1000000] [--cached 20000] \
        [--concurrency 16] [--url-processes 1] [--max-seconds 120] [--out bench/results]

- URL purges: ``--urls`` objects cached under the clients' Host, then purged one PURGE per
  URL with that Host (goal: >= 1,500 URL purges/s through ``purger run``).
- Key purges: ``--keys`` surrogate keys purged hard, batched 256 to a ``PURGE /`` in
  ``xkey-purge`` as the Varnish adapter does, ``--cached`` of them with a cached object
  (goal: >= 100,000 keys/s).

Before each measured purge the objects are fetched again, so every client purges the same
cached objects; "evicted" is the drop of Varnish's ``MAIN.n_object``. ``purger run`` is
timed from exec to exit; "after start-up" subtracts the wall time of the same command with
``--dry-run`` (imports, reading and planning the names). Each step is bounded in count
(the options) and in time (``--max-seconds``). Prints a table; writes
``varnish_bench.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import anyio
import httpx

from bench.cluster import Cluster, find_missing, install_hint, run_cluster, varnish_version
from bench.wrk import Request, send_each
from purger.providers.varnish import MAX_KEYS

CLIENT_HOST = "pypi.test"
CONNECTIONS_PER_CLIENT = 5  # as purger's launch: httpx slows down with big pools (P10)
URL_GOAL = 1_500.0
KEY_GOAL = 100_000.0
#: purger run's progress line: "  35 s  20,000 targets in 20,000 calls, ..."
_PROGRESS = re.compile(r"([\d,]+) targets in ([\d,]+) calls")
_STOPPED = 3  # purger run's exit code when --max-duration stopped it (resumable)


@dataclass(frozen=True, slots=True)
class PurgerRun:
    seconds: float
    targets: int
    calls: int
    stopped: bool  # by --max-duration, before the end


@dataclass(frozen=True, slots=True)
class Goal:
    name: str
    value: float
    goal: float

    @property
    def is_met(self) -> bool:
        return self.value >= self.goal

    def to_json(self) -> dict[str, object]:
        return {"value": round(self.value), "goal": self.goal, "met": self.is_met}


@dataclass(frozen=True, slots=True)
class Row:
    kind: str  # "url" or "key"
    client: str
    requests: int
    targets: int
    seconds: float
    evicted: int
    seconds_after_startup: float | None = None

    @property
    def targets_per_second(self) -> float:
        return self.targets / self.seconds if self.seconds > 0 else 0.0

    @property
    def targets_per_second_after_startup(self) -> float | None:
        if self.seconds_after_startup is None or self.seconds_after_startup <= 0:
            return None
        return self.targets / self.seconds_after_startup

    def to_json(self) -> dict[str, object]:
        return {
            **asdict(self),
            "targets_per_second": round(self.targets_per_second, 1),
            "requests_per_second": round(self.requests / self.seconds, 1) if self.seconds else 0,
            "targets_per_second_after_startup": (
                None if (rate := self.targets_per_second_after_startup) is None else round(rate, 1)
            ),
        }


def names_of(count: int) -> list[str]:
    return [f"n{i:07d}" for i in range(count)]


def warm(cluster: Cluster, names: Sequence[str], max_seconds: float) -> None:
    """Fetch each name through Varnish with the clients' Host, so it is cached."""
    requests = [Request("GET", f"/pypi/{name}/json") for name in names]
    send_each(cluster.varnish.url, requests, host=CLIENT_HOST, timeout=max_seconds)


def objects(cluster: Cluster) -> int:
    time.sleep(0.5)  # Varnish frees purged objects in its expiry thread
    return cluster.varnish.counters()["MAIN.n_object"]


def url_requests(names: Sequence[str]) -> list[Request]:
    return [Request("PURGE", f"/pypi/{name}/json") for name in names]


def key_requests(names: Sequence[str]) -> list[Request]:
    keys = [f"project/{name}" for name in names]
    return [
        Request("PURGE", "/", ("xkey-purge", " ".join(keys[i : i + MAX_KEYS])))
        for i in range(0, len(keys), MAX_KEYS)
    ]


def run_purger(
    cluster: Cluster,
    names: Sequence[str],
    template: Sequence[str],
    *,
    concurrency: int,
    processes: int,
    max_seconds: float,
    workdir: Path,
) -> tuple[PurgerRun, float, list[str]]:
    """``purger run`` over ``names`` split into ``processes`` runs at once: what they did,
    the wall seconds of the same commands with ``--dry-run``, and the commands."""
    commands = []
    for index in range(processes):
        part = workdir / f"names-{index}.txt"
        part.write_text("\n".join(names[index::processes]) + "\n")
        commands.append(
            [
                sys.executable,
                "-m",
                "purger",
                "run",
                str(part),
                "--provider",
                "varnish",
                "--endpoint",
                cluster.varnish.url,
                *template,
                "--hard",
                "--rate",
                "inf",
                "--concurrency",
                str(concurrency),
                "--max-duration",
                f"{max_seconds:g}",
                "--yes",
            ]
        )
    startup = _wall([[*c, "--dry-run"] for c in commands], max_seconds).seconds
    for index, command in enumerate(commands):
        command += ["--state", str(workdir / f"state-{time.monotonic_ns()}-{index}.sqlite")]
    return _wall(commands, max_seconds), startup, [shlex.join(c) for c in commands]


def _wall(commands: Sequence[Sequence[str]], max_seconds: float) -> PurgerRun:
    """Run ``commands`` at once; their wall time and, from their last progress lines, the
    targets and calls they sent."""
    started = time.monotonic()
    running = [
        subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    targets = calls = 0
    stopped = False
    for process in running:
        _, stderr = process.communicate(timeout=max_seconds + 60)
        if process.returncode not in (0, _STOPPED):
            raise SystemExit(f"purger run failed ({process.returncode}):\n{stderr[-2000:]}")
        stopped |= process.returncode == _STOPPED
        if found := _PROGRESS.findall(stderr):
            targets += int(found[-1][0].replace(",", ""))
            calls += int(found[-1][1].replace(",", ""))
    return PurgerRun(time.monotonic() - started, targets, calls, stopped)


def targets_in(request: Request) -> int:
    """Keys in a key purge, else 1 (one URL)."""
    return len(request.header[1].split()) if request.header else 1


async def _httpx_each(
    url: str,
    requests: Sequence[Request],
    done: list[Request],
    *,
    concurrency: int,
    host: str | None,
) -> None:
    clients = [
        httpx.AsyncClient(
            base_url=url,
            headers={"Host": host} if host else {},
            timeout=10.0,
            limits=httpx.Limits(
                max_connections=CONNECTIONS_PER_CLIENT,
                max_keepalive_connections=CONNECTIONS_PER_CLIENT,
            ),
        )
        for _ in range(math.ceil(concurrency / CONNECTIONS_PER_CLIENT))
    ]
    pending = iter(requests)

    async def worker(client: httpx.AsyncClient) -> None:
        for request in pending:
            headers = dict([request.header]) if request.header else {}
            response = await client.request(request.method, request.path, headers=headers)
            response.raise_for_status()
            done.append(request)

    try:
        async with anyio.create_task_group() as group:
            for index in range(concurrency):
                group.start_soon(worker, clients[index % len(clients)])
    finally:
        for client in clients:
            await client.aclose()


def httpx_each(
    cluster: Cluster,
    requests: Sequence[Request],
    *,
    concurrency: int,
    host: str | None,
    max_seconds: float,
) -> tuple[float, list[Request]]:
    """A bare httpx loop sending each request once, for ``max_seconds`` at most: seconds
    taken and the requests answered."""
    done: list[Request] = []

    async def timed() -> float:
        started = time.monotonic()
        with anyio.move_on_after(max_seconds):
            await _httpx_each(
                cluster.varnish.url, requests, done, concurrency=concurrency, host=host
            )
        return time.monotonic() - started

    return anyio.run(timed), done


def measure(
    cluster: Cluster,
    kind: str,
    names: Sequence[str],
    cached: Sequence[str],
    args: argparse.Namespace,
    workdir: Path,
) -> tuple[list[Row], list[str]]:
    """The three clients purging ``names`` (by URL or by key), each after a fresh warm-up."""
    if kind == "url":
        template = ["--url-template", f"http://{CLIENT_HOST}/pypi/{{name}}/json"]
        requests, host = url_requests(names), CLIENT_HOST
    else:
        template = ["--key-template", "project/{name}"]
        requests, host = key_requests(names), None
    rows = []

    warm(cluster, cached, args.max_seconds)
    before = objects(cluster)
    run, startup, commands = run_purger(
        cluster,
        names,
        template,
        concurrency=args.concurrency,
        processes=args.url_processes if kind == "url" else 1,
        max_seconds=args.max_seconds,
        workdir=workdir,
    )
    label = f"purger run (concurrency {args.concurrency})"
    if kind == "url" and args.url_processes > 1:
        label = f"purger run x{args.url_processes} processes (concurrency {args.concurrency})"
    if run.stopped:
        label += ", stopped by --max-duration"
    evicted = before - objects(cluster)
    rows.append(
        Row(kind, label, run.calls, run.targets, run.seconds, evicted, run.seconds - startup)
    )

    warm(cluster, cached, args.max_seconds)
    before = objects(cluster)
    seconds, done = httpx_each(
        cluster, requests, concurrency=args.concurrency, host=host, max_seconds=args.max_seconds
    )
    label = f"httpx loop (concurrency {args.concurrency})"
    if len(done) < len(requests):
        label += ", stopped by --max-seconds"
    targets = sum(map(targets_in, done))
    rows.append(Row(kind, label, len(done), targets, seconds, before - objects(cluster)))

    warm(cluster, cached, args.max_seconds)
    before = objects(cluster)
    result = send_each(
        cluster.varnish.url, requests, host=host, connections=16, timeout=args.max_seconds
    )
    rows.append(
        Row(
            kind,
            "wrk (2 threads, 16 connections)",
            len(requests),
            len(names),
            result.seconds,
            before - objects(cluster),
        )
    )
    return rows, commands


def render(rows: Sequence[Row]) -> str:
    width = max(len("client"), *(len(row.client) for row in rows))
    header = (
        f"{'purge':<5} {'client':<{width}} {'requests':>9} {'targets':>10} {'seconds':>8} "
        f"{'targets/s':>10} {'after start-up':>15} {'evicted':>8}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        after = row.targets_per_second_after_startup
        lines.append(
            f"{row.kind:<5} {row.client:<{width}} {row.requests:>9,} {row.targets:>10,} "
            f"{row.seconds:>8.2f} {row.targets_per_second:>10,.0f} "
            f"{'' if after is None else f'{after:,.0f}':>15} {row.evicted:>8,}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=20_000, help="URLs to purge")
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys to purge")
    parser.add_argument("--cached", type=int, default=20_000, help="objects cached per step")
    parser.add_argument("--concurrency", type=int, default=16, help="purger --concurrency")
    parser.add_argument(
        "--url-processes", type=int, default=1, help="purger runs at once over split URLs"
    )
    parser.add_argument("--max-seconds", type=float, default=120.0, help="bound per step")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    if missing := find_missing(prometheus=False, wrk=True):
        raise SystemExit(install_hint(missing))

    started = time.monotonic()
    rows: list[Row] = []
    commands: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="purger-bench-") as made, run_cluster() as cluster:
        workdir = Path(made)
        url_names = names_of(args.urls)
        found, commands["url"] = measure(cluster, "url", url_names, url_names, args, workdir)
        rows += found
        key_names = names_of(args.keys)
        cached = key_names[: args.cached]
        found, commands["key"] = measure(cluster, "key", key_names, cached, args, workdir)
        rows += found

    print(render(rows))
    purger = {row.kind: row for row in rows if row.client.startswith("purger run")}
    goals = [
        Goal("url_purges_per_second", purger["url"].targets_per_second, URL_GOAL),
        Goal("keys_per_second", purger["key"].targets_per_second, KEY_GOAL),
    ]
    print()
    for goal in goals:
        verdict = "met" if goal.is_met else "NOT met"
        print(f"purger run {goal.name}: {goal.value:,.0f} (goal >= {goal.goal:,.0f}: {verdict})")
    document = {
        "command": shlex.join(
            [sys.executable, "-m", "bench.varnish_bench", *(argv or sys.argv[1:])]
        ),
        "purger_commands": commands,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "varnish": varnish_version(),
        },
        "settings": {key: str(value) for key, value in vars(args).items()},
        "rows": [row.to_json() for row in rows],
        "goals": {goal.name: goal.to_json() for goal in goals},
        "seconds": round(time.monotonic() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "varnish_bench.json"
    path.write_text(json.dumps(document, indent=1) + "\n")
    print(f"\nwritten to {path} in {document['seconds']} s")


if __name__ == "__main__":
    main()
