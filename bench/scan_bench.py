"""``purger scan`` against a real Varnish, beside ``wrk`` for the same GETs, and the blast
radius of scan + purge-the-bad against purging everything (issue 14, "Done means").

    python -m bench.scan_bench [--names 20000] [--planted 0.02] [--concurrency 8] \
        [--out bench/results]

- Throughput: ``--names`` objects cached under the clients' Host; ``wrk`` GETs each once
  (what Varnish takes), then ``purger scan --via`` probes each once (goal: >= 2,000 URLs/s;
  the scan's own probe time, from its ``--json``, and its wall time from exec to exit).
- Blast radius: 2022 replayed (``bench/origin.py`` ``/admin/canonical``): each name's
  normalized and verbatim URLs cached, the origin flips, ``--planted`` of the names keep a
  stale redirect and loop. (a) ``purger scan`` -> ``purger run`` on its output -> clients
  fetch every URL again; (b) ``purger run`` on every name -> clients fetch every URL again.
  The origin's fetches in (a) over those in (b) (goal: <= 5 %), and a last scan: no loop.

Prints a table; writes ``scan_bench.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.cluster import Cluster, run_cluster, varnish_version
from bench.wrk import Request, send_each

HOST = "pypi.test"
TEMPLATES = ("--url-template", f"http://{HOST}/pypi/{{name}}/json")
RAW_TEMPLATES = (*TEMPLATES, "--url-template", f"http://{HOST}/pypi/{{raw}}/json")


def purger(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "purger", *args], capture_output=True, text=True, check=False
    )
    return done, time.monotonic() - started


def fetched(cluster: Cluster) -> int:
    return sum(cluster.origin.project_counts().values())


def gets(names: Sequence[str]) -> list[Request]:
    return [Request("GET", f"/pypi/{name}/json") for name in names]


def throughput(cluster: Cluster, work: Path, count: int, concurrency: int) -> dict[str, object]:
    names = [f"scan-{i:05d}" for i in range(count)]
    listing = work / "plain.txt"
    listing.write_text("\n".join(names) + "\n")
    send_each(cluster.varnish.url, gets(names), host=HOST, timeout=120)  # warm
    wrk = send_each(cluster.varnish.url, gets(names), host=HOST, timeout=120)
    done, wall = purger(
        "scan", str(listing), *TEMPLATES, "--via", cluster.varnish.url, "--rate", "inf",
        "--concurrency", str(concurrency), "--out", str(work / "bad.txt"), "--json",
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"scan failed ({done.returncode}): {done.stderr}")
    report = json.loads(done.stdout)
    return {
        "urls": count,
        "wrk_per_second": round(wrk.per_second),
        "scan_per_second": round(count / report["seconds"]),
        "scan_wall_per_second": round(count / wall),
        "by_class": report["by_class"],
    }


def blast_radius(
    cluster: Cluster, work: Path, count: int, planted_share: float
) -> dict[str, object]:
    origin, node = cluster.origin, cluster.varnish.url
    names = [f"Blast_{i:05d}.Lib" for i in range(count)]
    normalized = [n.lower().replace("_", "-").replace(".", "-") for n in names]
    step = max(1, round(1 / planted_share))
    planted = set(names[step // 2 :: step])
    listing = work / "blast.txt"
    listing.write_text("\n".join(names) + "\n")
    every = gets(normalized) + gets(names)
    body = "\n".join(names)
    origin.client.post("/admin/canonical", params={"form": "verbatim"}, content=body)
    send_each(node, every, host=HOST, timeout=120)
    origin.client.post("/admin/canonical", params={"form": "normalized"}, content=body)
    healthy = [n for n, raw in zip(normalized, names, strict=True) if raw not in planted]
    purges = [Request("PURGE", r.path) for r in gets(names) + gets(healthy)]
    send_each(node, purges, host=HOST, timeout=120)  # the purges that worked
    send_each(node, every, host=HOST, timeout=120)  # clients refill: warm again

    def refill_cost(before: int) -> int:
        send_each(node, every, host=HOST, timeout=120)
        return fetched(cluster) - before

    start = fetched(cluster)
    bad = work / "bad.txt"
    scanned, scan_wall = purger(
        "scan", str(listing), *RAW_TEMPLATES, "--via", node, "--rate", "inf",
        "--out", str(bad), "--json",
    )  # fmt: skip
    found = set(bad.read_text().split())
    ran, small_wall = purger(
        "run", str(bad), "--provider", "varnish", "--endpoint", node, *RAW_TEMPLATES,
        "--rate", "inf", "--state", str(work / "small.sqlite"), "--yes",
    )  # fmt: skip
    small = refill_cost(start)
    start = fetched(cluster)
    everything, all_wall = purger(
        "run", str(listing), "--provider", "varnish", "--endpoint", node, *RAW_TEMPLATES,
        "--rate", "inf", "--state", str(work / "all.sqlite"), "--yes",
    )  # fmt: skip
    full = refill_cost(start)
    last, _ = purger(
        "scan", str(listing), *RAW_TEMPLATES, "--via", node, "--rate", "inf",
        "--out", str(work / "left.txt"), "--json",
    )  # fmt: skip
    return {
        "names": count,
        "planted": len(planted),
        "scan_found_exactly_the_planted": found == planted,
        "scan_exit": scanned.returncode,
        "scan_seconds": round(scan_wall, 1),
        "small_run_exit": ran.returncode,
        "small_run_seconds": round(small_wall, 1),
        "origin_fetches_scan_and_purge_bad": small,
        "full_run_exit": everything.returncode,
        "full_run_seconds": round(all_wall, 1),
        "origin_fetches_purge_all": full,
        "ratio": round(small / full, 4) if full else None,
        "loops_left": json.loads(last.stdout)["by_class"].get("redirect_loop", 0),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", type=int, default=20_000)
    parser.add_argument("--planted", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument(
        "--throughput-only", action="store_true", help="skip the blast radius (minutes)"
    )
    args = parser.parse_args(argv)
    with run_cluster() as cluster, tempfile.TemporaryDirectory() as made:
        work = Path(made)
        speed = throughput(cluster, work, args.names, args.concurrency)
        radius = (
            {} if args.throughput_only else blast_radius(cluster, work, args.names, args.planted)
        )
    document = {
        "varnish": varnish_version(),
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "throughput": speed,
        "blast_radius": radius,
    }
    for section in ("throughput", "blast_radius"):
        print(section)
        for key, value in document[section].items():  # type: ignore[attr-defined]
            print(f"  {key:<36} {value}")
    print(f"load average {document['load_average']}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scan_bench.json").write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
