"""Shared fixtures: async tests run on asyncio; Hypothesis runs under one of two profiles."""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest
from hypothesis import settings

# Hypothesis times each example against a deadline and fails when it is exceeded: on a
# machine loaded by other work that measures the neighbours, not the code, and the project
# has no timed asserts. Without a deadline the draw-time health check allows 30 s instead of
# 1 s for the first examples, which also covers building Unicode tables on a fresh clone.
settings.register_profile("default", deadline=None, print_blob=True)
# CI tests the same examples on every run (derandomized, no example database), so its
# verdict depends on the code alone and a failure there reproduces with --hypothesis-profile=ci.
settings.register_profile("ci", settings.get_profile("default"), derandomize=True, database=None)


def hypothesis_profile(environ: Mapping[str, str]) -> str:
    """HYPOTHESIS_PROFILE if given, else "ci" where CI is set (as CI runners do), else default."""
    if environ.get("HYPOTHESIS_PROFILE"):
        return environ["HYPOTHESIS_PROFILE"]
    return "ci" if environ.get("CI", "").lower() in {"1", "true", "yes"} else "default"


settings.load_profile(hypothesis_profile(os.environ))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
