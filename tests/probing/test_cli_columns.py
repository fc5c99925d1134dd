"""Column placeholders through the commands: one target per row, grouped by name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from purger.state.sqlite import StateStore
from tests.probing.fake_node import Table, fake_node
from tests.probing.test_cli_scan_verify import HOST, invoke, one_line_error

RELEASES = f"http://{HOST}/pypi/{{name}}/{{version}}/json"


@pytest.fixture
def table() -> Table:
    answers: dict[tuple[str, str], tuple[int, str | None]] = {
        (HOST, "/pypi/foo/1.0/json"): (200, None),
        (HOST, "/pypi/foo/2.0/json"): (200, None),
        (HOST, "/pypi/bar/0.1/json"): (301, "/pypi/bar/0.1/json"),  # loops on itself
    }
    return Table(answers=answers)


@pytest.fixture
def node(table: Table) -> Iterator[str]:
    with fake_node(table) as url:
        yield url


@pytest.fixture
def releases(tmp_path: Path) -> Path:
    file = tmp_path / "releases.csv"
    file.write_text("name,version\nfoo,1.0\nbar,0.1\nfoo,2.0\n")
    return file


def test_scan_probes_one_url_per_row_and_writes_the_row_names(
    releases: Path, node: str, table: Table
) -> None:
    out = releases.parent / "bad.txt"
    result = invoke(
        "scan", str(releases), "--url-template", RELEASES, "--via", node, "--out", str(out),
        "--json",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["scanned"] == 3
    assert sorted(set(table.gets)) == sorted(table.answers)
    assert out.read_text() == "bar\n"


def test_run_purges_every_row_then_verify_finds_them_fresh(
    releases: Path, node: str, table: Table
) -> None:
    state = releases.parent / "run.sqlite"
    result = invoke(
        "run", str(releases), "--provider", "varnish", "--endpoint", node,
        "--url-template", RELEASES, "--state", str(state), "--yes",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(table.purges) == sorted(table.answers)
    result = invoke("verify", str(releases), "--state", str(state), "--json")
    document = json.loads(result.stdout)
    assert document["checked"] == 3
    assert document["by_class"]["fresh"] == 2  # the self-redirect still loops after a purge
    with StateStore.open(state) as store:
        assert len(store.verifications()) == 3


def test_estimate_counts_one_target_per_row(releases: Path) -> None:
    result = invoke(
        "estimate", str(releases), "--provider", "varnish", "--url-template", RELEASES, "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["targets"] == {"url": 3}


@pytest.mark.parametrize("command", ["run", "estimate", "scan"])
@pytest.mark.parametrize(
    ("file", "text", "fragment"),
    [
        ("releases.csv", "name,size\nfoo,1\n", "no column 'version'"),
        ("names.txt", "foo\n", "unknown placeholder {version}"),
    ],
)
def test_a_template_naming_a_missing_column_is_a_usage_error(
    tmp_path: Path, command: str, file: str, text: str, fragment: str
) -> None:
    source = tmp_path / file
    source.write_text(text)
    extra = {
        "run": ("--provider", "varnish", "--endpoint", "http://127.0.0.1:9",
                "--state", str(tmp_path / "s.sqlite"), "--yes"),
        "estimate": ("--provider", "varnish"),
        "scan": ("--out", str(tmp_path / "bad.txt")),
    }[command]  # fmt: skip
    result = invoke(command, str(source), "--url-template", RELEASES, *extra)
    one_line_error(result, 2, fragment)
    assert [p.name for p in tmp_path.iterdir()] == [file]


def test_config_check_refuses_a_column_placeholder_over_a_names_only_source(
    tmp_path: Path,
) -> None:
    (tmp_path / "names.txt").write_text("foo\n")
    job = tmp_path / "purger.toml"
    job.write_text(
        '[names]\nsource = "names.txt"\n'
        f'[targets]\nurl_templates = ["{RELEASES}"]\n'
        '[provider]\nname = "varnish"\nendpoints = ["http://127.0.0.1:9"]\n'
        '[run]\nstate = "state.sqlite"\n'
    )
    result = invoke("config", "check", str(job))
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert "targets.url_templates" in line
    assert "unknown placeholder {version}:" in line
    assert "names.txt has names only" in line
