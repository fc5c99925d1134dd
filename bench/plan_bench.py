"""Planning the PyPI list: wall time and peak memory, side by side with a floor.

The floor is plain Python doing the least a planner must: read the gzip TSV, normalize
each name (PEP 503), dedupe (a set) and sort. A second, tighter floor skips the dedupe and
sorts the list as read, which is nearly free here because the PyPI list is already sorted.
purger is measured doing all of planning: reading with line-aware errors, validating,
weighing, merging, cutting, fingerprinting and building the plan document. Each variant
runs in its own process (so peak RSS is its own), alternating, several times; the table
shows medians.

    python bench/plan_bench.py ../shared/data/pypi-projects.tsv.gz [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("floor", "floor-no-dedupe", "purger-count", "purger-zipf")


def run_variant(variant: str, path: Path) -> dict[str, float]:
    """Run in the child process: do the work once, return wall seconds and peak RSS."""
    import resource

    started = time.perf_counter()
    if variant.startswith("floor"):
        import gzip
        import re

        separators = re.compile(r"[-_.]+")
        with gzip.open(path, "rt", encoding="utf-8") as f:
            next(f)
            if variant == "floor":
                names = sorted({separators.sub("-", line.split("\t", 1)[0]).lower() for line in f})
            else:  # the list is already unique and sorted, which this floor profits from
                names = [separators.sub("-", line.split("\t", 1)[0]).lower() for line in f]
                names.sort()
        count = len(names)
    else:
        from purger import (
            NamesSource,
            PlanSettings,
            WeightSpec,
            WeightTransform,
            build_name_set,
            make_plan,
            plan_to_json,
            read_records,
        )

        if variant == "purger-zipf":
            weight = WeightSpec(column="download_rank", transform=WeightTransform.ZIPF_RANK)
            settings = PlanSettings(workers=16)
        else:
            weight = WeightSpec()
            settings = PlanSettings(workers=16, shards=64)
        source = NamesSource(path=str(path), weight_column=weight.column)
        name_set = build_name_set(read_records(source), where=str(path), weight=weight)
        document = plan_to_json(make_plan(name_set, settings, source=str(path)))
        count = document["total_count"]
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"wall_s": wall, "peak_rss_mb": peak_kib / 1024, "names": count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("projects", type=Path, help="pypi-projects.tsv.gz")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_variant(args.child, args.projects)))
        return

    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for _ in range(args.repeats):
        for variant in VARIANTS:  # alternate, so machine noise hits every variant alike
            out = subprocess.run(
                [sys.executable, __file__, str(args.projects), "--child", variant],
                check=True,
                capture_output=True,
                text=True,
                timeout=300,
            )
            runs[variant].append(json.loads(out.stdout))

    floor_wall = statistics.median(r["wall_s"] for r in runs["floor"])
    tight_wall = statistics.median(r["wall_s"] for r in runs["floor-no-dedupe"])
    rows = []
    for variant in VARIANTS:
        wall = statistics.median(r["wall_s"] for r in runs[variant])
        rss = max(r["peak_rss_mb"] for r in runs[variant])
        rows.append(
            {
                "variant": variant,
                "names": int(runs[variant][0]["names"]),
                "wall_s_median": round(wall, 3),
                "wall_s_min": round(min(r["wall_s"] for r in runs[variant]), 3),
                "x_floor": round(wall / floor_wall, 3),
                "x_floor_no_dedupe": round(wall / tight_wall, 3),
                "peak_rss_mb": round(rss, 1),
            }
        )
    print(
        f"{'variant':<17}{'names':>10}{'wall s (med)':>14}{'min':>8}{'x floor':>9}"
        f"{'x no-dedupe':>13}{'peak RSS MB':>13}"
    )
    for row in rows:
        print(
            f"{row['variant']:<17}{row['names']:>10,}{row['wall_s_median']:>14.3f}"
            f"{row['wall_s_min']:>8.3f}{row['x_floor']:>9.2f}{row['x_floor_no_dedupe']:>13.2f}"
            f"{row['peak_rss_mb']:>13.1f}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"repeats": args.repeats, "results": rows}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
