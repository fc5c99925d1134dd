"""The public API (``purger.__all__``, docs/api.md): from names to a finished purge and its
state read back, importing nothing but ``purger``, against the simulated CDN."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

import pytest

import purger
from purger import (
    NamesSource,
    PlanSettings,
    ProviderOptions,
    RunStatus,
    SimConfig,
    SimulatedCDN,
    UsageError,
    build_name_set,
    estimate_purge,
    make_plan,
    purge,
    read_records,
    read_state,
    run_in_virtual_time,
)

DOC = Path(__file__).parents[1] / "docs" / "api.md"
NAMES = [f"Project_{i}" for i in range(120)]


def names_file(tmp_path: Path, names: list[str] = NAMES) -> Path:
    path = tmp_path / "names.txt"
    path.write_text("\n".join(names) + "\n")
    return path


def load(path: Path):
    source = NamesSource(path=str(path))
    return build_name_set(read_records(source), where=source.where)


def test_the_documented_example_purges_every_name_and_reads_the_state_back(tmp_path, capsys):
    """docs/api.md's example, run as written: it estimates, purges every name once and
    the state it reads back says so."""
    [block] = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    namespace: dict[str, object] = {}
    exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - our own doc's example
    state = tmp_path / "run.sqlite"
    document = namespace["purge_offline"](names_file(tmp_path), state)  # type: ignore[operator]
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("estimate: ")
    assert printed[1] == f"done: {len(NAMES)} targets"
    assert document["targets_done"] == len(NAMES)
    assert document["failures"] == 0
    assert document["shards_done"] == document["shards_total"]
    assert document["run"]["key_templates"] == ["project/{name}"]  # type: ignore[index]


def test_a_purge_reaches_the_cdn_once_per_target_and_resumes_as_done(tmp_path):
    """Every target is sent to the CDN (its own count); a resume of the finished run finds
    nothing left and sends nothing more."""
    names = load(names_file(tmp_path))
    plan = make_plan(names, PlanSettings(workers=3))
    provider = ProviderOptions(name="varnish", endpoints=("http://cdn.sim",), hard=True)
    cdn = SimulatedCDN(names, SimConfig(seed=2))
    state = tmp_path / "run.sqlite"

    async def run(resume: bool):
        result = await purge(
            plan,
            names,
            provider=provider,
            state=state,
            keys=["project/{name}"],
            rate=50,
            concurrency=2,
            resume=resume,
            transport=cdn,
        )
        await asyncio.sleep(2 * SimConfig().step)  # the CDN counts a step once it is over
        return result, sum(step.purged_targets for step in cdn.history)

    first, received = run_in_virtual_time(run, False)
    assert first.status is RunStatus.DONE
    assert first.outcome.statistics.targets == len(NAMES)
    assert received == len(NAMES)
    again, received_in_all = run_in_virtual_time(run, True)
    assert again.status is RunStatus.DONE
    assert again.outcome.statistics.targets == 0
    assert received_in_all == len(NAMES)
    assert read_state(state)["targets_done"] == len(NAMES)


def test_names_that_are_not_the_plans_are_refused_before_anything_is_created(tmp_path):
    """The plan's fingerprint is checked first: no state file, nothing sent."""
    plan = make_plan(load(names_file(tmp_path)), PlanSettings(workers=3))
    other = load(names_file(tmp_path, ["something-else"]))
    cdn = SimulatedCDN(other, SimConfig())
    state = tmp_path / "run.sqlite"

    async def run():
        await purge(
            plan,
            other,
            provider=ProviderOptions(name="varnish", endpoints=("http://cdn.sim",)),
            state=state,
            keys=["project/{name}"],
            transport=cdn,
        )

    with pytest.raises(UsageError, match="are not the ones plan"):
        run_in_virtual_time(run)
    assert not state.exists()
    assert sum(step.purged_targets for step in cdn.history) == 0


def test_an_estimate_needs_no_credentials_and_sends_nothing(tmp_path):
    """A Fastly estimate without FASTLY_API_TOKEN: the figures, no network."""
    names = load(names_file(tmp_path))
    plan = make_plan(names, PlanSettings(workers=3))

    async def estimate():
        provider = ProviderOptions(name="fastly", service_id="svc")
        return await estimate_purge(plan, names, provider=provider, keys=["project/{name}"])

    forecast = run_in_virtual_time(estimate)
    assert forecast.workload.total_targets == len(NAMES)
    assert forecast.estimate.duration_s > 0


def test_all_is_sorted_and_every_name_exists():
    """``__all__`` is sorted, has no duplicates, and every entry is importable."""
    assert list(purger.__all__) == sorted(set(purger.__all__))
    for name in purger.__all__:
        assert hasattr(purger, name), name


def test_outside_the_main_thread_a_purge_runs_when_the_caller_keeps_the_signals(tmp_path):
    """A worker thread (a Celery task's) cannot receive signals: with stop_on_signals
    False the purge runs there; by default it needs the main thread."""
    names = load(names_file(tmp_path))
    plan = make_plan(names, PlanSettings(workers=3))
    provider = ProviderOptions(name="varnish", endpoints=("http://cdn.sim",))
    outcomes: dict[bool, object] = {}

    def in_a_thread(stop_on_signals: bool) -> None:
        async def run():
            return await purge(
                plan,
                names,
                provider=provider,
                state=tmp_path / f"run-{stop_on_signals}.sqlite",
                keys=["project/{name}"],
                transport=SimulatedCDN(names, SimConfig()),
                stop_on_signals=stop_on_signals,
            )

        try:
            outcomes[stop_on_signals] = run_in_virtual_time(run).status
        except Exception as error:
            outcomes[stop_on_signals] = error

    for stop_on_signals in (False, True):
        thread = threading.Thread(target=in_a_thread, args=(stop_on_signals,))
        thread.start()
        thread.join()
    assert outcomes[False] is RunStatus.DONE
    assert "main thread" in str(outcomes[True]), outcomes[True]
