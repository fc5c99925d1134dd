"""`purger run` for people and for cron: the confirmation, --yes, JSON log lines,
--retry-failed, and what the keys do (the terminal itself: tests/e2e/test_tty.py)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import anyio
import httpx
import pytest
from typer.testing import CliRunner

from purger.cli import app
from purger.cli import run as run_command
from purger.cli.confirm import ask
from purger.cli.live import STOPPED_BY_OPERATOR, apply_key
from purger.cli.logs import JsonLog, progress_fields
from purger.model import TargetKind
from purger.state.sqlite import Failure, StateStore
from tests.engine.test_monitor import live_run
from tests.ui.test_live_view import CUT, SNAPSHOT

BASE = "https://api.fastly.example"
TOKEN = "t0k3n-for-tests"  # noqa: S105 - a fake
COMMON_KEYS = {"event", "run_id", "at", "elapsed_s"}


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"}, input=input)


@pytest.fixture
def names(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(f"{c}{i}" for c in "abp" for i in range(20)) + "\n")
    return path


def null_run(names, state, *extra: str, input: str | None = None):
    return invoke(
        "run", str(names), "--provider", "null", "--key-template", "k/{name}",
        "--state", str(state), "--rate", "inf", "--shards", "3", *extra, input=input,
    )  # fmt: skip


def test_without_a_terminal_and_without_yes_nothing_is_sent(names, tmp_path):
    """No terminal to answer on: the summary on stdout, one line saying to pass --yes on
    stderr, exit 2, and no state file."""
    state = tmp_path / "state.sqlite"
    result = null_run(names, state)
    assert result.exit_code == 2, result.output
    assert "about to purge through null" in result.stdout
    assert "60 names in 3 shards" in result.stdout
    assert "keys: 60 targets in 3 API calls" in result.stdout
    assert "bound by" in result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "purger: error: nothing was sent: without a terminal to confirm on, pass --yes to purge"
    ]
    assert not state.exists()


def test_a_resume_and_a_retry_need_yes_too(names, tmp_path):
    """Every run that sends confirms: a resume's summary says what is done already."""
    state = tmp_path / "state.sqlite"
    assert null_run(names, state, "--yes").exit_code == 0
    resumed = null_run(names, state, "--resume")
    assert resumed.exit_code == 2
    assert "resume 60 names in 3 shards: 3/3 shards done, 60 targets purged" in resumed.stdout
    with StateStore.open(state) as store:
        store.commit([], [Failure(target="k/a1", kind=TargetKind.KEY, shard_id=0, reason="no")])
    retried = null_run(names, state, "--retry-failed")
    assert retried.exit_code == 2
    assert "retry 1 failed targets recorded in" in retried.stdout


def test_with_json_logs_and_no_terminal_the_refusal_is_only_the_error(names, tmp_path):
    """--log-format json keeps stdout for JSON: the refusal writes nothing there."""
    result = null_run(names, tmp_path / "s.sqlite", "--log-format", "json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "pass --yes" in result.stderr


@pytest.mark.parametrize(
    ("answer", "code"), [("y\n", 0), ("yes\n", 0), ("n\n", 2), ("\n", 2), ("", 2)]
)
def test_on_a_terminal_the_operator_answers(names, tmp_path, monkeypatch, answer, code):
    """y or yes runs it; n, Enter or end of input sends nothing (exit 2, no state)."""
    monkeypatch.setattr(run_command, "is_interactive", lambda: True)
    state = tmp_path / "state.sqlite"
    # JSON logs: no live view, so the test needs no real terminal for the keys.
    result = null_run(names, state, "--log-format", "json", input=answer)
    assert result.exit_code == code, result.output
    assert "Proceed? [y/N]" in result.stdout
    assert state.exists() is (code == 0)
    if code:
        assert "nothing sent" in result.stderr


def test_the_answer_is_yes_only_when_it_says_so():
    """ask(): y/yes in any case; anything else, or EOF, is no."""

    def reply(text: str):
        return lambda prompt: text

    def eof(prompt: str) -> str:
        raise EOFError

    console = None
    assert ask(console, reply(" Y "))
    assert ask(console, reply("yes"))
    assert not ask(console, reply("yep"))
    assert not ask(console, eof)

    def interrupted(prompt: str) -> str:
        raise KeyboardInterrupt

    assert not ask(console, interrupted)


def test_plain_progress_lines_name_the_run_and_never_colour(names, tmp_path):
    """Without a terminal: a first line with the run's id, progress lines, the last words;
    no escape sequence anywhere."""
    state = tmp_path / "s.sqlite"
    result = null_run(names, state, "--yes", "--rate", "100", "--progress-interval", "0.1")
    assert result.exit_code == 0, result.output
    run_id = json.loads(invoke("status", "--state", str(state), "--json").stdout)["run_id"]
    lines = result.stderr.splitlines()
    assert lines[0] == f"run {run_id} (run): 0 of 60 targets done, progress every 0.1 s"
    assert "targets in" in lines[-2]
    assert lines[-1] == "done: 60 targets purged"
    assert "\x1b" not in result.output


def json_lines(text: str) -> list[dict]:
    lines = [json.loads(line) for line in text.splitlines()]
    for line in lines:
        assert line.keys() >= COMMON_KEYS, line
    return lines


def test_json_logs_are_one_object_a_line_from_start_to_done(names, tmp_path):
    """stdout is JSON only: start first, a shard_done per shard, done last with the exit
    code; stderr is empty."""
    result = null_run(
        names, tmp_path / "s.sqlite", "--yes", "--log-format", "json",
        "--progress-interval", "0.05",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    lines = json_lines(result.stdout)
    assert lines[0]["event"] == "start"
    assert lines[0]["mode"] == "run"
    assert lines[0]["targets_total"] == 60
    assert lines[0]["shards_total"] == 3
    assert lines[0]["rate_ceiling"] is None  # --rate inf
    run_id = lines[0]["run_id"]
    assert len(run_id) == 12
    assert all(line["run_id"] == run_id for line in lines)
    assert sorted(line["shard"] for line in lines if line["event"] == "shard_done") == [0, 1, 2]
    assert lines[-1] == {
        **{key: lines[-1][key] for key in COMMON_KEYS},
        "event": "done",
        "status": "done",
        "targets_done": 60,
        "failures": 0,
        "calls": 3,
        "exit_code": 0,
    }
    datetime.fromisoformat(lines[-1]["at"])
    status = json.loads(invoke("status", "--state", str(tmp_path / "s.sqlite"), "--json").stdout)
    assert status["run_id"] == run_id


def test_a_stopped_run_logs_stop_with_its_reason(names, tmp_path):
    """A time limit: the last line is stop, resumable, exit code 3."""
    result = null_run(
        names, tmp_path / "s.sqlite", "--yes", "--log-format", "json", "--rate", "20",
        "--max-duration", "0.3",
    )  # fmt: skip
    assert result.exit_code == 3
    last = json_lines(result.stdout)[-1]
    assert last["event"] == "stop"
    assert last["resumable"] is True
    assert last["exit_code"] == 3
    assert "time limit" in last["reason"]


def test_a_progress_event_has_counts_rates_pressure_holds_and_shards():
    """The shape of a progress event, from a snapshot."""
    fields = progress_fields(SNAPSHOT)
    assert fields == {
        "targets_done": 5_300,
        "targets_total": 9_000,
        "failures": 2,
        "shards_done": 2,
        "shards_total": 5,
        "rate": 340.0,
        "rate_now": 312.0,
        "allowed_rate": 350.0,
        "rate_ceiling": 500.0,
        "in_flight": 3,
        "pressure": 0.9,
        "paused": {"operator": False, "health": False},
        "controller": "recovering",
        "eta_s": 620.0,
        "retries": 0,
        "last_retry": None,
        "api_answering": None,
        "shards": [
            {"id": 4, "targets_done": 1_200, "targets_total": 3_000},
            {"id": 2, "targets_done": 100, "targets_total": 1_000},
        ],
    }
    json.dumps(fields)


@pytest.mark.anyio
async def test_the_json_log_emits_decisions_and_progress_while_running(tmp_path):
    """Bound to a live run: start, then progress at its interval; decisions as they come."""
    live, _, pacer, store = live_run(tmp_path)
    out = io.StringIO()
    log = JsonLog(out, 0.01, now=lambda: datetime(2026, 1, 2, tzinfo=UTC))
    async with anyio.create_task_group() as tg:
        tg.start_soon(log.present, live)
        while "progress" not in out.getvalue():  # noqa: ASYNC110 - polls the log it writes
            await anyio.sleep(0.01)
        log.decision(CUT)
        tg.cancel_scope.cancel()
    store.close()
    lines = json_lines(out.getvalue())
    assert [line["event"] for line in lines][:2] == ["start", "progress"]
    decision = next(line for line in lines if line["event"] == "decision")
    assert decision["run_id"] == "r1"
    assert decision["at"] == "2026-01-02T00:00:00.000+00:00"
    assert {k: decision[k] for k in ("action", "rate", "pressure", "paused", "reason")} == {
        "action": "cut",
        "rate": 350.0,
        "pressure": 1.3,
        "paused": False,
        "reason": "origin p99 at 1.30 of its limit: x0.7 of 500/s",
    }
    del pacer


@pytest.mark.anyio
async def test_keys_pause_resume_move_the_ceiling_and_stop(tmp_path):
    """p toggles the operator's pause, + and - move the ceiling, q stops gracefully and a
    second q stops waiting; other keys do nothing."""
    live, run, pacer, store = live_run(tmp_path, rate=100.0)
    assert "paused by the operator" in apply_key("p", live)
    assert live.snapshot().operator_paused
    assert apply_key("p", live) == "resumed"
    pacer.hold("health")
    apply_key("p", live)
    assert "still paused by health" in apply_key("p", live)
    assert apply_key("+", live) == "rate ceiling 125/s"
    assert apply_key("-", live) == "rate ceiling 100/s"
    assert apply_key("x", live) is None
    assert "finishing calls in flight" in apply_key("q", live)
    assert run.stopping == STOPPED_BY_OPERATOR
    hurried = []
    run.hurry = lambda: hurried.append(True)
    assert "cancelled" in apply_key("q", live)
    assert hurried == [True]
    store.close()


def fastly_run(names, state, *extra: str):
    return CliRunner().invoke(
        app,
        [
            "run", str(names), "--provider", "fastly", "--service-id", "SVC",
            "--api-base", BASE, "--key-template", "k/{name}", "--state", str(state),
            "--rate", "inf", "--shards", "3", "--yes", *extra,
        ],
        env={"COLUMNS": "200", "FASTLY_API_TOKEN": TOKEN},
    )  # fmt: skip


def test_retry_failed_purges_the_failed_targets_and_clears_them(names, tmp_path, httpx_mock):
    """Two keys refused by the provider (exit 1); a retry where the provider takes one and
    refuses the other again: exit 1, one left with the new reason; a last retry clears it
    (exit 0), and then there is nothing to retry."""
    bad = {"k/a1", "k/p7"}
    refusing = set(bad)

    def answer(request):
        keys = json.loads(request.content)["surrogate_keys"]
        if refusing & set(keys):
            return httpx.Response(400, json={"msg": f"refused {len(refusing)}"})
        return httpx.Response(200, json=dict.fromkeys(keys, "id"))

    httpx_mock.add_callback(answer, url=f"{BASE}/service/SVC/purge", is_reusable=True)
    state = tmp_path / "state.sqlite"
    first = fastly_run(names, state)
    assert first.exit_code == 1, first.output
    assert {
        f["target"] for f in json.loads(invoke("failures", "--state", str(state), "--json").stdout)
    } == bad

    refusing.discard("k/a1")
    again = fastly_run(names, state, "--retry-failed")
    assert again.exit_code == 1, again.output
    assert "1 failed again" in again.stderr
    rows = json.loads(invoke("failures", "--state", str(state), "--json").stdout)
    assert [(r["target"], r["reason"]) for r in rows] == [("k/p7", rows[0]["reason"])]
    assert "refused 1" in rows[0]["reason"]
    retried = [
        k for r in httpx_mock.get_requests()[-2:] for k in json.loads(r.content)["surrogate_keys"]
    ]
    assert sorted(retried) == ["k/a1", "k/p7"]

    refusing.clear()
    last = fastly_run(names, state, "--retry-failed")
    assert last.exit_code == 0, last.output
    assert "none left" in last.stderr
    assert invoke("failures", "--state", str(state)).exit_code == 0
    status = json.loads(invoke("status", "--state", str(state), "--json").stdout)
    assert status["targets_done"] == 60
    nothing = fastly_run(names, state, "--retry-failed")
    assert nothing.exit_code == 0
    assert "nothing to retry" in nothing.stderr


def test_retry_failed_checks_the_run_like_a_resume(names, tmp_path):
    """Other templates than the run's: refused as a resume is (exit 2); with --resume: a
    usage error; on a missing state: a usage error."""
    state = tmp_path / "state.sqlite"
    assert null_run(names, state, "--yes").exit_code == 0
    with StateStore.open(state) as store:
        store.commit([], [Failure(target="k/a1", kind=TargetKind.KEY, shard_id=0, reason="no")])
    other = invoke(
        "run", str(names), "--provider", "null", "--key-template", "other/{name}",
        "--state", str(state), "--shards", "3", "--retry-failed", "--yes",
    )  # fmt: skip
    assert other.exit_code == 2
    assert "template" in other.stderr
    both = null_run(names, state, "--retry-failed", "--resume", "--yes")
    assert both.exit_code == 2
    assert "one at a time" in both.stderr
    missing = null_run(names, tmp_path / "nope.sqlite", "--retry-failed", "--yes")
    assert missing.exit_code == 2
    assert "no such state file" in missing.stderr
