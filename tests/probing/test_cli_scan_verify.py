"""``purger scan`` and ``purger verify`` end to end on loopback fake nodes: what they write,
print and exit with, and the one-line errors that send and create nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from purger.cli import app
from purger.state.sqlite import StateStore
from tests.probing.fake_node import Table, fake_node

WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}
HOST = "pypi.test"
TEMPLATE = f"http://{HOST}/pypi/{{raw}}/json"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=WIDE)


def one_line_error(result: Result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("purger: error: ")
    assert fragment in lines[0]


def path(name: str) -> str:
    return f"/pypi/{name}/json"


@pytest.fixture
def table() -> Table:
    answers: dict[tuple[str, str], tuple[int, str | None]] = {
        (HOST, path(n)): (200, None) for n in ("good", "Other_Good", "other-good")
    }
    answers[HOST, path("Loop_Me")] = (301, "/pypi/loop-me/json")
    answers[HOST, path("loop-me")] = (301, f"http://{HOST}/pypi/Loop_Me/json")
    # "missing" is absent: a 404
    return Table(answers=answers)


@pytest.fixture
def node(table: Table) -> Iterator[str]:
    with fake_node(table) as url:
        yield url


@pytest.fixture
def names(tmp_path: Path) -> Path:
    file = tmp_path / "names.txt"
    file.write_text("good\nOther_Good\nLoop_Me\nmissing\n")
    return file


def test_scan_writes_the_bad_names_as_spelled(names: Path, node: str, table: Table) -> None:
    out = names.parent / "bad.txt"
    result = invoke(
        "scan", str(names), "--url-template", TEMPLATE, "--via", node, "--out", str(out), "--json"
    )
    assert result.exit_code == 1, result.output
    assert out.read_text() == "Loop_Me\nmissing\n"
    document = json.loads(result.stdout)
    # {raw} renders the normalized name and each spelling: both of Loop_Me's URLs loop.
    assert document["scanned"] == 6
    assert document["bad"] == 2
    assert document["by_class"] == {"ok": 3, "redirect_loop": 2, "error": 1}
    assert document["by_node"] == {node: {"ok": 3, "redirect_loop": 2, "error": 1}}
    assert document["examples"]["error"][0]["detail"] == "HTTP 404"
    assert (HOST, path("loop-me")) in table.gets  # the redirect, through the same node
    assert table.purges == []


def test_scan_with_stale_before_counts_old_objects(names: Path, node: str) -> None:
    out = names.parent / "bad.txt"
    result = invoke(
        "scan", str(names), "--url-template", TEMPLATE, "--via", node, "--out", str(out),
        "--stale-before", "2100-01-01T00:00:00Z", "--expect", "200", "--expect", "404",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    # Everything is an hour old; the 404 is expected, so it is judged by its age too.
    assert out.read_text() == "Loop_Me\nOther_Good\ngood\nmissing\n"
    assert "stale" in result.stdout


def test_scan_finding_nothing_exits_0_and_empties_the_file(tmp_path: Path, node: str) -> None:
    names = tmp_path / "names.txt"
    names.write_text("good\n")
    out = tmp_path / "bad.txt"
    out.write_text("old\n")
    result = invoke(
        "scan", str(names), "--url-template", TEMPLATE, "--via", node, "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert out.read_text() == ""
    assert "0 bad names of 1" in result.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((), "--out FILE is required"),
        (("--out", "{tmp}/no/such/bad.txt"), "no such directory"),
        (("--out", "{tmp}/bad.txt", "--via", "https://n:1"), "--via"),
        (("--out", "{tmp}/bad.txt", "--miss-header", "X-Cache"), "'Header: VALUE'"),
        (("--out", "{tmp}/bad.txt", "--expect", "42"), "--expect"),
        (("--out", "{tmp}/bad.txt", "--rate", "0"), "--rate"),
        (("--out", "{tmp}/bad.txt", "--stale-before", "yesterday"), "--stale-before"),
    ],
)
def test_scan_bad_input_is_one_line_and_creates_nothing(
    names: Path, args: tuple[str, ...], fragment: str
) -> None:
    filled = [a.replace("{tmp}", str(names.parent)) for a in args]
    result = invoke("scan", str(names), "--url-template", TEMPLATE, *filled)
    one_line_error(result, 2, fragment)
    assert sorted(p.name for p in names.parent.iterdir()) == ["names.txt"]


def test_scan_needs_a_url_template(names: Path) -> None:
    result = invoke("scan", str(names), "--out", str(names.parent / "bad.txt"))
    one_line_error(result, 2, "--url-template")


def run_on(node: str, names: Path, state: Path) -> Result:
    return invoke(
        "run", str(names), "--provider", "varnish", "--endpoint", node,
        "--url-template", TEMPLATE, "--state", str(state), "--yes",
    )  # fmt: skip


@pytest.fixture
def good_names(tmp_path: Path) -> Path:
    file = tmp_path / "good.txt"
    file.write_text("good\nOther_Good\n")
    return file


def test_verify_after_a_run_finds_every_target_fresh(good_names: Path, node: str) -> None:
    state = good_names.parent / "run.sqlite"
    assert run_on(node, good_names, state).exit_code == 0
    result = invoke("verify", str(good_names), "--state", str(state), "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["checked"] == 3  # the run's own node, without --via
    assert document["by_class"] == {"fresh": 3}
    with StateStore.open(state) as store:
        assert {v.verdict for v in store.verifications()} == {"fresh"}
        assert store.failures() == []


def test_verify_repurge_reports_a_deaf_node_still_bad(
    good_names: Path, node: str, table: Table
) -> None:
    table.deaf = True
    state = good_names.parent / "run.sqlite"
    assert run_on(node, good_names, state).exit_code == 0
    result = invoke(
        "verify", str(good_names), "--state", str(state), "--json", "--repurge",
        "--rounds", "2", "--round-wait", "0", "--soft-grace", "0",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["first_look"] == {"stale": 3}
    assert document["by_class"] == {"stale": 3}
    assert document["rounds"] == 2
    assert document["still_bad"] == 3
    assert len(table.purges) == 3 + 2 * 3  # the run, then two re-purge rounds
    failures = invoke("failures", "--state", str(state))
    assert failures.exit_code == 1
    assert failures.stdout.count("verify: stale on " + node) == 3
    # Once the node obeys, the next verify finds them fresh and clears those failures.
    table.deaf = False
    again = invoke("verify", str(good_names), "--state", str(state), "--repurge")
    assert again.exit_code == 0, again.output
    assert invoke("failures", "--state", str(state)).exit_code == 0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((), "--state FILE is required"),
        (("--state", "{tmp}/none.sqlite"), "no state at"),
        (("--state", "{tmp}/run.sqlite", "--sample", "0"), "--sample"),
        (("--state", "{tmp}/run.sqlite", "--sample", "0.5", "--all"), "--sample"),
        (("--state", "{tmp}/run.sqlite", "--round-wait", "-1"), "--round-wait"),
        (("--state", "{tmp}/run.sqlite", "--via", "nohost"), "--via"),
        (("--state", "{tmp}/run.sqlite", "--purged-at", "soon"), "--purged-at"),
    ],
)
def test_verify_bad_input_is_one_line_and_sends_nothing(
    good_names: Path, node: str, table: Table, args: tuple[str, ...], fragment: str
) -> None:
    assert run_on(node, good_names, good_names.parent / "run.sqlite").exit_code == 0
    table.gets.clear()
    filled = [a.replace("{tmp}", str(good_names.parent)) for a in args]
    one_line_error(invoke("verify", str(good_names), *filled), 2, fragment)
    assert table.gets == []
    assert not (good_names.parent / "none.sqlite").exists()


def test_verify_of_a_key_run_needs_url_templates(good_names: Path, node: str) -> None:
    state = good_names.parent / "keys.sqlite"
    ran = invoke(
        "run", str(good_names), "--provider", "varnish", "--endpoint", node,
        "--key-template", "project/{name}", "--state", str(state), "--yes",
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    one_line_error(invoke("verify", str(good_names), "--state", str(state)), 2, "--url-template")
    with_urls = invoke(
        "verify", str(good_names), "--state", str(state), "--url-template", TEMPLATE, "--json"
    )
    assert with_urls.exit_code == 1  # the keys purged nothing the fake node knows by URL
    assert json.loads(with_urls.stdout)["by_class"] == {"stale": 3}
