"""The property tests pass on any machine, every time: no deadline, a reproducible CI
profile, and first draws that do not wait for Hypothesis to build Unicode tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from tests.conftest import hypothesis_profile

ROOT = Path(__file__).resolve().parent.parent


def test_no_property_test_fails_on_time():
    """A loaded machine makes examples slow, not wrong: the profile in force has no deadline."""
    assert settings.default.deadline is None
    assert settings.get_profile("default").deadline is None


@pytest.mark.parametrize(
    ("environ", "profile"),
    [
        ({}, "default"),
        ({"CI": "true"}, "ci"),
        ({"CI": "1"}, "ci"),
        ({"CI": "false"}, "default"),
        ({"CI": "true", "HYPOTHESIS_PROFILE": "default"}, "default"),
        ({"HYPOTHESIS_PROFILE": "ci"}, "ci"),
    ],
)
def test_ci_runs_the_reproducible_profile(environ, profile):
    """CI runners set CI; HYPOTHESIS_PROFILE overrides either way."""
    assert hypothesis_profile(environ) == profile


def test_the_ci_profile_tests_the_same_examples_every_run():
    ci = settings.get_profile("ci")
    assert ci.derandomize
    assert ci.database is None
    assert ci.deadline is None


def test_the_job_round_trip_draws_without_building_a_utf8_table():
    """On a fresh clone Hypothesis builds its UTF-8 table (over a million characters) the first
    time a strategy needs it; the job strategies do not, so their first draw is cheap. Run in a
    new process: a strategy already built by another test would hide the lookup."""
    script = (
        "import hypothesis.internal.charmap as charmap\n"
        "def refuse(codec):\n"
        "    raise AssertionError(f'built the {codec} table')\n"
        "charmap.intervals_from_codec = refuse\n"
        "from hypothesis import find, settings\n"
        "from tests.config.test_config_file import _jobs\n"
        "find(_jobs(), lambda job: len(job) >= 5, settings=settings(database=None))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
