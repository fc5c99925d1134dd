"""What purger's own metrics cost a run: the engine-overhead run of the README (the null
provider on the whole PyPI list, keys and URLs, every call checkpointed) with and without
``--metrics-port`` (a page served, a snapshot every second) and ``--metrics-textfile``,
alternating, each in its own process; medians of the wall times.

    python bench/metrics_bench.py ../shared/data/pypi-projects.tsv.gz [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS: dict[str, list[str]] = {
    "without metrics": [],
    "--metrics-port 0": ["--metrics-port", "0"],
    "--metrics-textfile": ["--metrics-textfile", "{dir}/purger.prom"],
}


def one_run(names: Path, extra: list[str]) -> float:
    with tempfile.TemporaryDirectory(prefix="purger-metrics-bench-") as directory:
        argv = [
            sys.executable, "-m", "purger", "run", str(names), "--yes", "--provider", "null",
            "--key-template", "project/{name}",
            "--url-template", "https://pypi.org/pypi/{name}/json",
            "--rate", "inf", "--concurrency", "16", "--state", f"{directory}/x.sqlite",
            *(arg.format(dir=directory) for arg in extra),
        ]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, extra in VARIANTS.items():  # alternating: the machine's noise is shared
            walls[name].append(one_run(args.names, extra))
    base = statistics.median(walls["without metrics"])
    print("| variant | wall s (median) | runs | x without |")
    print("|---|---|---|---|")
    for name, values in walls.items():
        median = statistics.median(values)
        runs = " / ".join(f"{v:.1f}" for v in values)
        print(f"| {name} | {median:.2f} | {runs} | {median / base:.3f} |")


if __name__ == "__main__":
    main()
