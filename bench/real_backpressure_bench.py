"""Backpressure on real parts, side by side: a hard purge of warm names through Varnish while
Zipf client traffic refills the cache from an origin made small, once without health
signals and once paced by the origin's p99 and fetch rate read from a real Prometheus;
then the estimate of the governed run (the controller followed on the refill model)
beside the governed run, and the best pace that keeps the origin within its spare capacity.

    python -m bench.real_backpressure_bench [--names 10000] [--traffic 300] \
        [--feedback-delay 15] [--p99-only]

The scenario is ``bench/backpressure.py`` (the e2e test's, bigger). The origin's spare
capacity given to ``purger estimate --origin-capacity`` is measured in the same run: 80 %
(the controller's headroom) of what the origin served while saturated by the ungoverned
purge. Prints a table, writes JSON and a PNG (p99 and origin fetches over time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.backpressure import Outcome, Scenario, fetch_signal, prepare, purge_under_traffic
from bench.cluster import find_missing, install_hint, run_cluster

HEADROOM = 0.8
GOVERNED = ["--tick", "1", "--initial-rate", "100", "--min-rate", "5"]


def saturated_fetch_rate(outcome: Outcome, limit: float) -> float:
    """Origin fetches/s while its p99 was over the limit (it served all it could)."""
    busy = [s.fetches for s in outcome.samples if s.p99 > limit]
    return statistics.median(busy) if busy else float("nan")


def estimate(
    names: Path, scenario: Scenario, capacity: float, control: list[str]
) -> dict[str, Any]:
    """``purger estimate --json`` of the governed run: same rate, same controller flags."""
    command = [
        sys.executable, "-m", "purger", "estimate", str(names), "--weight-column", "traffic",
        "--provider", "varnish", "--key-template", "project/{name}", "--hard", "--rate", "2000",
        "--origin-capacity", f"{capacity:.1f}", "--traffic", str(scenario.traffic), "--json",
        *control,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def best_pace_seconds(document: dict[str, Any]) -> float:
    """The estimate's best pace within the origin's capacity (the controller aside)."""
    bounds: dict[str, float] = document["bounds"]
    return next(seconds for name, seconds in bounds.items() if name.startswith("origin capacity"))


def rate_history(state: Path) -> list[dict[str, Any]]:
    """The governed run's allowed and achieved rate over time, from its state file."""
    command = [sys.executable, "-m", "purger", "status", "--state", str(state), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    history: list[dict[str, Any]] = json.loads(done.stdout)["rate_history"]
    return history


def row(name: str, outcome: Outcome, scenario: Scenario) -> dict[str, object]:
    over = [s for s in outcome.samples if s.p99 > scenario.limit]
    return {
        "run": name,
        "exit": outcome.exit_code,
        "seconds": round(outcome.seconds, 1),
        "targets_per_s": round(scenario.names / outcome.seconds, 1),
        "samples": len(outcome.samples),
        "p99_under_limit_share": round(outcome.share_under(scenario.limit), 3),
        "seconds_over_limit": len(over),
        "p99_max_s": round(max((s.p99 for s in outcome.samples), default=0.0), 3),
        "fetches_max_per_s": round(max((s.fetches for s in outcome.samples), default=0.0), 1),
        "decisions": outcome.decisions,
    }


def plot(runs: dict[str, Outcome], scenario: Scenario, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for name, outcome in runs.items():
        at = [s.at for s in outcome.samples]
        top.plot(at, [s.p99 for s in outcome.samples], label=name)
        bottom.plot(at, [s.fetches for s in outcome.samples], label=name)
        for axis in (top, bottom):
            axis.axvline(outcome.seconds, linestyle=":", color=top.lines[-1].get_color())
    top.axhline(scenario.limit, color="red", linestyle="--", label="p99 limit")
    top.set_ylabel("origin p99 (s)")
    bottom.axhline(scenario.origin_capacity, color="grey", linestyle="--", label="capacity")
    bottom.set_ylabel("origin fetches/s")
    bottom.set_xlabel("seconds since the purge started (dotted: purge done)")
    top.legend()
    bottom.legend()
    top.set_title(
        f"hard purge of {scenario.names:,} warm names, clients {scenario.traffic:g} GETs/s, "
        f"origin {scenario.slots} x {scenario.service_time * 1000:g} ms"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=10_000)
    parser.add_argument("--traffic", type=float, default=300.0)
    parser.add_argument("--feedback-delay", type=float, default=15.0)
    parser.add_argument(
        "--p99-only",
        action="store_true",
        help="the governed run reads the origin's p99 alone, not also its fetch rate (limit: "
        "the spare capacity) as it does by default",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--png", type=Path, default=Path("docs/img/real_backpressure_bench.png"))
    args = parser.parse_args()
    missing = find_missing(prometheus=True, wrk=True)
    if missing:
        sys.exit(install_hint(missing))
    scenario = Scenario(names=args.names, traffic=args.traffic, slots=1, service_time=0.01)
    runs: dict[str, Outcome] = {}
    with run_cluster(prometheus=True) as cluster, tempfile.TemporaryDirectory() as tmp:
        if cluster.prometheus is None:
            raise RuntimeError("the bench needs Prometheus")
        names = scenario.write_names(Path(tmp) / "names.tsv")
        signal = ["--signal", scenario.signal(cluster.prometheus.url)]
        delay = ["--feedback-delay", str(args.feedback_delay)]
        prepare(cluster, scenario)
        runs["ungoverned"] = purge_under_traffic(
            cluster, scenario, names, Path(tmp) / "ungoverned.sqlite", flags=["--rate", "2000"],
            tail=15.0,
        )  # fmt: skip
        capacity = HEADROOM * saturated_fetch_rate(runs["ungoverned"], scenario.limit)
        if not args.p99_only:
            signal += ["--signal", fetch_signal(cluster.prometheus.url, capacity)]
        prepare(cluster, scenario)
        runs["governed"] = purge_under_traffic(
            cluster, scenario, names, Path(tmp) / "governed.sqlite",
            flags=["--rate", "2000", *GOVERNED, *delay, *signal], tail=15.0,
        )  # fmt: skip
        history = rate_history(Path(tmp) / "governed.sqlite")
        for name, outcome in runs.items():
            print(f"{name}: {outcome.seconds:.1f} s, exit {outcome.exit_code}", flush=True)
        predicted = estimate(names, scenario, capacity, [*GOVERNED, *delay])
    rows = [row(name, outcome, scenario) for name, outcome in runs.items()]
    measured = runs["governed"].seconds
    predicted_s = float(predicted["duration_s"])
    best_s = best_pace_seconds(predicted)
    comparison = {
        "origin_spare_capacity_per_s": round(capacity, 1),
        "estimate_s": round(predicted_s, 1),
        "estimate_bottleneck": predicted["bottleneck"],
        "governed_s": round(measured, 1),
        "error": round(predicted_s / measured - 1, 3),
        "best_pace_s": round(best_s, 1),
        "achieved_share_of_best_sustainable_rate": round(best_s / measured, 3),
    }
    print(f"{'run':<11} {'seconds':>8} {'targets/s':>10} {'p99<=limit':>11} {'s over':>7}")
    for r in rows:
        print(
            f"{r['run']:<11} {r['seconds']:>8} {r['targets_per_s']:>10} "
            f"{r['p99_under_limit_share']:>11.1%} {r['seconds_over_limit']:>7}"
        )
    print(json.dumps(comparison, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    document = {
        "scenario": repr(scenario),
        "feedback_delay_s": args.feedback_delay,
        "fetch_signal": not args.p99_only,
        "runs": rows,
        "governed_rate_history": history,
        "estimate": comparison,
    }
    (args.out / "real_backpressure_bench.json").write_text(json.dumps(document, indent=1) + "\n")
    plot(runs, scenario, args.png)


if __name__ == "__main__":
    main()
