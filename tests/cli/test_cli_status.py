"""`purger status` and `purger failures`: read a run's state, even while it runs."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from purger.cli import app
from purger.model import TargetKind
from purger.state.sqlite import Failure, RatePoint, ShardProgress, StateStore


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


def make_run(tmp_path, *extra: str):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"{c}{i}" for c in "abp" for i in range(20)) + "\n")
    state = tmp_path / "state.sqlite"
    result = invoke(
        "run", str(names), "--provider", "null", "--key-template", "k/{name}",
        "--state", str(state), "--rate", "inf", "--shards", "3", "--yes", *extra,
    )  # fmt: skip
    return state, result


def test_status_of_a_finished_run(tmp_path):
    """Totals and the run's identity; the JSON has every shard with its progress."""
    state, result = make_run(tmp_path)
    assert result.exit_code == 0, result.output
    shown = invoke("status", "--state", str(state))
    assert shown.exit_code == 0, shown.output
    assert "3/3 shards done, 60 targets purged, 0 failed" in shown.stdout
    document = json.loads(invoke("status", "--state", str(state), "--json").stdout)
    assert document["targets_done"] == 60
    assert document["run"]["provider"] == "null"
    assert [s["done"] for s in document["shards"]] == [True, True, True]
    assert sum(s["names"] for s in document["shards"]) == 60


def test_status_reads_a_state_whose_run_holds_the_lock(tmp_path):
    """Status does not need the lock: it works while a run holds it, and writes nothing."""
    state, _ = make_run(tmp_path)
    before = state.read_bytes()
    with StateStore.open(state):  # a run in progress
        shown = invoke("status", "--state", str(state), "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["targets_done"] == 60
    assert state.read_bytes() == before


def test_failures_are_listed_with_their_reason_and_exit_1(tmp_path):
    """Failed targets are listed (text and JSON); any failure makes the exit code 1."""
    state, _ = make_run(tmp_path)
    assert invoke("failures", "--state", str(state)).exit_code == 0
    with StateStore.open(state) as store:
        store.commit(
            [], [Failure(target="k/bad", kind=TargetKind.KEY, shard_id=0, reason="400 no")]
        )
    listed = invoke("failures", "--state", str(state))
    assert listed.exit_code == 1
    assert "key\tk/bad\t400 no" in listed.stdout
    rows = json.loads(invoke("failures", "--state", str(state), "--json").stdout)
    assert rows == [{"target": "k/bad", "kind": "key", "shard": 0, "reason": "400 no"}]


def test_status_of_a_missing_or_foreign_file_is_an_input_error(tmp_path):
    """A path that is not a state: one line, exit 2."""
    missing = invoke("status", "--state", str(tmp_path / "nope.sqlite"))
    assert missing.exit_code == 2
    assert "no such state file" in missing.stderr
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    foreign = invoke("status", "--state", str(other))
    assert foreign.exit_code == 2
    assert "not a purger state" in foreign.stderr


def test_status_shows_the_run_id_the_rate_history_and_failures_by_reason(tmp_path):
    """Text and JSON: the run's id, its rate over time, and why targets failed."""
    state, result = make_run(tmp_path)
    assert result.exit_code == 0, result.output
    with StateStore.open(state) as store:
        run_id = store.run_id()
        store.commit(
            [],
            [
                Failure(target=f"k/bad{i}", kind=TargetKind.KEY, shard_id=0, reason=reason)
                for i, reason in enumerate(["400 no", "400 no", "403 nope"])
            ],
            history=[
                RatePoint(rate=120.0, allowed=500.0, targets=1_200),
                RatePoint(rate=0.0, allowed=350.0, targets=1_200, held=("health",)),
            ],
        )
    shown = invoke("status", "--state", str(state))
    assert shown.exit_code == 0, shown.output
    assert f"run {run_id} (plan " in shown.stdout
    assert "rate history" in shown.stdout
    assert "health" in shown.stdout
    assert "2  400 no" in shown.stdout
    assert "1  403 nope" in shown.stdout
    document = json.loads(invoke("status", "--state", str(state), "--json").stdout)
    assert set(document) == {
        "state", "run_id", "run", "shards_done", "shards_total", "targets_done", "failures",
        "rate", "eta_s", "shards", "rate_history", "failure_reasons", "status", "last_error",
    }  # fmt: skip
    assert document["run_id"] == run_id
    assert document["failures"] == 3
    assert document["failure_reasons"] == [
        {"reason": "400 no", "count": 2},
        {"reason": "403 nope", "count": 1},
    ]
    last = document["rate_history"][-1]
    assert set(last) == {"at", "rate", "allowed", "targets", "held"}
    assert (last["rate"], last["allowed"], last["held"]) == (0.0, 350.0, ["health"])
    assert set(document["shards"][0]) == {"id", "start", "limit", "names", "done", "targets_done"}


def test_status_of_a_state_without_a_run(tmp_path):
    """A state made but holding no run yet (killed while reading names): says so."""
    state = tmp_path / "state.sqlite"
    StateStore.open(state).close()
    shown = invoke("status", "--state", str(state))
    assert shown.exit_code == 0
    assert "no run recorded yet" in shown.stdout
    document = json.loads(invoke("status", "--state", str(state), "--json").stdout)
    assert (document["run"], document["run_id"], document["rate_history"]) == (None, None, [])


def test_status_says_where_the_run_stands(tmp_path):
    """done (no ETA), failed (finished with failures), running and paused (a run holds the
    lock; paused when its last rate point was held), stopped (resumable): text and JSON."""
    state, result = make_run(tmp_path)
    assert result.exit_code == 0, result.output

    def now() -> tuple[str, dict]:
        text = invoke("status", "--state", str(state))
        assert text.exit_code == 0, text.output
        return text.stdout, json.loads(invoke("status", "--state", str(state), "--json").stdout)

    with StateStore.open(state) as store:
        store.commit([], status={"eta_s": "42.0", "rate": "10.0"})  # stale figures of the end
    text, document = now()
    assert document["status"] == "done"
    assert document["eta_s"] is None
    assert "DONE: 3/3 shards done" in text
    assert "ETA" not in text
    with StateStore.open(state) as store:
        store.commit([], [Failure(target="k/x", kind=TargetKind.KEY, shard_id=0, reason="no")])
    assert now()[1]["status"] == "failed"
    with StateStore.open(state) as store:  # a run holds the lock
        store.commit([], history=[RatePoint(rate=5.0, allowed=5.0, targets=1)])
        text, document = now()
        assert document["status"] == "running"
        assert document["eta_s"] == 42.0
        assert "RUNNING: " in text
        assert "ETA 42.0 s" in text
        store.commit([], history=[RatePoint(rate=0.0, allowed=5.0, targets=1, held=("operator",))])
        assert now()[1]["status"] == "paused"
    with StateStore.open(state) as store:
        store.commit([ShardProgress(shard_id=0, cursor="k", done=False, targets_done=3)])
    text, document = now()
    assert document["status"] == "stopped"
    assert "STOPPED: 2/3 shards done" in text
    assert "--resume" in text


def test_status_of_many_shards_fits_one_screen(tmp_path):
    """A run stopped early over 200 shards: the shards being purged, a few rows; the
    waiting ones counted in the title, never listed one a line."""
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"n{i:04d}" for i in range(400)) + "\n")
    state = tmp_path / "state.sqlite"
    started = invoke(
        "run", str(names), "--provider", "null", "--key-template", "k/{name}",
        "--state", str(state), "--rate", "inf", "--shards", "200", "--yes",
    )  # fmt: skip
    assert started.exit_code == 0, started.output
    with StateStore.open(state) as store:
        store.commit(
            [ShardProgress(shard_id=i, done=False, cursor=None, targets_done=0) for i in range(150)]
            + [
                ShardProgress(shard_id=i, done=False, cursor="x", targets_done=1)
                for i in range(150, 160)
            ]
        )
    text = invoke("status", "--state", str(state)).stdout
    assert "shards not done: 10 begun, 150 waiting (40 done, folded)" in text
    assert "... 2 more" in text
    assert len(text.splitlines()) <= 30, text
