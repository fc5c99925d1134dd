"""purger: a rate-limited, sharded mass cache-purge orchestrator.

The public API is what ``__all__`` lists; everything else may change between versions.
From Python (a deploy script, a Celery task): read names (:func:`read_records`,
:func:`build_name_set`), plan them (:func:`make_plan`), estimate (:func:`estimate_purge`),
purge (:func:`purge`) and read the state back (:func:`read_state`). docs/api.md has an
example; :class:`SimulatedCDN` lets it run offline.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

# Set before the imports below: launch/ reads it while purger is still being imported.
try:
    __version__ = version("purger")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from purger.engine.run import RunOutcome, RunStatistics, RunStatus
from purger.errors import InputError, PurgerError, UnavailableError, UsageError
from purger.launch.api import PurgeResult, estimate_purge, purge, read_state
from purger.launch.forecast import Forecast
from purger.names.nameset import (
    NameSet,
    Normalization,
    WeightSpec,
    WeightTransform,
    build_name_set,
    normalize_name,
)
from purger.names.sources import (
    NamesSource,
    SourceFormat,
    fetch_simple_index,
    read_records,
)
from purger.planning.document import plan_from_json, plan_to_json, read_plan, write_plan
from purger.planning.plan import (
    Comparison,
    Plan,
    PlanSettings,
    Shard,
    compare_first_letter,
    make_plan,
)
from purger.providers import ProviderOptions
from purger.sim.cdn import SimConfig, SimulatedCDN
from purger.sim.virtual_time import run_in_virtual_time

__all__ = [
    "Comparison",
    "Forecast",
    "InputError",
    "NameSet",
    "NamesSource",
    "Normalization",
    "Plan",
    "PlanSettings",
    "ProviderOptions",
    "PurgeResult",
    "PurgerError",
    "RunOutcome",
    "RunStatistics",
    "RunStatus",
    "Shard",
    "SimConfig",
    "SimulatedCDN",
    "SourceFormat",
    "UnavailableError",
    "UsageError",
    "WeightSpec",
    "WeightTransform",
    "__version__",
    "build_name_set",
    "compare_first_letter",
    "estimate_purge",
    "fetch_simple_index",
    "make_plan",
    "normalize_name",
    "plan_from_json",
    "plan_to_json",
    "purge",
    "read_plan",
    "read_records",
    "read_state",
    "run_in_virtual_time",
    "write_plan",
]
