"""SIGKILL a real ``purger run`` at random moments and resume it: nothing is lost, and what
is purged twice is bounded by the batches that can be in flight at each kill.

The cache is a small HTTP server on loopback that speaks the Varnish xkey contract and
counts every key it is sent (``tests/e2e/recording.py``).
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.recording import RecordingCache

pytestmark = pytest.mark.e2e

NAMES = 12_000
CONCURRENCY = 2
MAX_KEYS_PER_BATCH = 256  # the varnish provider's cap
KILLS = 4


def purger_run(
    names: Path, state: Path, recording_cache: RecordingCache, *, resume: bool
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "purger",
        "run",
        str(names),
        "--provider",
        "varnish",
        "--endpoint",
        recording_cache.url,
        "--key-template",
        "project/{name}",
        "--state",
        str(state),
        "--rate",
        "6000",
        "--concurrency",
        str(CONCURRENCY),
        "--workers",
        "4",
        "--yes",
        *(["--resume"] if resume else []),
    ]


def test_sigkill_and_resume_loses_nothing(tmp_path, recording_cache):
    """Killed four times at random moments, resumed each time: every key is purged at least
    once, and the keys purged twice fit in the batches that could be in flight at a kill."""
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"pkg{i:05d}" for i in range(NAMES)) + "\n")
    state = tmp_path / "state.sqlite"
    rnd = random.Random(20220610)
    kills = 0
    for attempt in range(KILLS + 1):
        # Killed before it created its state, a run has nothing to resume: start it again.
        command = purger_run(names, state, recording_cache, resume=state.exists())
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if attempt < KILLS:
            time.sleep(rnd.uniform(0.6, 1.4))
            if process.poll() is None:
                process.kill()
                kills += 1
            process.communicate(timeout=30)
            continue
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()

    expected = {f"project/pkg{i:05d}" for i in range(NAMES)}
    assert set(recording_cache.purged) == expected  # nothing missed, nothing extra
    twice = sum(count - 1 for count in recording_cache.purged.values())
    # In flight at a kill: the calls under the concurrency cap, plus one batch whose
    # confirmation had not reached the state file yet.
    bound = kills * (CONCURRENCY + 1) * MAX_KEYS_PER_BATCH
    assert twice <= bound, f"{twice} keys purged again after {kills} kills (bound {bound})"
    assert kills >= 2, "the run finished before it could be killed: make it longer"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_cleanly_with_exit_3_and_resume_finishes(tmp_path, recording_cache, signum):
    """SIGTERM or Ctrl-C: no new batches, checkpoint, exit 3; the resume purges the rest
    and nothing is purged twice (the stop waited for the calls in flight)."""
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"pkg{i:05d}" for i in range(NAMES)) + "\n")
    state = tmp_path / "state.sqlite"
    process = subprocess.Popen(
        purger_run(names, state, recording_cache, resume=False),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Signal once purges are going: a process still importing would die of the signal.
    deadline = time.monotonic() + 60
    while recording_cache.total() == 0 and process.poll() is None:
        assert time.monotonic() < deadline, "no purge within 60 s"
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before the signal: make it longer"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 3, stderr.decode()
    assert f"{signal.Signals(signum).name} received" in stderr.decode()
    assert 0 < sum(recording_cache.purged.values()) < NAMES

    resumed = subprocess.run(
        purger_run(names, state, recording_cache, resume=True),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert recording_cache.purged == Counter({f"project/pkg{i:05d}": 1 for i in range(NAMES)})
