"""Drive ``wrk`` with ``bench/lua/each.lua``: send a list of requests exactly once each,
as fast as wrk can, and tally the answers.

wrk only knows how to run for a duration: the script prints ``DONE <thread>`` when a
thread's share is answered, and this module sends SIGINT once every thread has, so a run
takes as long as its requests do. The tests use it to GET 20,000 names through Varnish in
about a second (httpx needs 16-20 s); the bench for wrk's raw PURGE figures.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["EachResult", "Request", "WrkError", "find_wrk", "send_each"]

EACH_SCRIPT: Final = Path(__file__).resolve().parent / "lua" / "each.lua"
_TALLY: Final = re.compile(r"^TALLY (\S+) (\d+)$")


class WrkError(RuntimeError):
    """wrk is absent, failed, or did not get every answer in time."""


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    header: tuple[str, str] | None = None

    def line(self) -> str:
        parts = [self.method, self.path, *(self.header or ())]
        if any("\t" in part or "\n" in part for part in parts):
            raise ValueError(f"tabs and newlines cannot go through each.lua: {parts!r}")
        return "\t".join(parts)


@dataclass(frozen=True, slots=True)
class EachResult:
    requests: int
    seconds: float  # from the first request sent to the last answer
    tally: dict[str, int]  # "<X-Cache>/<X-Origin-Fetch or X-Purged-Count>/<status>" -> answers
    output: str

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def count(self, *, cache: str = "*", number: str = "*", status: str = "*") -> int:
        """Answers whose tally key matches; ``*`` matches anything."""
        wanted = (cache, number, status)
        return sum(
            n
            for key, n in self.tally.items()
            if all(w in ("*", got) for w, got in zip(wanted, key.split("/"), strict=True))
        )


def find_wrk() -> str | None:
    return shutil.which("wrk")


def send_each(
    url: str,
    requests: Iterable[Request],
    *,
    host: str | None = None,
    threads: int = 2,
    connections: int = 16,
    per_second: float | None = None,
    timeout: float = 60.0,
) -> EachResult:
    """Send each request once to ``url`` with wrk, ``per_second`` at most (each connection
    waits ``connections / per_second`` before each request); raise :class:`WrkError`
    unless every one is answered within ``timeout`` seconds."""
    binary = find_wrk()
    if binary is None:
        raise WrkError("wrk not found; install with: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="purger-wrk-") as directory:
        listing = Path(directory) / "requests.tsv"
        lines = [request.line() for request in requests]
        listing.write_text("\n".join(lines) + "\n")
        connections = max(connections, threads)
        pace_ms = round(1000 * connections / per_second) if per_second else 0
        argv = [
            binary,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{int(timeout) + 5}s",
            f"--timeout={int(timeout)}s",
            "-s",
            str(EACH_SCRIPT),
            url,
            "--",
            str(listing),
            str(threads),
            host or "",
            str(pace_ms),
        ]
        return _run(argv, len(lines), threads, timeout)


def _run(argv: Sequence[str], total: int, threads: int, timeout: float) -> EachResult:
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    if process.stdout is None:
        raise WrkError("wrk's output is not a pipe")
    output: list[str] = []
    started: float | None = None
    done = 0
    finished = time.monotonic()
    deadline = time.monotonic() + timeout
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            buffer = b""
            while done < threads and time.monotonic() < deadline:
                if not selector.select(timeout=0.5):
                    if process.poll() is not None:
                        break
                    continue
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace")
                    output.append(line)
                    if line.startswith("START ") and started is None:
                        started = time.monotonic()
                    elif line.startswith("DONE "):
                        done += 1
                        finished = time.monotonic()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # ends wrk's sleep: it prints and runs done()
        rest, _ = process.communicate(timeout=30)
        output += (buffer + rest).decode(errors="replace").splitlines()
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = "\n".join(output)
    tally = {m.group(1): int(m.group(2)) for line in output if (m := _TALLY.match(line))}
    answered = sum(tally.values())
    if done < threads or answered != total:
        raise WrkError(
            f"wrk answered {answered} of {total} requests ({done}/{threads} threads done) "
            f"within {timeout:g} s:\n{text[-3000:]}"
        )
    seconds = finished - (started if started is not None else finished)
    return EachResult(total, seconds, tally, text)
