"""The real terminal: ``purger run`` in a detached tmux session against a loopback cache.
Confirm with ``y``; ``p`` pauses (nothing more is sent), ``p`` resumes, ``q`` stops
gracefully (exit 3) with the terminal restored; ``--resume`` then finishes with every
target purged exactly once.

No timed asserts: every wait polls the screen, the cache or the state with a deadline.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.cluster import Missing
from tests.e2e.conftest import require
from tests.e2e.recording import RecordingCache

pytestmark = pytest.mark.e2e

NAMES = 600
RATE = 40  # one URL per call: about 15 s for the whole run, long enough to steer
DEADLINE = 60.0
#: Calls a paused run may still finish: those already in flight (the concurrency).
CONCURRENCY = 2


def wait_for(
    what: str,
    check: Callable[[], bool],
    screen: Callable[[], str] = str,
    deadline: float = DEADLINE,
) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` (and showing ``screen()``)
    after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"waited {deadline:.0f} s for {what}; the screen:\n{screen()}")
        time.sleep(0.1)


class Terminal:
    """A tmux server of the test's own (its own socket), one window running ``command``."""

    def __init__(self, socket: str, command: str, cwd: Path) -> None:
        self._tmux = ["tmux", "-L", socket]
        subprocess.run(
            [*self._tmux, "new-session", "-d", "-s", "purger", "-x", "120", "-y", "50",
             "-c", str(cwd), command],
            check=True,
        )  # fmt: skip

    def screen(self) -> str:
        shown = subprocess.run(
            [*self._tmux, "capture-pane", "-p", "-t", "purger"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return shown.stdout

    def flat(self) -> str:
        """The screen with its line breaks and runs of blanks as one space."""
        return " ".join(self.screen().split())

    def press(self, *keys: str) -> None:
        subprocess.run([*self._tmux, "send-keys", "-t", "purger", *keys], check=True)

    def close(self) -> None:
        subprocess.run([*self._tmux, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def terminal_factory(tmp_path) -> Iterator[Callable[[str], Terminal]]:
    if shutil.which("tmux") is None:
        require([Missing("tmux", "tmux")])
    made: list[Terminal] = []

    def make(command: str) -> Terminal:
        made.append(Terminal(f"purger-test-{os.getpid()}-{len(made)}", command, tmp_path))
        return made[-1]

    yield make
    for terminal in made:
        terminal.close()


def purger_run(names: Path, state: Path, cache: RecordingCache, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "purger", "run", str(names), "--provider", "varnish",
        "--endpoint", cache.url, "--url-template", "http://pkg.test/p/{name}",
        "--state", str(state), "--rate", str(RATE), "--concurrency", str(CONCURRENCY),
        "--workers", "2", "--shards", "4", *extra,
    ]  # fmt: skip


def targets_done(state: Path) -> int:
    shown = subprocess.run(
        [sys.executable, "-m", "purger", "status", "--state", str(state), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(json.loads(shown.stdout)["targets_done"])


def test_pause_resume_and_graceful_stop_from_the_keyboard(
    tmp_path, recording_cache, terminal_factory
):
    """y, p, p, q on a real terminal; then --resume finishes, each URL purged once."""
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"tty{i:04d}" for i in range(NAMES)) + "\n")
    state = tmp_path / "state.sqlite"
    code, stty = tmp_path / "code.txt", tmp_path / "stty.txt"
    # The window's own size, not one inherited from the test's environment.
    command = shlex.join(
        ["env", "-u", "COLUMNS", "-u", "LINES", *purger_run(names, state, recording_cache)]
    )
    term = terminal_factory(
        f"{command}; echo $? > {shlex.quote(str(code))}; stty -a > {shlex.quote(str(stty))}; "
        "sleep 600"  # keep the window: its last screen is read after the exit
    )

    wait_for("the confirmation", lambda: "Proceed? [y/N]" in term.flat(), term.screen)
    assert "about to purge through varnish" in term.flat()
    assert recording_cache.total() == 0, "sent before the operator said yes"
    term.press("y", "Enter")
    wait_for("the first purges", lambda: recording_cache.total() >= 20, term.screen)
    wait_for("the live view", lambda: "calls in flight" in term.flat(), term.screen)

    term.press("p")
    wait_for(
        "the pause on the screen, with no call in flight",
        lambda: "PAUSED by operator" in term.flat() and "calls in flight 0/" in term.flat(),
        term.screen,
    )
    paused_at = recording_cache.total()
    wait_for(
        "the state to hold every confirmed call",
        lambda: targets_done(state) == paused_at,
        term.screen,
    )
    time.sleep(1.0)  # at 40/s, a run that still sent would send about 40 more meanwhile
    assert recording_cache.total() == paused_at, "purges went on while paused"
    assert targets_done(state) == paused_at

    term.press("p")
    wait_for(
        "purges again after the resume",
        lambda: recording_cache.total() > paused_at + 10,
        term.screen,
    )
    assert "PAUSED by operator" not in term.flat()

    term.press("q")
    wait_for("the exit", code.exists, term.screen)
    wait_for("the exit code", lambda: code.read_text().strip() != "", term.screen)
    assert code.read_text().strip() == "3", term.screen()
    assert "stopped: stopped by the operator (q); resume with --resume" in term.flat()
    wait_for("the terminal settings", lambda: stty.exists() and stty.read_text() != "", term.screen)
    settings = stty.read_text().split()
    assert "icanon" in settings, "the terminal was left in cbreak mode"
    assert "echo" in settings, "the terminal was left without echo"
    stopped_at = recording_cache.total()
    assert stopped_at < NAMES, "the run finished before the stop: make it longer"
    assert targets_done(state) == stopped_at  # what was sent was confirmed and recorded

    resumed = subprocess.run(
        [*purger_run(names, state, recording_cache), "--resume", "--yes"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    expected = {f"http://pkg.test/p/tty{i:04d}": 1 for i in range(NAMES)}
    assert recording_cache.purged == Counter(expected)
