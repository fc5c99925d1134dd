"""Backpressure on real parts: a purge through Varnish while client traffic refills the cache
from an origin made small, paced by the origin's p99 read from a real Prometheus; the same
purge without signals beside it.

    python bench/real_backpressure_bench.py [--seconds 60] [--out bench/results]

Prints, for each run, how long it took and the share of Prometheus samples (every 2 s) in
which the origin's p99 was under its limit; writes JSON.

Not tuned yet (see issue 6's notes): with capacity 1 x 20 ms and 150 GETs/s over 20,000
Zipf names, the cold tail of the traffic alone keeps the origin's p99 over 0.1 s, so the
governed run pauses at once (as it should) and the comparison says nothing yet. The origin
must be healthy before the purge and overloaded by the refill after it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import Cluster, find_missing, install_hint, run_cluster
from bench.traffic import run_traffic, synthetic_popularity
from bench.wrk import Request, send_each

NAMES = 20_000
LIMIT, CRITICAL = 0.1, 0.5
GOVERNED_FLAGS = ["--tick", "2", "--feedback-delay", "10", "--initial-rate", "400"]
P99 = "histogram_quantile(0.99, sum(rate(origin_request_duration_seconds_bucket[5s])) by (le))"


def sample_p99(cluster: Cluster, stop: threading.Event, samples: list[tuple[float, float]]) -> None:
    if cluster.prometheus is None:
        raise RuntimeError("this bench needs Prometheus")
    started = time.monotonic()
    while not stop.wait(2.0):
        result = cluster.prometheus.query(P99)
        if result:
            value = result[0][1]
            if value == value:  # NaN when nothing was fetched in the window
                samples.append((time.monotonic() - started, value))


def purge(
    cluster: Cluster, names_file: Path, state: Path, *, governed: bool, seconds: float
) -> dict[str, object]:
    if cluster.prometheus is None:
        raise RuntimeError("this bench needs Prometheus")
    signal = (
        f"name=origin p99,source=prometheus,url={cluster.prometheus.url},limit={LIMIT},"
        f"critical={CRITICAL},kind=latency,query={P99}"
    )
    command = [
        sys.executable, "-m", "purger", "run", str(names_file), "--provider", "varnish",
        "--endpoint", cluster.varnish.url, "--key-template", "project/{name}", "--hard",
        "--state", str(state), "--rate", "2000", "--max-duration", str(seconds), "--yes",
        *([*GOVERNED_FLAGS, "--signal", signal] if governed else []),
    ]  # fmt: skip
    popularity = synthetic_popularity(NAMES, prefix="bp")
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_p99, args=(cluster, stop, samples), daemon=True)

    async def traffic() -> None:
        await run_traffic(
            cluster.varnish.url, popularity, per_second=150, count=int(150 * (seconds + 10)),
            duration=seconds + 10, concurrency=24,
        )  # fmt: skip

    def drive() -> None:
        anyio.run(traffic)

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    time.sleep(5)  # traffic settles on a warm cache before the purge starts
    sampler.start()
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    elapsed = time.monotonic() - started
    stop.set()
    driver.join(timeout=seconds + 30)
    under = sum(1 for _, p99 in samples if p99 <= LIMIT)
    return {
        "governed": governed,
        "exit": done.returncode,
        "seconds": round(elapsed, 1),
        "samples": len(samples),
        "p99_under_limit_share": round(under / len(samples), 3) if samples else None,
        "p99_max_s": round(max((p for _, p in samples), default=0.0), 3),
        "decisions": [line for line in done.stderr.splitlines() if line.startswith("control:")][
            :12
        ],
        "last_line": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    missing = find_missing(prometheus=True)
    if missing:
        sys.exit(install_hint(missing))
    rows = []
    for governed in (False, True):
        with (
            run_cluster(prometheus=True, capacity=1, service_time=0.02) as cluster,
            tempfile.TemporaryDirectory() as tmp,
        ):
            names_file = Path(tmp) / "names.txt"
            names_file.write_text("\n".join(f"bp{i:06d}" for i in range(NAMES)) + "\n")

            # Warm the popular part of the cache, slowly enough for the small origin.
            warm = [Request("GET", f"/pypi/bp{i:06d}/json") for i in range(1_000)]
            send_each(cluster.varnish.url, warm, per_second=40, timeout=120)
            rows.append(
                purge(
                    cluster,
                    names_file,
                    Path(tmp) / "state.sqlite",
                    governed=governed,
                    seconds=args.seconds,
                )
            )
    for row in rows:
        print(json.dumps(row, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "real_backpressure_bench.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
