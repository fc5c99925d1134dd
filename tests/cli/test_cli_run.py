"""`purger run`: exit codes, one-line errors, dry runs, resume, locks, and no leaked token."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest
from typer.testing import CliRunner

from purger.cli import app
from purger.state.sqlite import StateStore

TOKEN = "s3cr3t-fastly-token-0123456789"  # noqa: S105 - a fake, to look for in outputs
BASE = "https://api.fastly.example"


def invoke(*args: str, env: dict[str, str] | None = None):
    environment = {"COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    return CliRunner().invoke(app, ["run", *args, "--yes"], env=environment)


@pytest.fixture
def names(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(f"{c}{i}" for c in "abpq" for i in range(25)) + "\n")
    return path


def null_run(names, state, *extra: str):
    return invoke(
        str(names), "--provider", "null", "--key-template", "project/{name}",
        "--state", str(state), "--rate", "inf", *extra,
    )  # fmt: skip


def assert_one_line_error(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_a_run_purges_everything_and_records_it(names, tmp_path):
    """Exit 0; the state file says every shard is done with every target counted."""
    state = tmp_path / "state.sqlite"
    result = null_run(names, state, "--workers", "3")
    assert result.exit_code == 0, result.output
    assert "done: 100 targets purged" in result.stderr
    with StateStore.open(state) as store:
        summary = store.summary()
    assert summary.shards_done == summary.shards
    assert summary.targets_done == 100


def test_a_second_run_on_the_same_state_needs_resume(names, tmp_path):
    """Without --resume a used state is refused (exit 2); with it, a finished run is a no-op."""
    state = tmp_path / "state.sqlite"
    assert null_run(names, state).exit_code == 0
    assert_one_line_error(null_run(names, state), 2, "already holds a run", "--resume")
    resumed = null_run(names, state, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" in resumed.stderr


def test_resume_with_other_templates_is_refused(names, tmp_path):
    """A resume must be the same run: another template is a usage error naming it."""
    state = tmp_path / "state.sqlite"
    assert null_run(names, state).exit_code == 0
    result = invoke(
        str(names), "--provider", "null", "--key-template", "pkg/{name}",
        "--state", str(state), "--resume",
    )  # fmt: skip
    assert_one_line_error(result, 2, "template")


def test_a_locked_state_cannot_start(names, tmp_path):
    """Another run holding the state: exit 4, naming the file."""
    state = tmp_path / "state.sqlite"
    with StateStore.open(state):
        result = null_run(names, state)
    assert_one_line_error(result, 4, str(state), "in use")


def test_a_plan_file_runs_and_refuses_changed_names(names, tmp_path):
    """A run from a plan re-reads its names; if they changed, it refuses (exit 2)."""
    plan = tmp_path / "plan.json"
    made = CliRunner().invoke(app, ["plan", str(names), "--out", str(plan), "--shards", "5"])
    assert made.exit_code == 0, made.output
    state = tmp_path / "state.sqlite"
    ok = invoke(
        str(plan), "--provider", "null", "--key-template", "k/{name}", "--state", str(state)
    )
    assert ok.exit_code == 0, ok.output

    names.write_text(names.read_text() + "zzz\n")
    changed = invoke(
        str(plan), "--provider", "null", "--key-template", "k/{name}",
        "--state", str(tmp_path / "other.sqlite"),
    )  # fmt: skip
    assert_one_line_error(changed, 2, "not the ones plan")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--key-template", "k/{name}", "--state", "s.sqlite"), ["--provider is required"]),
        (("--provider", "null", "--key-template", "k/{name}"), ["--state FILE is required"]),
        (
            ("--provider", "nope", "--key-template", "k/{name}", "--state", "s"),
            ["unknown provider"],
        ),
        (("--provider", "null", "--state", "s"), ["at least one --key-template"]),
        (("--provider", "null", "--key-template", "k/{nam}", "--state", "s"), ["{nam}"]),
        (("--provider", "null", "--key-template", "k/{name}", "--rate", "0"), ["--rate"]),
        (
            ("--provider", "fastly", "--key-template", "k/{name}", "--state", "s"),
            ["FASTLY_API_TOKEN"],
        ),
    ],
)
def test_bad_run_arguments_are_one_line_and_exit_2(names, tmp_path, monkeypatch, args, fragments):
    """Every usage error is caught before anything is sent or any state is written."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["run", str(names), *args], env={"COLUMNS": "200"}, catch_exceptions=False
    )
    assert_one_line_error(result, 2, *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["names.txt"]


def test_dry_run_sends_nothing_and_estimates(names, httpx_mock):
    """--dry-run needs no token and no state, sends nothing, and says how long it would take."""
    result = invoke(
        str(names), "--provider", "fastly", "--service-id", "SVC", "--dry-run",
        "--key-template", "project/{name}", "--url-template", "https://pypi.org/pypi/{name}/json",
        "--rate", "10", "--shards", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "estimate (nothing sent)" in result.stdout
    assert "keys: 100 targets in 2 API calls" in result.stdout
    assert "urls: 100 targets in 100 API calls" in result.stdout
    assert (
        "duration 20.0 s with 16 workers, bound by configured pace (10 targets/s)" in result.stdout
    )
    assert httpx_mock.get_requests() == []


def test_refused_token_exits_4_naming_the_variable_and_never_showing_it(
    names, tmp_path, httpx_mock
):
    """A 401 stops the run with exit 4 and the variable's name; the token is nowhere."""
    httpx_mock.add_response(
        url=f"{BASE}/service/SVC/purge", method="POST", status_code=401, is_reusable=True
    )
    state = tmp_path / "state.sqlite"
    result = invoke(
        str(names), "--provider", "fastly", "--service-id", "SVC", "--api-base", BASE,
        "--key-template", "project/{name}", "--state", str(state), "--rate", "inf",
        env={"FASTLY_API_TOKEN": TOKEN},
    )  # fmt: skip
    assert result.exit_code == 4, result.output
    assert "FASTLY_API_TOKEN" in result.stderr
    assert TOKEN not in result.output
    for path in tmp_path.iterdir():
        assert TOKEN.encode() not in path.read_bytes(), path
    requests = httpx_mock.get_requests()
    assert requests[0].headers["Fastly-Key"] == TOKEN  # it was sent, to the API only
    assert len(requests) <= 8  # the calls already in flight; nothing is retried after a 401


def test_an_unknown_fastly_service_stops_the_run_with_one_line_and_exit_2(
    names, tmp_path, httpx_mock
):
    """Fastly's 404 for the service: one line naming --service-id, exit 2, no traceback."""
    httpx_mock.add_response(
        url=f"{BASE}/service/NOPE/purge", method="POST", status_code=404, is_reusable=True
    )
    result = invoke(
        str(names), "--provider", "fastly", "--service-id", "NOPE", "--api-base", BASE,
        "--key-template", "project/{name}", "--state", str(tmp_path / "s.sqlite"),
        "--rate", "inf", env={"FASTLY_API_TOKEN": TOKEN},
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "service 'NOPE' not found (--service-id)" in result.stderr
    assert "Traceback" not in result.output
    assert len(httpx_mock.get_requests()) <= 8  # the calls in flight; nothing more


def test_a_fastly_run_sends_soft_batched_key_purges(names, tmp_path, httpx_mock):
    """Wire check through the CLI: one bulk call, soft purge header, every key once."""

    def answer(request: httpx.Request) -> httpx.Response:
        keys = json.loads(request.content)["surrogate_keys"]
        return httpx.Response(200, json={key: f"id-{i}" for i, key in enumerate(keys)})

    httpx_mock.add_callback(answer, url=f"{BASE}/service/SVC/purge", is_reusable=True)
    state = tmp_path / "state.sqlite"
    result = invoke(
        str(names), "--provider", "fastly", "--service-id", "SVC", "--api-base", BASE,
        "--key-template", "project/{name}", "--state", str(state), "--rate", "inf",
        "--shards", "2", "--workers", "2",
        env={"FASTLY_API_TOKEN": TOKEN},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    sent = [k for r in httpx_mock.get_requests() for k in json.loads(r.content)["surrogate_keys"]]
    assert sorted(sent) == sorted(f"project/{n}" for n in names.read_text().split())
    assert all(r.headers["Fastly-Soft-Purge"] == "1" for r in httpx_mock.get_requests())
    stored = sqlite3.connect(state).execute("SELECT provider_options FROM run").fetchone()[0]
    assert TOKEN not in stored


def test_max_duration_stops_cleanly_with_exit_3_and_resumes(names, tmp_path):
    """A time limit ends the run resumably (exit 3); the next run finishes it (exit 0)."""
    state = tmp_path / "state.sqlite"
    slow = invoke(
        str(names), "--provider", "null", "--key-template", "k/{name}",
        "--state", str(state), "--rate", "20", "--max-duration", "0.5",
    )  # fmt: skip
    assert slow.exit_code == 3, slow.output
    assert "resume with --resume" in slow.stderr
    with StateStore.open(state) as store:
        assert 0 < store.summary().targets_done < 100
    finished = invoke(
        str(names), "--provider", "null", "--key-template", "k/{name}",
        "--state", str(state), "--rate", "inf", "--resume",
    )  # fmt: skip
    assert finished.exit_code == 0, finished.output
    assert "done: 100 targets purged" in finished.stderr


@pytest.mark.parametrize(
    "first",
    [
        httpx.Response(503),
        httpx.Response(429, headers={"Retry-After": "0"}),
    ],
    ids=["503", "429"],
)
def test_a_failed_call_is_retried_and_the_run_completes(names, tmp_path, httpx_mock, first):
    """503 or 429 on the first call, then success: exit 0 and every key sent once more."""
    calls = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return first
        keys = json.loads(request.content)["surrogate_keys"]
        return httpx.Response(200, json=dict.fromkeys(keys, "id"))

    httpx_mock.add_callback(answer, url=f"{BASE}/service/SVC/purge", is_reusable=True)
    result = invoke(
        str(names), "--provider", "fastly", "--service-id", "SVC", "--api-base", BASE,
        "--key-template", "project/{name}", "--state", str(tmp_path / "s.sqlite"),
        "--rate", "inf", "--shards", "1", "--workers", "1",
        env={"FASTLY_API_TOKEN": TOKEN},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(calls) == 2
    assert calls[0].content == calls[1].content  # the same batch, sent again


def test_resume_needs_an_existing_state_with_a_recorded_run(names, tmp_path):
    """--resume of a missing file is a usage error (a typo must not start a new run); of a
    state that holds no run (one killed before recording it) too: --resume never starts
    from zero; --resume-or-start does."""
    state = tmp_path / "state.sqlite"
    assert_one_line_error(null_run(names, state, "--resume"), 2, "no state at")
    StateStore.open(state).close()  # what a run killed before recording its run leaves
    assert_one_line_error(
        null_run(names, state, "--resume"), 2, "holds no run to resume", "--resume-or-start"
    )
    result = null_run(names, state, "--resume-or-start")
    assert result.exit_code == 0, result.output
    assert "done: 100 targets purged" in result.stderr
