"""A dead log reader must not kill a purge: `purger run --log-format json | head -1`
closes the pipe early; the run goes on to the end without its log, says so once on
stderr, and exits as it would have (a real pipe, a real process)."""

from __future__ import annotations

import json
import subprocess
import sys

from purger.state.sqlite import StateStore


def test_the_run_goes_on_when_its_json_reader_closes_the_pipe(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"n{i:03d}" for i in range(300)) + "\n")
    state = tmp_path / "s.sqlite"
    command = [
        sys.executable, "-m", "purger", "run", str(names), "--provider", "null",
        "--key-template", "k/{name}", "--state", str(state), "--yes",
        "--rate", "200", "--log-format", "json", "--progress-interval", "0.1",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stderr is not None
    first = json.loads(process.stdout.readline())
    assert first["event"] == "start"
    process.stdout.close()  # as head -1 does: the reader goes away while the run goes on
    errors = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=120) == 0, errors
    assert "Traceback" not in errors
    assert errors.splitlines() == [
        "purger: warning: stdout was closed (the JSON log's reader went away): the run goes "
        "on without its log; purger status --state FILE shows its progress"
    ]
    with StateStore.open_readonly(state) as store:
        summary = store.summary()
    assert summary.shards_done == summary.shards
    assert summary.targets_done == 300
