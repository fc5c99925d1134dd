"""Backpressure figures: the real engine and controller against the simulated origin, in
virtual time, with fixed seeds. Prints a table, writes JSON and a PNG of the allowed rate,
the pressure and the origin's p99 over time.

    python bench/control_bench.py [--pypi ../shared/data/pypi-projects.tsv.gz] [--out bench/results]

Scenarios:
- steady: 400,000 names of equal traffic; convergence to the best sustainable rate and
  changes of direction per 10 feedback delays;
- drop: capacity 1000 -> 700 at 500 s -> 1000 at 1100 s;
- pypi: every PyPI name with zipf-rank traffic (the bundled sample without --pypi): share
  of ticks with p99 over its limit, and the longest stretch over the critical limit.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path

from purger.health.control import ControlSettings
from purger.health.signals import SignalSpec
from purger.names.nameset import NameSet, Normalization, WeightSpec, WeightTransform, build_name_set
from purger.names.sources import NamesSource, read_records
from purger.planning.plan import PlanSettings, make_plan
from purger.sim.cdn import SimConfig, SimulatedCDN
from purger.sim.purge import SimulationResult, origin_signals, simulate_purge

P99_LIMIT, P99_CRITICAL = 0.5, 2.0
CONTROL = ControlSettings(initial_rate=100, feedback_delay=45, tick=5)
D = CONTROL.feedback_delay


def uniform(count: int) -> NameSet:
    return build_name_set(
        [(f"n{i:06d}", None, i) for i in range(count)],
        where="uniform",
        normalization=Normalization.NONE,
    )


def zipf(source: NamesSource) -> NameSet:
    spec = WeightSpec(column="download_rank", transform=WeightTransform.ZIPF_RANK)
    return build_name_set(read_records(source), where=source.path, weight=spec)


def signals(config: SimConfig) -> tuple[SignalSpec, ...]:
    return origin_signals(config, p99_limit=P99_LIMIT, p99_critical=P99_CRITICAL)


def run(names: NameSet, config: SimConfig, workers: int) -> tuple[SimulationResult, float]:
    plan = make_plan(names, PlanSettings(workers=workers))
    started = time.perf_counter()
    result = simulate_purge(
        plan=plan, name_set=names, config=config, control=CONTROL, signals=signals(config)
    )
    return result, time.perf_counter() - started


def figures(
    name: str, names: NameSet, config: SimConfig, result: SimulationResult, wall: float
) -> dict[str, object]:
    history = result.history
    step = history[1].time - history[0].time
    end = result.outcome.statistics.elapsed
    over = sum(s.p99 > P99_LIMIT for s in history) / len(history)
    longest = (
        max(
            (
                len(list(g))
                for above, g in itertools.groupby(s.p99 > P99_CRITICAL for s in history)
                if above
            ),
            default=0,
        )
        * step
    )
    window = [s for s in history if 5 * D <= s.time < end - D]
    achieved = sum(s.purged_targets for s in window) / max(1e-9, len(window) * step)
    rates = [rate for at, rate, _ in result.rates if at >= 5 * D]
    moves = [math.copysign(1, b - a) for a, b in itertools.pairwise(rates) if b != a]
    reversals = sum(1 for a, b in itertools.pairwise(moves) if a != b)
    row: dict[str, object] = {
        "scenario": name,
        "names": len(names.names),
        "virtual_s": round(end),
        "wall_s": round(wall, 1),
        "p99_over_limit_share": round(over, 4),
        "longest_over_critical_s": longest,
        "feedback_delay_s": D,
        "achieved_rate_after_5D": round(achieved, 1),
        "reversals_per_10D": round(reversals / max(1e-9, (end - 5 * D) / (10 * D)), 2),
    }
    if name == "steady":
        row["best_sustainable_rate"] = round(
            SimulatedCDN(names, config).sustainable_purge_rate(P99_LIMIT), 1
        )
    return row


def plot(results: dict[str, SimulationResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        3, len(results), figsize=(6 * len(results), 8), sharex="col", squeeze=False
    )
    for column, (name, result) in enumerate(results.items()):
        rate_ax, pressure_ax, p99_ax = axes[0][column], axes[1][column], axes[2][column]
        step = result.history[1].time - result.history[0].time
        times = [at for at, _, _ in result.rates]
        rate_ax.step(
            times, [rate for _, rate, _ in result.rates], where="post", label="allowed rate"
        )
        # Batches land whole in one step: a 10-step moving mean shows the purge rate.
        counts = [s.purged_targets / step for s in result.history]
        smooth = [
            sum(counts[max(0, i - 9) : i + 1]) / len(counts[max(0, i - 9) : i + 1])
            for i in range(len(counts))
        ]
        rate_ax.plot(
            [s.time for s in result.history], smooth, alpha=0.5, label="purged/s (10 s mean)"
        )
        paused = [at for at, _, held in result.rates if held]
        if paused:
            rate_ax.scatter(paused, [0] * len(paused), marker="|", color="red", label="paused")
        rate_ax.set_title(name)
        rate_ax.set_ylabel("targets/s")
        rate_ax.legend(loc="upper right")
        pressures = [(at, d.pressure) for at, d in result.decisions if d.pressure is not None]
        pressure_ax.plot(
            [s.time for s in result.history],
            [s.p99 / P99_LIMIT for s in result.history],
            label="true p99 / limit",
        )
        pressure_ax.scatter(
            [t for t, _ in pressures],
            [p for _, p in pressures],
            s=8,
            color="black",
            label="pressure at decisions",
        )
        pressure_ax.axhline(1.0, color="orange", linestyle="--")
        pressure_ax.set_ylim(0, 4)
        pressure_ax.set_ylabel("pressure")
        pressure_ax.legend(loc="upper right")
        p99_ax.plot([s.time for s in result.history], [s.p99 for s in result.history])
        p99_ax.axhline(P99_LIMIT, color="orange", linestyle="--", label="limit")
        p99_ax.axhline(P99_CRITICAL, color="red", linestyle="--", label="critical")
        p99_ax.set_yscale("log")
        p99_ax.set_ylabel("origin p99 (s)")
        p99_ax.set_xlabel("virtual time (s)")
        p99_ax.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pypi", type=Path, help="pypi-projects.tsv.gz (default: the bundled sample)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    source = (
        NamesSource(path=str(args.pypi), weight_column="download_rank")
        if args.pypi
        else NamesSource.sample(weight_column="download_rank")
    )
    scenarios = {
        "steady": (uniform(400_000), SimConfig(seed=1, request_rate=60_000.0), 4),
        "drop": (
            uniform(300_000),
            SimConfig(
                seed=2, request_rate=60_000.0, capacity_changes=((500.0, 700.0), (1100.0, 1000.0))
            ),
            4,
        ),
        "pypi": (zipf(source), SimConfig(seed=7, request_rate=20_000.0), 16),
    }
    rows, results = [], {}
    for name, (names, config, workers) in scenarios.items():
        result, wall = run(names, config, workers)
        results[name] = result
        rows.append(figures(name, names, config, result, wall))

    for row in rows:
        print()
        for column, value in row.items():
            print(f"  {column:<26}{value}")
    (args.out / "control_bench.json").write_text(json.dumps(rows, indent=1) + "\n")
    plot(results, args.out / "control_bench.png")
    print(f"\nwrote {args.out / 'control_bench.json'} and {args.out / 'control_bench.png'}")


if __name__ == "__main__":
    main()
