"""`purger run` and its state file: a file that is not a state is refused untouched,
``--resume-or-start``, SIGTERM in start-up, and a state deleted under a running purge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from purger.cli import app
from purger.state.files import write_refused
from purger.state.sqlite import StateStore

# Runs ``purger`` with a SIGTERM sent to itself the moment the run is recorded in the state,
# before anything is sent: the narrowest moment of the start-up.
TERM_IN_START_UP = """
import os, signal, sys
from purger.state.sqlite import StateStore
recorded = StateStore.start_run
def start_run(self, record):
    recorded(self, record)
    os.kill(os.getpid(), signal.SIGTERM)
StateStore.start_run = start_run
from purger.cli import main
sys.argv = ["purger", *sys.argv[1:]]
main()
"""


@pytest.fixture
def names(tmp_path: Path) -> Path:
    path = tmp_path / "names.txt"
    path.write_text("\n".join(f"{c}{i}" for c in "abpq" for i in range(25)) + "\n")
    return path


def null_args(names: Path, state: Path, *extra: str) -> list[str]:
    return [
        "run", str(names), "--provider", "null", "--key-template", "project/{name}",
        "--state", str(state), "--rate", "inf", "--yes", *extra,
    ]  # fmt: skip


def invoke(args: list[str], env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, args, env={"COLUMNS": "200", "NO_COLOR": "1", **(env or {})})


def assert_one_line(result, code: int, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("resume", [(), ("--resume",), ("--resume-or-start",)])
def test_a_truncated_state_is_refused_untouched(names, tmp_path, resume):
    """A zero-byte state (truncated) is never taken for a new run, with or without
    --resume: exit 2, one line, the file as it was, no lock file beside it."""
    state = tmp_path / "state.sqlite"
    state.touch()
    result = invoke(null_args(names, state, *resume))
    assert_one_line(result, 2, "purger: error:", str(state), "not a purger state file")
    assert state.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["names.txt", "state.sqlite"]


@pytest.mark.parametrize("resume", [(), ("--resume",), ("--resume-or-start",)])
def test_a_foreign_file_is_refused_untouched(names, tmp_path, resume):
    """A file that is not a purger state is never overwritten."""
    state = tmp_path / "state.sqlite"
    state.write_text("my notes\n")
    result = invoke(null_args(names, state, *resume))
    assert_one_line(result, 2, str(state), "not a purger state file")
    assert state.read_text() == "my notes\n"


def test_resume_or_start_starts_then_resumes_then_finishes(names, tmp_path):
    """One cron line for every night: the first starts the run, the next resume it, a
    finished run resumed is a no-op (exit 0)."""
    state = tmp_path / "state.sqlite"
    first = invoke(null_args(names, state, "--resume-or-start"))
    assert first.exit_code == 0, first.output
    assert "done: 100 targets purged" in first.stderr
    again = invoke(null_args(names, state, "--resume-or-start"))
    assert again.exit_code == 0, again.output
    assert "resuming" in again.stderr
    with StateStore.open(state) as store:
        assert store.summary().targets_done == 100


@pytest.mark.parametrize(
    "env",
    [{"PURGER_RUN_RESUME_OR_START": "true"}, {"PURGER_CONFIG": ""}],
    ids=["variable", "job-file"],
)
def test_resume_or_start_from_a_variable_or_a_job_file(names, tmp_path, env):
    """``run.resume_or_start`` in a job file and PURGER_RUN_RESUME_OR_START do as the flag."""
    state = tmp_path / "state.sqlite"
    args = null_args(names, state)
    if "PURGER_CONFIG" in env:
        job = tmp_path / "purger.toml"
        job.write_text("[run]\nresume_or_start = true\n")
        args += ["--config", str(job)]
        env = {}
    assert invoke(args, env).exit_code == 0
    resumed = invoke(args, env)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" in resumed.stderr


def test_resume_and_resume_or_start_together_are_refused(names, tmp_path):
    result = invoke(null_args(names, tmp_path / "s.sqlite", "--resume", "--resume-or-start"))
    assert_one_line(result, 2, "--resume and --resume-or-start")
    assert not (tmp_path / "s.sqlite").exists()


def test_sigterm_in_start_up_stops_with_exit_3_and_the_run_resumes(names, tmp_path):
    """SIGTERM once the state may exist, before anything is sent: exit 3 (not 143), one
    stop line; the run is recorded, and --resume purges everything."""
    state = tmp_path / "state.sqlite"
    killed = subprocess.run(
        [sys.executable, "-c", TERM_IN_START_UP, *null_args(names, state)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == 3, killed.stderr
    assert "SIGTERM received" in killed.stderr
    assert "Traceback" not in killed.stderr
    with StateStore.open(state) as store:
        assert store.load_run() is not None
        assert store.summary().targets_done == 0  # stopped before sending
    resumed = invoke(null_args(names, state, "--resume"))
    assert resumed.exit_code == 0, resumed.output
    assert "done: 100 targets purged" in resumed.stderr


@pytest.mark.parametrize("deleted", ["state", "both"])
def test_a_state_deleted_during_the_run_stops_it(tmp_path, deleted):
    """The state file (and its lock) deleted under a running purge: it notices at its next
    checkpoint, stops sending, says so in one line, exit 3."""
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"n{i:05d}" for i in range(20_000)) + "\n")
    state = tmp_path / "state.sqlite"
    command = [
        sys.executable, "-m", "purger", "run", str(names), "--provider", "null",
        "--key-template", "project/{name}", "--state", str(state), "--rate", "2000", "--yes",
    ]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not state.exists() and process.poll() is None:
            assert time.monotonic() < deadline, "no state within 60 s"
            time.sleep(0.05)
        time.sleep(0.5)
        assert process.poll() is None, "the run ended before the deletion: make it longer"
        state.unlink()
        if deleted == "both":
            Path(f"{state}.lock").unlink()
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 3, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("purger: error:")]
    assert lines == [
        f"purger: error: {state}: the state file was deleted or replaced during the run; "
        "stopped, sending nothing more (the progress it held went with it)"
    ], stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_state_write_refused_mid_run_is_one_line_and_exit_3(
    names, tmp_path, monkeypatch, log_format
):
    """The disk refuses the third commit: exit 3, one `purger: error:` line naming the file
    and the reason, no traceback; in JSON the last event is `stop`, exit_code 3."""
    state = tmp_path / "state.sqlite"
    commit = StateStore.commit
    commits = []

    def refusing(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        commits.append(1)
        if len(commits) > 2:
            raise write_refused(str(self.path), "No space left on device", sent=True)
        commit(self, *args, **kwargs)

    monkeypatch.setattr(StateStore, "commit", refusing)
    result = invoke(null_args(names, state, "--log-format", log_format, "--concurrency", "1"))
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("purger:")]
    assert errors == [
        f"purger: error: {state}: cannot write the state (No space left on device); "
        "stopped, nothing is lost: free space, then --resume"
    ]
    if log_format == "json":
        last = json.loads(result.stdout.strip().splitlines()[-1])
        assert last["event"] == "stop"
        assert last["exit_code"] == 3
        assert "cannot write the state" in last["reason"]
    monkeypatch.setattr(StateStore, "commit", commit)
    resumed = invoke(null_args(names, state, "--resume"))
    assert resumed.exit_code == 0, resumed.output
    assert "done: 100 targets purged" in resumed.stderr
