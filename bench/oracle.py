"""The governed run beside the best safe fixed rate found in hindsight, on the simulation.

    python bench/oracle.py [--only demo,steady] [--out bench/results] [--png docs/img/oracle.png]

For each scenario: a sweep of fixed-rate runs finds the fastest ``--rate`` whose true origin
p99 (the simulated origin's own, per second) stayed under its limit in >= 95 % of seconds;
then the same purge paced by health (the p99 gauge and error share scraped from the origin's
``/metrics``, as an operator would set them) is run once. Virtual time: exact, and cheap.
Goal (issue 15): governed duration <= 1.25 x the best safe rate's, p99 under its limit in
>= 95 % of seconds, never over critical longer than one feedback delay.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from purger.health.control import ControlSettings
from purger.names.nameset import NameSet, Normalization, WeightSpec, WeightTransform, build_name_set
from purger.names.sources import NamesSource, read_records
from purger.planning.plan import PlanSettings, make_plan
from purger.sim import demo
from purger.sim.cdn import SimConfig
from purger.sim.oracle import Limits, Verdict, best_safe_rate, judge
from purger.sim.purge import SimulationResult, origin_signals, simulate_purge

LIMITS = Limits(p99_limit=0.5, p99_critical=2.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    what: str
    names: Callable[[], NameSet]
    config: SimConfig
    control: ControlSettings
    hard: bool = True
    workers: int = 16
    #: Where the sweep starts, targets/s.
    start: float = 200.0


def uniform(count: int) -> Callable[[], NameSet]:
    def build() -> NameSet:
        records = [(f"n{i:06d}", None, i) for i in range(count)]
        return build_name_set(records, where="uniform", normalization=Normalization.NONE)

    return build


def pypi_sample() -> NameSet:
    spec = WeightSpec(column="download_rank", transform=WeightTransform.ZIPF_RANK)
    source = NamesSource.sample(weight_column="download_rank")
    return build_name_set(read_records(source), where=source.path, weight=spec)


SCENARIOS: dict[str, Scenario] = {
    "demo": Scenario(
        what="purger demo: 102k PyPI names (zipf), capacity 1000 -> 600 at 200 s, tick 5, D 30",
        names=pypi_sample,
        config=demo.config(1),
        control=demo.CONTROL,
    ),
    "steady": Scenario(
        what="200k names of equal traffic, capacity 1000, tick 5, D 45",
        names=uniform(200_000),
        config=SimConfig(seed=2, request_rate=60_000.0),
        control=ControlSettings(initial_rate=100, feedback_delay=45, tick=5),
        workers=4,
    ),
    "soft-origin": Scenario(
        what="102k PyPI names, soft purge, capacity 500, traffic 30k/s, lag 8 s, tick 2, D 20",
        names=pypi_sample,
        config=SimConfig(
            seed=3, request_rate=30_000.0, capacity=500.0, baseline_load=250.0, metrics_lag=8.0
        ),
        control=ControlSettings(initial_rate=100, feedback_delay=20, tick=2),
        hard=False,
        start=500.0,
    ),
    "slow-feedback": Scenario(
        what="100k names of equal traffic, capacity 500, lag 30 s, tick 10, D 60",
        names=uniform(100_000),
        config=SimConfig(
            seed=4, request_rate=20_000.0, capacity=500.0, baseline_load=100.0, metrics_lag=30.0
        ),
        control=ControlSettings(initial_rate=50, feedback_delay=60, tick=10),
        workers=4,
        start=100.0,
    ),
    "drop-recover": Scenario(
        what="250k names of equal traffic, capacity 1000 -> 700 at 300 s -> 1000 at 700 s",
        names=uniform(250_000),
        config=SimConfig(
            seed=5, request_rate=60_000.0, capacity_changes=((300.0, 700.0), (700.0, 1000.0))
        ),
        control=ControlSettings(initial_rate=100, feedback_delay=45, tick=5),
        workers=4,
    ),
}


@dataclass(slots=True)
class Runs:
    """Every run of one scenario, by fixed rate, and the governed one."""

    fixed: dict[float, SimulationResult] = field(default_factory=dict)
    governed: SimulationResult | None = None


def runner(
    scenario: Scenario, names: NameSet, runs: Runs
) -> tuple[Callable[[float], Verdict], Callable[[], Verdict]]:
    """Fixed-rate runs and the governed run of one scenario, kept in ``runs``."""
    plan = make_plan(names, PlanSettings(workers=scenario.workers))
    signals = origin_signals(
        scenario.config, p99_limit=LIMITS.p99_limit, p99_critical=LIMITS.p99_critical
    )

    def fixed(rate: float) -> Verdict:
        result = simulate_purge(
            plan=plan,
            name_set=names,
            config=scenario.config,
            control=None,
            rate=rate,
            hard=scenario.hard,
        )
        runs.fixed[rate] = result
        return judge(result, LIMITS)

    def governed() -> Verdict:
        result = simulate_purge(
            plan=plan,
            name_set=names,
            config=scenario.config,
            control=scenario.control,
            signals=signals,
            hard=scenario.hard,
        )
        runs.governed = result
        return judge(result, LIMITS)

    return fixed, governed


def measure(
    name: str, scenario: Scenario
) -> tuple[dict[str, Any], SimulationResult, SimulationResult]:
    """The row of one scenario, the best safe fixed-rate run and the governed run."""
    started = time.perf_counter()
    runs = Runs()
    fixed, governed = runner(scenario, scenario.names(), runs)
    sweep = best_safe_rate(fixed, start=scenario.start)
    run = governed()
    assert runs.governed is not None  # noqa: S101 - governed() just set it
    ratio = run.seconds / sweep.verdict.seconds
    row = {
        "scenario": name,
        "what": scenario.what,
        "best_safe_rate": round(sweep.rate, 1),
        "best_safe_s": round(sweep.verdict.seconds, 1),
        "best_safe_under": round(sweep.verdict.under_share, 4),
        "governed_s": round(run.seconds, 1),
        "ratio": round(ratio, 3),
        "governed_under": round(run.under_share, 4),
        "over_critical_s": run.longest_over_critical,
        "feedback_delay_s": scenario.control.feedback_delay,
        "peak_p99_s": round(run.peak_p99, 2),
        "goal_met": ratio <= 1.25
        and run.under_share >= 0.95
        and run.longest_over_critical <= scenario.control.feedback_delay,
        "tried": [(round(r, 1), round(v.under_share, 3)) for r, v in sweep.tried],
        "wall_s": round(time.perf_counter() - started, 1),
    }
    return row, runs.fixed[sweep.rate], runs.governed


def _purged_per_second(result: SimulationResult) -> tuple[list[float], list[float]]:
    """Batches land whole in one step: a 10 s moving mean shows the purge rate."""
    history = result.history
    counts = [s.purged_targets for s in history]
    smooth = [
        sum(counts[max(0, i - 9) : i + 1]) / len(counts[max(0, i - 9) : i + 1])
        for i in range(len(counts))
    ]
    return [s.time for s in history], smooth


def plot(pictures: dict[str, tuple[SimulationResult, SimulationResult]], path: Path) -> None:
    """Per scenario: purged/s and the true origin p99, best safe fixed rate vs governed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        2, len(pictures), figsize=(5.5 * len(pictures), 6), sharex="col", squeeze=False
    )
    for column, (name, (best, governed)) in enumerate(pictures.items()):
        rate_ax, p99_ax = axes[0][column], axes[1][column]
        for label, result, style in (
            ("best safe fixed rate", best, "--"),
            ("governed", governed, "-"),
        ):
            times, purged = _purged_per_second(result)
            rate_ax.plot(times, purged, style, label=label)
            p99_ax.plot(
                [s.time for s in result.history],
                [s.p99 for s in result.history],
                style,
                label=label,
            )
        rate_ax.set_title(name)
        rate_ax.set_ylabel("purged/s (10 s mean)")
        rate_ax.legend(loc="upper right")
        p99_ax.axhline(LIMITS.p99_limit, color="orange", linestyle=":", label="limit")
        p99_ax.axhline(LIMITS.p99_critical, color="red", linestyle=":", label="critical")
        p99_ax.set_yscale("log")
        p99_ax.set_ylabel("true origin p99 (s)")
        p99_ax.set_xlabel("virtual time (s)")
        p99_ax.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=80)


def table(rows: list[dict[str, Any]]) -> str:
    head = [
        "| scenario | best safe rate | its duration | governed | ratio | p99 under limit "
        "| longest over critical (D) | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    return "\n".join(head + [_line(row) for row in rows])


def _line(row: dict[str, Any]) -> str:
    return (
        f"| {row['scenario']} | {row['best_safe_rate']:g}/s | {row['best_safe_s']:g} s "
        f"| {row['governed_s']:g} s | {row['ratio']:.2f} | {row['governed_under']:.1%} "
        f"| {row['over_critical_s']:g} s ({row['feedback_delay_s']:g} s) "
        f"| {'met' if row['goal_met'] else 'MISSED'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated scenario names")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--png", type=Path, help="draw the runs here (needs matplotlib)")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    rows, pictures = [], {}
    for name in chosen:
        row, best, governed = measure(name, SCENARIOS[name])
        print(json.dumps(row), flush=True)
        rows.append(row)
        pictures[name] = (best, governed)
    print(table(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "oracle.json").write_text(json.dumps(rows, indent=1) + "\n")
    if args.png is not None:
        plot(pictures, args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
