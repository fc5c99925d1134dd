"""The operator's command line. The only place that maps errors to exit codes.

Each command lives in its own module and registers itself on :data:`app`.
"""

from __future__ import annotations

from purger.cli import config, demo, estimate, plan, probe, run, scan, state, verify
from purger.cli._app import ExitCode, app, main

__all__ = ["ExitCode", "app", "main"]

del config, demo, estimate, plan, probe, run, scan, state, verify  # imported for their commands
