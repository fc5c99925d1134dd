"""``purger run``, ``status`` and ``failures`` with ``--state postgresql://...``: the run
recorded in the database under ``--run-name``, read back by ``status``; the password only
from a file or the environment, never shown; database options on a file refused."""

from __future__ import annotations

import json
import os

from typer.testing import CliRunner

from purger.cli import app
from tests.cli.test_cli import WIDE, assert_one_line_error


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env={**WIDE, **(env or {})})


def _run(names, url, password_file, *extra: str):
    return invoke(
        "run", str(names), "--provider", "null", "--key-template", "k/{name}",
        "--state", url, "--run-name", "nightly", "--state-password-file", str(password_file),
        "--yes", *extra,
    )  # fmt: skip


def test_a_run_in_postgresql_is_recorded_and_read_by_status(tmp_path, postgres, pg_url):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"p{i}" for i in range(40)) + "\n")
    result = _run(names, pg_url, postgres.password_file)
    assert result.exit_code == 0, result.output
    assert "done: 40 targets purged" in result.stderr
    status = invoke(
        "status", "--state", pg_url, "--run-name", "nightly",
        "--state-password-file", str(postgres.password_file), "--json",
    )  # fmt: skip
    assert status.exit_code == 0, status.output
    document = json.loads(status.stdout)
    assert document["status"] == "done"
    assert document["targets_done"] == 40
    assert document["state"] == f"{pg_url} (run nightly)"
    assert postgres.password not in status.output
    [one] = document["runners"]  # the runner that did it, holding nothing now
    assert one["pid"] == os.getpid()
    assert one["shards_held"] == 0
    shown = invoke(
        "status", "--state", pg_url, "--run-name", "nightly",
        "--state-password-file", str(postgres.password_file),
    )  # fmt: skip
    assert f"pid {os.getpid()}: 0 shards held" in shown.stdout
    failures = invoke(
        "failures", "--state", pg_url, "--run-name", "nightly",
        "--state-password-file", str(postgres.password_file),
    )  # fmt: skip
    assert failures.exit_code == 0, failures.output
    # A second runner with --resume-or-start joins the finished run: nothing left to send.
    again = _run(names, pg_url, postgres.password_file, "--resume-or-start")
    assert again.exit_code == 0, again.output


def test_the_password_comes_from_the_environment_and_is_never_printed(tmp_path, postgres, pg_url):
    names = tmp_path / "names.txt"
    names.write_text("a\nb\n")
    result = invoke(
        "run", str(names), "--provider", "null", "--key-template", "k/{name}",
        "--state", pg_url, "--yes",
        env={"PGPASSWORD": postgres.password},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    wrong = invoke("status", "--state", pg_url, env={"PGPASSWORD": "not-the-password-x1"})
    assert_one_line_error(wrong, 4, "cannot connect to state")
    assert "not-the-password-x1" not in wrong.output


def test_database_options_on_a_file_or_a_password_in_the_url_are_usage_errors(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("a\n")
    state = tmp_path / "s.sqlite"
    on_file = invoke(
        "run", str(names), "--provider", "null", "--key-template", "k/{name}",
        "--state", str(state), "--run-name", "x", "--yes",
    )  # fmt: skip
    assert_one_line_error(on_file, 2, "a run name or id needs a postgresql:// state")
    assert not state.exists()
    in_url = invoke(
        "run", str(names), "--provider", "null", "--key-template", "k/{name}",
        "--state", "postgresql://u:sekrit-pw@127.0.0.1:1/db", "--yes",
    )  # fmt: skip
    assert_one_line_error(in_url, 2, "the password goes in PGPASSWORD")
    assert "sekrit-pw" not in in_url.output
