"""The command line: exit codes, one-line errors, the plan document, every names source."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import httpx
import pytest
from typer.testing import CliRunner

from purger.cli import app
from purger.names.simple_index import ACCEPT as SIMPLE_API_ACCEPT
from purger.names.sources import PEP691_JSON
from purger.planning.document import read_plan

WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}


def invoke(*args: str, stdin: bytes | None = None):
    return CliRunner().invoke(app, list(args), input=stdin, env=WIDE)


def assert_one_line_error(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def names_file(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(f"{c}{i}" for c in "abp" for i in range(30)) + "\n")
    return path


def test_plan_json_has_the_documented_shape(names_file):
    """--json prints the plan document and nothing else on stdout."""
    result = invoke("plan", str(names_file), "--json", "--shards", "4", "--workers", "2")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["version"] == 1
    assert document["normalize"] == "pep503"
    assert document["weight"] == "count"
    assert document["total_count"] == 90
    assert document["workers"] == 2
    assert len(document["shards"]) == 4
    assert sum(s["count"] for s in document["shards"]) == 90
    assert set(document["shards"][0]) == {"id", "start", "limit", "count", "weight"}
    assert "makespan_ratio" in document


def test_plan_out_writes_a_plan_that_reads_back(names_file, tmp_path):
    """--out writes the same document; the table goes to stdout for people."""
    out = tmp_path / "plan.json"
    result = invoke("plan", str(names_file), "--out", str(out), "--shards", "3")
    assert result.exit_code == 0, result.output
    assert "3 shards" in result.stdout
    assert f"plan written to {out}" in result.stderr
    plan = read_plan(out)
    assert plan.total_count == 90
    assert len(plan.shards) == 3
    assert plan.source == str(names_file)


def test_plan_reads_stdin(names_file):
    """'-' reads names from stdin."""
    result = invoke("plan", "-", "--json", "--shards", "2", stdin=names_file.read_bytes())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_count"] == 90


def test_plan_of_the_bundled_sample_compares_first_letters():
    """--sample needs no file; --compare-first-letter shows PyPI's 2022 method beside it."""
    result = invoke("plan", "--sample", "--compare-first-letter")
    assert result.exit_code == 0, result.output
    assert "by first character (PyPI 2022): 36 shards" in result.stdout
    assert "'p' alone weighs" in result.stdout
    assert "p: " in result.stdout  # the per-prefix summary


def test_plan_weighted_table_with_zipf_ranks(tmp_path):
    """A gzip TSV with a rank column plans by traffic and names the heavy name."""
    path = tmp_path / "projects.tsv.gz"
    rows = ["name\tdownload_rank", "boto3\t1", *(f"pkg{i}\t" for i in range(200))]
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    result = invoke(
        "plan",
        str(path),
        "--weight-column",
        "download_rank",
        "--weight-transform",
        "zipf-rank",
        "--shards",
        "150",
        "--json",
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["weight"] == "zipf-rank(download_rank)"
    assert document["heavy_names"] == ["boto3"]
    assert document["total_weight"] == pytest.approx(1 + 200 / 2)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        ((), ["exactly one names source"]),
        (
            ("--sample", "--names-url", "https://pypi.example/simple/"),
            ["got --names-url, --sample"],
        ),
        (("missing.txt",), ["missing.txt", "cannot read"]),
        (("--sample", "--shards", "4", "--max-weight", "10"), ["not both"]),
        (("--sample", "--weight-transform", "zipf-rank"), ["needs --weight-column"]),
        (("--sample", "--weight-column", "downloads"), ["no column 'downloads'"]),
        (("--sample", "--weight-column", "download_rank"), ["empty weight", "zipf-rank"]),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args, fragments):
    """Wrong arguments give one line on stderr and exit code 2, never a traceback."""
    assert_one_line_error(invoke("plan", *args), 2, *fragments)


def test_flag_validation_by_typer_exits_2():
    """Typer's own checks (a count below 1, an unknown choice) also exit 2."""
    assert invoke("plan", "--sample", "--shards", "0").exit_code == 2
    assert invoke("plan", "--sample", "--normalize", "nfc").exit_code == 2


def test_strict_names_the_invalid_line(tmp_path):
    """--strict makes an invalid name fatal, with its file and line."""
    path = tmp_path / "names.txt"
    path.write_text("good\nnot valid!\n")
    assert_one_line_error(invoke("plan", str(path), "--strict"), 2, f"{path}:2:", "not valid!")


def test_invalid_names_are_skipped_and_counted(tmp_path):
    """Without --strict, invalid names are skipped with a warning that shows them."""
    path = tmp_path / "names.txt"
    path.write_text("good\nbad name\nalso good\n-bad\n")
    result = invoke("plan", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_count"] == 1
    assert "skipped 3 invalid pep503 names ('bad name', 'also good', '-bad')" in result.stderr


def test_undecodable_input_names_its_line(tmp_path):
    """Bytes that are not UTF-8 are reported with the line, exit 2."""
    path = tmp_path / "names.txt"
    path.write_bytes(b"good\nbad\xff\n")
    assert_one_line_error(invoke("plan", str(path)), 2, f"{path}:2:", "not valid UTF-8")


def test_names_url_downloads_pep691(httpx_mock):
    """--names-url reads a PEP 691 index (asked for first by Accept header) and plans it."""
    body = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in ("A", "b", "C_d")]}
    httpx_mock.add_response(
        url="https://pypi.example/simple/",
        match_headers={"Accept": SIMPLE_API_ACCEPT},
        json=body,
        headers={"Content-Type": PEP691_JSON},
    )
    result = invoke("plan", "--names-url", "https://pypi.example/simple/", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["total_count"] == 3
    assert document["source"] == "https://pypi.example/simple/"


def test_names_url_server_error_exits_4_without_credentials(httpx_mock):
    """A 5xx from the index cannot start the plan: exit 4, and the password is not shown."""
    httpx_mock.add_response(url="https://user:s3cret@pypi.example/simple/", status_code=503)
    result = invoke("plan", "--names-url", "https://user:s3cret@pypi.example/simple/")
    assert_one_line_error(result, 4, "503", "pypi.example")
    assert "s3cret" not in result.output


def test_names_url_connection_failure_exits_4(httpx_mock):
    """A connection that fails is exit 4 with the reason."""
    httpx_mock.add_exception(httpx.ConnectError("connection refused"))
    result = invoke("plan", "--names-url", "https://pypi.example/simple/")
    assert_one_line_error(result, 4, "ConnectError", "connection refused")


def test_out_to_an_unwritable_place_exits_2(names_file, tmp_path):
    """A plan that cannot be written is reported with the path, exit 2."""
    out = tmp_path / "no" / "such" / "dir" / "plan.json"
    assert_one_line_error(invoke("plan", str(names_file), "--out", str(out)), 2, str(out))


def test_help_shows_an_example():
    """Every command's --help carries an example."""
    result = invoke("plan", "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout


def test_python_dash_m_runs_the_cli():
    """python -m purger is the same program, in a real process."""
    result = subprocess.run(
        [sys.executable, "-m", "purger", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("purger ")
