"""--repurge-after: each accepted batch purged a second time, later, through the pacer."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import anyio
import pytest

from purger.engine.repurge import RepurgeLater
from purger.errors import RejectedError, UsageError
from purger.model import Batch, BatchResult, TargetKind
from purger.probing.prober import probe_pacer
from purger.providers.base import ProviderLimits
from tests.probing.fake_node import Table, fake_node
from tests.probing.test_cli_scan_verify import HOST, invoke


class Recording:
    name = "recording"

    def __init__(self, refuse_after: int | None = None) -> None:
        self.calls: list[Batch] = []
        self._refuse_after = refuse_after

    @property
    def limits(self) -> ProviderLimits:
        return ProviderLimits(max_targets={TargetKind.KEY: 10})

    def target_bytes(self, kind: TargetKind, target: str) -> int:
        return len(target)

    async def purge(self, batch: Batch, /) -> BatchResult:
        self.calls.append(batch)
        if self._refuse_after is not None and len(self.calls) > self._refuse_after:
            raise RejectedError("no", provider="recording")
        return BatchResult(purged=len(batch))


def batches(n: int) -> list[Batch]:
    return [Batch(TargetKind.KEY, (f"k{i}",)) for i in range(n)]


def test_each_batch_is_purged_again_after_the_first_returned() -> None:
    inner = Recording()

    async def main() -> RepurgeLater:
        async with RepurgeLater(0.05, probe_pacer(1000, 4)) as later:
            twice = later.wrap(inner)
            assert twice.name == "recording"
            for batch in batches(3):
                await twice.purge(batch)
                assert inner.calls.count(batch) == 1  # the second is only due later
        return later

    later = anyio.run(main)
    assert Counter(inner.calls) == dict.fromkeys(batches(3), 2)
    assert inner.calls[:3] == batches(3)
    assert later.stats.sent == 3


def test_a_refused_second_purge_is_counted_not_raised() -> None:
    inner = Recording(refuse_after=2)

    async def main() -> RepurgeLater:
        async with RepurgeLater(0.01, probe_pacer(1000, 4)) as later:
            for batch in batches(2):
                await later.wrap(inner).purge(batch)
        return later

    later = anyio.run(main)
    assert later.stats.sent == 0
    assert len(later.stats.refused) == 2


@pytest.mark.parametrize("delay", [0.0, -1.0, float("inf")])
def test_the_delay_must_be_a_positive_number_of_seconds(delay: float) -> None:
    async def main() -> None:
        RepurgeLater(delay, probe_pacer(10, 1))

    with pytest.raises(UsageError, match="--repurge-after"):
        anyio.run(main)


@pytest.mark.parametrize(("extra", "times"), [((), 1), (("--repurge-after", "0.2"), 2)])
def test_run_purges_each_batch_twice_with_repurge_after(
    tmp_path: Path, extra: tuple[str, ...], times: int
) -> None:
    names = tmp_path / "names.txt"
    names.write_text("a\nb\nc\n")
    table = Table()
    with fake_node(table) as node:
        result = invoke(
            "run", str(names), "--provider", "varnish", "--endpoint", node,
            "--url-template", f"http://{HOST}/{{name}}", "--state", str(tmp_path / "s.sqlite"),
            "--yes", *extra,
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert Counter(table.purges) == {(HOST, f"/{n}"): times for n in "abc"}


def test_repurge_after_zero_is_a_usage_error(tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("a\n")
    result = invoke(
        "run", str(names), "--provider", "null", "--key-template", "k/{name}",
        "--state", str(tmp_path / "s.sqlite"), "--yes", "--repurge-after", "0",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "repurge" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["names.txt"]
