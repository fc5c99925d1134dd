"""The estimate against a real purge: Varnish with xkey in front of the bench origin, on
loopback. For each case, ``purger estimate``'s closed form beside the measured duration of
the same purge run by the real engine (in process, wall clock), side by side.

    python bench/estimate_bench.py [--names 20000] [--json bench/results/estimate_bench.json]

Cases: surrogate keys bound by the configured pace, URL purges bound by the configured pace.
The goal for rate-bound purges is an estimate within 10 % of the measured duration.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import find_missing, install_hint, run_cluster
from purger.engine.run import RunSettings
from purger.launch.build import PaceOptions
from purger.launch.execute import execute_run
from purger.launch.forecast import forecast
from purger.names.nameset import Normalization, build_name_set
from purger.pacing.pacer import AnyioClock
from purger.planning.plan import PlanSettings, make_plan
from purger.planning.targets import parse_templates
from purger.providers import ProviderOptions, create_provider
from purger.state.stores import StateRef


def measure(case: dict[str, object], count: int, varnish_url: str) -> dict[str, object]:
    names = build_name_set(
        [(f"bench-{case['name']}-{i:06d}", None, i) for i in range(count)],
        where="bench",
        normalization=Normalization.NONE,
    )
    plan = make_plan(names, PlanSettings(workers=8))
    keys = [str(case["key_template"])] if case.get("key_template") else []
    urls = [str(case["url_template"])] if case.get("url_template") else []
    templates = parse_templates(keys, urls)
    options = ProviderOptions(name="varnish", endpoints=(varnish_url,))
    pace = PaceOptions(rate=float(case["rate"]), concurrency=8)  # type: ignore[arg-type]

    async def run() -> tuple[float, float, str]:
        async with httpx.AsyncClient() as client:
            provider = create_provider(options, client, os.environ)
            predicted = forecast(plan, names, templates, provider, pace, workers=8).estimate
        with tempfile.TemporaryDirectory() as directory:
            started = time.perf_counter()
            outcome, _ = await execute_run(
                plan=plan,
                name_set=names,
                templates=templates,
                options=options,
                env=os.environ,
                pace=pace,
                settings=RunSettings(workers=8),
                state=StateRef(spec=str(Path(directory) / "state.sqlite")),
                resume=False,
                clock=AnyioClock(),
            )
            measured = time.perf_counter() - started
        assert outcome.statistics.targets == count * len(templates)  # noqa: S101
        return predicted.duration_s, measured, predicted.bottleneck

    predicted, measured, bottleneck = anyio.run(run)
    return {
        "case": case["name"],
        "targets": count * len(templates),
        "estimate_s": round(predicted, 2),
        "measured_s": round(measured, 2),
        "error": round((predicted - measured) / measured, 4),
        "bottleneck": bottleneck,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=20_000)
    parser.add_argument("--json", type=Path, default=Path("bench/results/estimate_bench.json"))
    args = parser.parse_args()
    missing = find_missing(prometheus=False)
    if missing:
        sys.exit(install_hint(missing))
    cases: list[dict[str, object]] = [
        {"name": "keys", "key_template": "project/{name}", "rate": 2000.0},
        {"name": "urls", "url_template": "http://pypi.bench/pypi/{name}/json", "rate": 500.0},
    ]
    rows = []
    with run_cluster() as cluster:
        for case in cases:
            count = args.names if case["name"] == "keys" else max(1, args.names // 4)
            rows.append(measure(case, count, cluster.varnish.url))
    print(f"{'case':<8}{'targets':>10}{'estimate s':>12}{'measured s':>12}{'error':>9}  bottleneck")
    for row in rows:
        print(
            f"{row['case']:<8}{row['targets']:>10,}{row['estimate_s']:>12.2f}"
            f"{row['measured_s']:>12.2f}{row['error']:>9.1%}  {row['bottleneck']}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1) + "\n")
    worst = max(abs(float(row["error"])) for row in rows)  # type: ignore[arg-type]
    print(f"worst error {worst:.1%} (goal for rate-bound purges: 10 %)")
    if not math.isfinite(worst):
        sys.exit(1)


if __name__ == "__main__":
    main()
