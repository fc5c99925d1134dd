"""The issue's figures on the real PyPI list (886,323 names), when ``../shared`` is present.

The list is not part of the project; CI has it beside the clone. Elsewhere these tests
skip and say where the file is looked for. ``PURGER_PYPI_LIST`` points at another copy.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from purger.names.nameset import NameSet, WeightSpec, WeightTransform, build_name_set
from purger.names.sources import NamesSource, read_records
from purger.planning.plan import PlanSettings, compare_first_letter, make_plan

pytestmark = pytest.mark.data

PYPI_LIST = Path(
    os.environ.get(
        "PURGER_PYPI_LIST",
        Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pypi-projects.tsv.gz",
    )
)


def load(weight: WeightSpec) -> NameSet:
    if not PYPI_LIST.is_file():
        pytest.skip(f"no PyPI list at {PYPI_LIST} (set PURGER_PYPI_LIST)")
    source = NamesSource(path=str(PYPI_LIST), weight_column=weight.column)
    return build_name_set(read_records(source), where=str(PYPI_LIST), weight=weight)


@pytest.fixture(scope="module")
def by_count() -> NameSet:
    return load(WeightSpec())


def test_sixty_four_shards_by_count(by_count):
    """Heaviest shard <= 1.05 x mean, 'p' in >= 6 shards, most boundaries <= 3 characters."""
    assert len(by_count.names) == 886_323
    plan = make_plan(by_count, PlanSettings(shards=64))
    weights = [s.weight for s in plan.shards]
    assert len(weights) == 64
    assert max(weights) <= 1.05 * sum(weights) / 64
    assert dict(plan.prefix_shards)["p"] >= 6
    assert sum(len(s.start) <= 3 for s in plan.shards[1:]) > 63 / 2


def test_zipf_rank_traffic_on_sixteen_workers():
    """Traffic weights: heaviest-first makespan <= 1.05 x max(total / 16, heaviest name)."""
    spec = WeightSpec(column="download_rank", transform=WeightTransform.ZIPF_RANK)
    name_set = load(spec)
    plan = make_plan(name_set, PlanSettings(workers=16))
    bound = max(name_set.total_weight / 16, max(name_set.weights))
    assert plan.makespan <= 1.05 * bound
    assert plan.makespan_ratio == pytest.approx(plan.makespan / bound)


def test_first_letter_sharding_is_set_by_p(by_count):
    """PyPI's 2022 method on 36 workers: 'p' alone sets the makespan, over 4 x the ideal."""
    plan = make_plan(by_count, PlanSettings(workers=36))
    comparison = compare_first_letter(by_count, plan)
    assert comparison.heaviest_prefix == "p"
    assert comparison.first_letter_makespan == comparison.heaviest_weight
    assert 4.0 < comparison.first_letter_ratio < 4.6
    assert comparison.plan_ratio < 1.05
