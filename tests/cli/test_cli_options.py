"""Options as values: each option group is declared once, built once into a frozen value,
and shared by the commands that take it."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from purger.cli import app
from purger.cli._names_options import NamesOptions, PlanNames, Targets
from purger.cli._options import with_options
from purger.cli._run_options import Health, PaceOptions, StateOptions
from purger.names.nameset import Normalization, WeightSpec, WeightTransform

WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}


def _capture(**groups: type) -> tuple[typer.Typer, dict[str, object]]:
    """A one-command app asking for ``groups``; what it was called with lands in the dict."""
    seen: dict[str, object] = {}
    sub = typer.Typer()

    def command(**values: object) -> None:
        seen.update(values)

    command.__annotations__ = dict(groups)
    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=k)
            for n, k in groups.items()
        ]
    )
    sub.command()(with_options(command))
    sub.command("other")(lambda: None)  # two commands: typer keeps the command's name
    return sub, seen


def test_a_command_gets_each_group_as_one_frozen_value():
    sub, seen = _capture(names=NamesOptions, pace=PaceOptions, health=Health)
    args = ["command", "--sample", "--weight-column", "rank", "--weight-transform", "zipf-rank"]
    args += ["--normalize", "none", "--shards", "12", "--rate", "250", "--concurrency", "16"]
    result = CliRunner().invoke(sub, [*args, "--tick", "2", "--initial-rate", "5"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert seen["names"] == NamesOptions(
        sample=True,
        weight=WeightSpec(column="rank", transform=WeightTransform.ZIPF_RANK),
        normalization=Normalization.NONE,
        shards=12,
    )
    assert seen["pace"] == PaceOptions(rate=250.0, concurrency=16)
    assert seen["health"] == Health(tick=2.0, initial_rate=5.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        seen["pace"].rate = 1.0  # type: ignore[attr-defined,misc]


def test_defaults_build_the_values_defaults():
    """Declared once: the flags' defaults are the values' own."""
    sub, seen = _capture(state=StateOptions, targets=Targets, plan_names=PlanNames)
    result = CliRunner().invoke(sub, ["command"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert seen == {"state": StateOptions(), "targets": Targets(), "plan_names": PlanNames()}


def test_a_flag_named_like_a_group_is_refused_at_import():
    def command(*, names: NamesOptions, sample: bool = False) -> None: ...

    with pytest.raises(TypeError, match="used twice"):
        with_options(command)


def _options(command: str) -> dict[str, tuple[str, ...]]:
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return {p.name: tuple(p.opts) for p in click_command.params}


@pytest.mark.parametrize("group", [NamesOptions, PaceOptions, Health, Targets, PlanNames])
def test_plan_estimate_and_run_share_the_groups_they_take(group):
    """The same flags, under the same names, wherever a group is taken."""
    from purger.cli._options import _BUILDERS, _flags_of

    flags = {p.name for p in _flags_of(_BUILDERS[group])}
    takers = ["plan", "estimate", "run"] if group is NamesOptions else ["estimate", "run"]
    declared = [{n: o for n, o in _options(c).items() if n in flags} for c in takers]
    assert all(d == declared[0] for d in declared)
    assert set(declared[0]) == flags


def test_a_job_file_value_reaches_a_text_flag(tmp_path: Path):
    """Job values reach numeric flags through click's default map, as text now."""
    job = tmp_path / "job.toml"
    job.write_text("[pacing]\nmax_rate = 125\nconcurrency = 4\n")
    result = CliRunner().invoke(
        app, ["estimate", "--sample", "--json", "--config", str(job)], env=WIDE
    )
    assert result.exit_code == 0, result.output
    assert "configured pace (125 targets/s)" in result.stdout
