"""SIGKILL a real ``purger run`` at random moments and resume it: nothing is lost, and what
is purged twice is bounded by the batches that can be in flight at each kill, at a high
commit rate too. A full disk under the state stops the run in one line, and it resumes
once there is room.

The cache is a small HTTP server on loopback that speaks the Varnish xkey contract and
counts every key it is sent (``tests/e2e/recording.py``).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.recording import RecordingCache

pytestmark = pytest.mark.e2e

NAMES = 12_000
CONCURRENCY = 2
MAX_KEYS_PER_BATCH = 256  # the varnish provider's cap
KILLS = 4


def purger_run(
    names: Path,
    state: Path,
    recording_cache: RecordingCache,
    *,
    resume: bool,
    template: tuple[str, str] = ("--key-template", "project/{name}"),
    concurrency: int = CONCURRENCY,
    rate: str = "6000",
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
        *template,
        "--state",
        str(state),
        "--rate",
        rate,
        "--concurrency",
        str(concurrency),
        "--workers",
        "4",
        "--yes",
        *(["--resume-or-start"] if resume else []),
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
        # Killed before it recorded its run, a run has nothing to resume: it starts again.
        command = purger_run(names, state, recording_cache, resume=True)
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
    # A call's slot is free only once its answer is committed: at a kill, at most the
    # concurrency cap of calls are sent or answered and not yet in the state file.
    bound = kills * CONCURRENCY * MAX_KEYS_PER_BATCH
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


# ``purger`` with the null provider purging one URL per call, at once, each target written
# to a file (one write(2) per answer: it survives a SIGKILL) before the answer returns: as
# many answers a second as the engine can take, far more than commits.
RECORDING_NULL = """
import os, sys
from purger.model import BatchResult
from purger.providers import null
record = os.open(sys.argv.pop(1), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
made = null.NullProvider.__init__
def one_per_call(self, *, max_targets=1, **options):
    made(self, max_targets=1, **options)
async def purge(self, batch):
    os.write(record, "".join(t + "\\n" for t in batch.targets).encode())
    return BatchResult(purged=len(batch))
null.NullProvider.__init__ = one_per_call
null.NullProvider.purge = purge
from purger.cli import main
sys.argv = ["purger", *sys.argv[1:]]
main()
"""


def test_sigkill_at_a_high_commit_rate_redoes_at_most_the_calls_in_flight(tmp_path):
    """One URL per call, 16 calls at once, answered at once (commits as fast as the disk
    syncs): killed at random moments, each resume sends again at most the 16 calls whose
    answers were not committed, however far the checkpoint writer would trail them."""
    urls = 20_000
    concurrency = 16
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"pkg{i:05d}" for i in range(urls)) + "\n")
    state = tmp_path / "state.sqlite"
    record = tmp_path / "purged.txt"
    command = [
        sys.executable, "-c", RECORDING_NULL, str(record), "run", str(names),
        "--provider", "null", "--url-template", "http://files.example/{name}",
        "--state", str(state), "--rate", "inf", "--concurrency", str(concurrency),
        "--workers", "4", "--yes", "--resume-or-start",
    ]  # fmt: skip
    rnd = random.Random(20261202)
    kills = 0
    for _ in range(3):
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        before = record.stat().st_size if record.exists() else 0
        deadline = time.monotonic() + 60
        while (record.stat().st_size if record.exists() else 0) == before:
            assert process.poll() is None, process.communicate()[1].decode()
            assert time.monotonic() < deadline, "no purge within 60 s"
            time.sleep(0.01)
        time.sleep(rnd.uniform(0.2, 0.5))
        if process.poll() is None:
            process.kill()
            kills += 1
        process.communicate(timeout=30)
    finished = subprocess.run(command, capture_output=True, timeout=300, check=False)
    assert finished.returncode == 0, finished.stderr.decode()

    purged = Counter(record.read_text().splitlines())
    assert set(purged) == {f"http://files.example/pkg{i:05d}" for i in range(urls)}
    twice = sum(count - 1 for count in purged.values())
    assert kills >= 2, "the run finished before it could be killed: make it longer"
    assert twice <= kills * concurrency, f"{twice} URLs purged again after {kills} kills"


MOUNT = shutil.which("mount") or "/bin/mount"
UMOUNT = shutil.which("umount") or "/bin/umount"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 320 KiB tmpfs: room for a state, not for its WAL to grow for long. Needs the right
    to mount (root in the container and CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        [MOUNT, "-t", "tmpfs", "-o", "size=320k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        gone = subprocess.run([UMOUNT, str(mount)], capture_output=True, check=False)
        assert gone.returncode == 0, gone.stderr.decode()


def test_a_full_disk_stops_in_one_line_and_the_run_resumes_once_there_is_room(
    tmp_path, recording_cache, small_disk
):
    """The state's disk fills mid-run: exit 3 at once, one line naming the file and the
    reason, no traceback; with room again, --resume finishes and nothing is missed, nor
    sent again beyond the calls in flight."""
    urls = 6_000
    concurrency = 8
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"pkg{i:05d}" for i in range(urls)) + "\n")
    state = small_disk / "state.sqlite"
    command = purger_run(
        names,
        state,
        recording_cache,
        resume=True,
        template=("--url-template", "http://files.example/{name}"),
        concurrency=concurrency,
        rate="inf",
    )
    full = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert full.returncode == 3, full.stderr
    assert full.stderr.splitlines()[-1] == (
        f"purger: error: {state}: cannot write the state (No space left on device); "
        "stopped, nothing is lost: free space, then --resume"
    )
    assert "Traceback" not in full.stderr
    assert 0 < recording_cache.total() < urls

    subprocess.run([MOUNT, "-o", "remount,size=16m", str(small_disk)], check=True)
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert set(recording_cache.purged) == {f"http://files.example/pkg{i:05d}" for i in range(urls)}
    twice = sum(count - 1 for count in recording_cache.purged.values())
    assert twice <= concurrency


def fill(path: Path) -> None:
    """Write to ``path`` until the disk refuses."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    finally:
        os.close(fd)


def test_a_full_disk_at_start_is_one_line_exit_4_and_no_state(
    tmp_path, recording_cache, small_disk
):
    """No room even for the lock file's pid: exit 4 (could not start), one line naming the
    file and the reason, nothing sent, no state file."""
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"pkg{i:05d}" for i in range(100)) + "\n")
    with pytest.raises(OSError, match="No space left on device"):
        fill(small_disk / "filler")
    state = small_disk / "state.sqlite"
    result = subprocess.run(
        purger_run(names, state, recording_cache, resume=False),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 4, result.stderr
    assert result.stderr.splitlines() == [
        f"purger: cannot start: {state}.lock: cannot write the state (No space left on device);"
        " nothing was sent: free space, then run again"
    ]
    assert recording_cache.total() == 0
    assert not state.exists()
