"""purger: a rate-limited, sharded mass cache-purge orchestrator.

The public API is what ``__all__`` lists; everything else may change between versions.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from purger.errors import InputError, PurgerError, UnavailableError, UsageError
from purger.names.nameset import (
    NameSet,
    Normalization,
    WeightSpec,
    WeightTransform,
    build_name_set,
    normalize_name,
)
from purger.names.sources import NamesSource, SourceFormat, fetch_simple_index, read_records
from purger.planning.document import plan_from_json, plan_to_json, read_plan, write_plan
from purger.planning.plan import (
    Comparison,
    Plan,
    PlanSettings,
    Shard,
    compare_first_letter,
    make_plan,
)

try:
    __version__ = version("purger")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Comparison",
    "InputError",
    "NameSet",
    "NamesSource",
    "Normalization",
    "Plan",
    "PlanSettings",
    "PurgerError",
    "Shard",
    "SourceFormat",
    "UnavailableError",
    "UsageError",
    "WeightSpec",
    "WeightTransform",
    "__version__",
    "build_name_set",
    "compare_first_letter",
    "fetch_simple_index",
    "make_plan",
    "normalize_name",
    "plan_from_json",
    "plan_to_json",
    "read_plan",
    "read_records",
    "write_plan",
]
