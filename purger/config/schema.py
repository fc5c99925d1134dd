"""The job file's schema: every key, its type and bounds, the ``purger run`` flag it
stands for and its ``PURGER_*`` variable; and how a value is read from TOML or from a
variable's text and checked. ``config.py`` reads whole files and environments with it;
``docs/config.md`` documents it (a test keeps the two in step).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

from purger.errors import UsageError
from purger.model import http_url_problem, redact_url
from purger.names.nameset import Normalization, WeightTransform
from purger.names.sources import SourceFormat
from purger.providers import PROVIDER_NAMES

__all__ = [
    "ENV_PREFIX",
    "MAX_CONCURRENCY",
    "MAX_WORKERS",
    "MODEL_SETTINGS",
    "SETTINGS",
    "Setting",
    "Value",
    "check_value",
    "from_flag",
    "from_text",
    "from_toml",
    "setting_of",
    "shown",
]

Value: TypeAlias = str | int | float | bool | Path | tuple[str, ...]
Kind: TypeAlias = Literal["str", "int", "float", "bool", "path", "list", "url", "urls"]

ENV_PREFIX: Final = "PURGER_"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
_SHOWN_MAX: Final = 60
#: Calls in flight at most. Every 5 slots is an HTTP client of its own, whose TLS context
#: takes about 60 ms to build on a loaded machine (100 clients: 6 s, measured), so 100,000
#: meant minutes of silent start-up. 256 starts in ~3 s and, at 0.25 s a call, allows about
#: 1,000 calls/s: more than any supported provider accepts (shared/reference/cdn-apis.md).
MAX_CONCURRENCY: Final = 256
#: Where a path setting may be a URL instead (``run.state``: a PostgreSQL state).
_URL_PATHS: Final = ("postgresql://", "postgres://")
#: Shards purged at once at most. A worker beyond the calls in flight never has a call of
#: its own, and planning for 10**20 workers (8 shards each) never finished.
MAX_WORKERS: Final = MAX_CONCURRENCY


@dataclass(frozen=True, slots=True, kw_only=True)
class Setting:
    """One key of the job file: its type, its bounds, and the ``purger run`` flag it sets.

    ``minimum`` is inclusive, ``above`` exclusive; ``inf`` is accepted only where
    ``infinite`` says so (``--rate inf`` means "the provider's limits only").
    """

    key: str
    kind: Kind
    flag: str
    meaning: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    above: float | None = None
    maximum: float | None = None
    infinite: bool = False

    @property
    def variable(self) -> str:
        """``pacing.max_rate`` -> ``PURGER_PACING_MAX_RATE``: one rule, both ways."""
        return ENV_PREFIX + self.key.upper().replace(".", "_")


def _choices(enum: Any) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


# The one schema: file keys, variables, flags, checks and docs/config.md all follow it.
SETTINGS: Final[tuple[Setting, ...]] = (
    Setting(key="names.source", kind="str", flag="SOURCE | --names-url | --names",
            meaning="names file (text, .tsv, .csv, .gz), '-' for stdin, or a PEP 691 index URL"),
    Setting(key="names.sample", kind="bool", flag="--sample",
            meaning="use the bundled sample of real PyPI names"),
    Setting(key="names.format", kind="str", flag="--format", choices=_choices(SourceFormat),
            meaning="names file layout; auto reads the suffix"),
    Setting(key="names.name_column", kind="str", flag="--name-column",
            meaning="table column holding the names"),
    Setting(key="names.weight_column", kind="str", flag="--weight-column",
            meaning="table column holding weights"),
    Setting(key="names.weight_transform", kind="str", flag="--weight-transform",
            choices=_choices(WeightTransform), meaning="zipf-rank: the column is a rank"),
    Setting(key="names.normalize", kind="str", flag="--normalize",
            choices=_choices(Normalization), meaning="pep503 names, or keys as they are"),
    Setting(key="names.strict", kind="bool", flag="--strict",
            meaning="an invalid name is an error instead of being skipped"),
    Setting(key="plan.file", kind="path", flag="PLAN_OR_NAMES | plan --out",
            meaning="plan document: purger plan writes it, run and estimate read it"),
    Setting(key="plan.workers", kind="int", flag="--workers", minimum=1, maximum=MAX_WORKERS,
            meaning="shards purged at once, heaviest first"),
    Setting(key="plan.shards", kind="int", flag="--shards", minimum=1,
            meaning="about this many shards (default 8 per worker)"),
    Setting(key="plan.max_weight", kind="float", flag="--max-weight", above=0,
            meaning="instead of shards: no shard heavier than this"),
    Setting(key="targets.key_templates", kind="list", flag="--key-template",
            meaning="surrogate keys per name, e.g. project/{name}"),
    Setting(key="targets.url_templates", kind="list", flag="--url-template",
            meaning="URLs per name, e.g. https://pypi.org/pypi/{raw}/json"),
    Setting(key="provider.name", kind="str", flag="--provider", choices=PROVIDER_NAMES,
            meaning="the CDN API"),
    Setting(key="provider.hard", kind="bool", flag="--hard",
            meaning="hard purge (evict) instead of the default soft purge"),
    Setting(key="provider.api_base", kind="url", flag="--api-base",
            meaning="send API calls here (a proxy or a fake) instead"),
    Setting(key="provider.timeout", kind="float", flag="--timeout", above=0,
            meaning="seconds for each API call"),
    Setting(key="provider.token_file", kind="path", flag="--token-file",
            meaning="file holding the Fastly or Cloudflare API token"),
    Setting(key="provider.service_id", kind="str", flag="--service-id",
            meaning="Fastly service"),
    Setting(key="provider.zone_id", kind="str", flag="--zone-id", meaning="Cloudflare zone"),
    Setting(key="provider.files_cap", kind="int", flag="--files-cap", minimum=1, maximum=500,
            meaning="Cloudflare URLs per call: 30, 100 or 500"),
    Setting(key="provider.edgerc", kind="path", flag="--edgerc",
            meaning="Akamai credentials file"),
    Setting(key="provider.edgerc_section", kind="str", flag="--edgerc-section",
            meaning="section of the .edgerc file"),
    Setting(key="provider.network", kind="str", flag="--network",
            choices=("staging", "production"), meaning="Akamai network"),
    Setting(key="provider.akamai_action", kind="str", flag="--akamai-action",
            choices=("invalidate", "delete"), meaning="Akamai: invalidate (soft) or delete"),
    Setting(key="provider.akamai_key_type", kind="str", flag="--akamai-key-type",
            choices=("tag", "cpcode"), meaning="Akamai keys are tags or cpcodes"),
    Setting(key="provider.endpoints", kind="urls", flag="--endpoint",
            meaning="Varnish nodes, http://host:port each"),
    Setting(key="provider.tiers", kind="list", flag="--tier",
            meaning="Varnish tiers NAME=URL[,URL], origin outwards, purged in order"),
    Setting(key="provider.key_header", kind="str", flag="--key-header",
            meaning="Varnish header for keys"),
    Setting(key="provider.repurge_after", kind="float", flag="--repurge-after", above=0,
            meaning="purge each batch again this many seconds later (internal tiers)"),
    Setting(key="pacing.max_rate", kind="float", flag="--rate", above=0, infinite=True,
            meaning="targets per second at most (inf: the provider's limits only)"),
    Setting(key="pacing.concurrency", kind="int", flag="--concurrency", minimum=1,
            maximum=MAX_CONCURRENCY, meaning="API calls in flight at most"),
    Setting(key="pacing.min_rate", kind="float", flag="--min-rate", above=0,
            meaning="with signals: never slower than this"),
    Setting(key="pacing.initial_rate", kind="float", flag="--initial-rate", above=0,
            meaning="with signals: start here"),
    Setting(key="pacing.feedback_delay", kind="float", flag="--feedback-delay", above=0,
            meaning="with signals: seconds from a purge to its effect on the metrics"),
    Setting(key="pacing.tick", kind="float", flag="--tick", above=0,
            meaning="with signals: seconds between health readings"),
    Setting(key="run.state", kind="path", flag="--state",
            meaning="SQLite file recording progress, or a postgresql:// URL (no password)"),
    Setting(key="run.name", kind="str", flag="--run-name",
            meaning="with a postgresql:// state: the run (name or id) in the database"),
    Setting(key="run.state_password_file", kind="path", flag="--state-password-file",
            meaning="with a postgresql:// state: a file holding the password"),
    Setting(key="run.lease_ttl", kind="float", flag="--lease-ttl", above=0,
            meaning="with a postgresql:// state: seconds a runner holds a shard unheard"),
    Setting(key="run.resume_or_start", kind="bool", flag="--resume-or-start",
            meaning="continue the run in the state file if it holds one, else start it"),
    Setting(key="run.max_duration", kind="float", flag="--max-duration", above=0,
            meaning="stop cleanly (exit 3, resumable) after this many seconds"),
    Setting(key="run.drain_timeout", kind="float", flag="--drain-timeout", minimum=0,
            meaning="on a stop, seconds calls in flight may take to finish"),
    Setting(key="run.log_format", kind="str", flag="--log-format", choices=("text", "json"),
            meaning="text: live view or progress lines; json: one JSON object a line"),
    Setting(key="run.progress_interval", kind="float", flag="--progress-interval", above=0,
            meaning="seconds between progress lines or JSON progress events"),
    Setting(key="metrics.port", kind="int", flag="--metrics-port", minimum=0, maximum=65535,
            meaning="serve purger's Prometheus metrics on this port while it runs (0: any)"),
    Setting(key="metrics.address", kind="str", flag="--metrics-address",
            meaning="address the metrics page listens on (default 127.0.0.1)"),
    Setting(key="metrics.linger", kind="float", flag="--metrics-linger", minimum=0,
            maximum=3600, meaning="seconds the metrics page serves final figures after the run"),
    Setting(key="metrics.textfile", kind="path", flag="--metrics-textfile",
            meaning="write the metrics here atomically every tick, for node_exporter"),
    Setting(key="metrics.pushgateway", kind="url", flag="--metrics-pushgateway",
            meaning="push the metrics to this Pushgateway every tick and at the end"),
)  # fmt: skip


#: ``purger estimate``'s model of the API and the origin: flags only, never in a job file
#: or a variable (docs/config.md says why), but checked by the same rules.
MODEL_SETTINGS: Final[tuple[Setting, ...]] = (
    Setting(key="estimate.api_latency", kind="float", flag="--api-latency", above=0,
            meaning="seconds per API call"),
    Setting(key="estimate.origin_capacity", kind="float", flag="--origin-capacity", above=0,
            meaning="spare origin fetches/s the refill may use"),
    Setting(key="estimate.traffic", kind="float", flag="--traffic", above=0,
            meaning="client requests/s for these names"),
    Setting(key="estimate.soft_cost", kind="float", flag="--soft-cost", minimum=0, maximum=1,
            meaning="origin cost of a soft-purged object, as a share of a fetch"),
    Setting(key="estimate.seed", kind="int", flag="--seed", minimum=0,
            meaning="with --simulate: the random seed"),
)  # fmt: skip

_BY_KEY: Final = {s.key: s for s in (*SETTINGS, *MODEL_SETTINGS)}


def setting_of(key: str) -> Setting:
    """The setting for a dotted key; ``KeyError`` for a key the schema does not have."""
    return _BY_KEY[key]


def from_toml(setting: Setting, raw: object, base: Path) -> tuple[Value | None, str | None]:
    """A TOML value as ``setting`` wants it, or the problem; strict about types."""
    value: Value
    match setting.kind:
        case "int" if isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        case "float" if isinstance(raw, int | float) and not isinstance(raw, bool):
            value = raw  # made a float once checked, so that a message shows it as written
        case "bool" if isinstance(raw, bool):
            value = raw
        case "str" | "url" if isinstance(raw, str):
            value = raw
        case "path" if isinstance(raw, str) and raw.startswith(_URL_PATHS):
            value = raw  # a database, not a file (``run.state``)
        case "path" if isinstance(raw, str) and raw:
            value = base / Path(raw).expanduser()  # absolute stays absolute
        case "list" | "urls" if isinstance(raw, list) and all(isinstance(i, str) for i in raw):
            value = tuple(raw)
        case _:
            return None, f"must be {_describe(setting)}, got {shown(raw)}"
    problem = check_value(setting, value)
    if isinstance(value, int) and setting.kind == "float":
        value = float(value)
    return value, problem


def from_text(setting: Setting, text: str) -> tuple[Value | None, str | None]:
    """A variable's text as ``setting`` wants it; empty clears the setting."""
    if not text.strip():
        return None, None
    value: Value
    match setting.kind:
        case "int":
            try:
                value = int(text.strip(), 10)
            except ValueError:
                return None, f"must be an integer, got {shown(text)}"
        case "float":
            try:
                # An integer stays one until checked, so that a message shows "-1" as the
                # job file's -1 is shown, not "-1.0".
                number = float(text)
                value = int(text, 10) if _is_integer(text) and math.isfinite(number) else number
            except ValueError:
                return None, f"must be a number, got {shown(text)}"
        case "bool":
            if text.strip().lower() not in _TRUE | _FALSE:
                return None, f"must be true or false (or 1, 0, yes, no), got {shown(text)}"
            value = text.strip().lower() in _TRUE
        case "path" if text.startswith(_URL_PATHS):
            value = text  # a database, not a file (``run.state``)
        case "path":
            value = Path(text).expanduser()  # like a flag: relative to the working directory
        case "list" | "urls":
            value = tuple(text.split())  # keys and URLs hold no white space
        case "str" | "url":
            value = text
    problem = check_value(setting, value)
    if isinstance(value, int) and not isinstance(value, bool) and setting.kind == "float":
        value = float(value)
    return value, problem


def from_flag(setting: Setting, text: str | None) -> Value | None:
    """A flag's text read and checked exactly as its ``PURGER_*`` variable's text is, so
    that both give the same message (after the flag's name instead of the variable's).
    ``None`` (not given) stays ``None``; raises :class:`UsageError` naming the flag."""
    if text is None:
        return None
    if not text.strip():
        raise UsageError(f"{setting.flag}: must not be empty")
    value, problem = from_text(setting, text)
    if problem is not None:
        raise UsageError(f"{setting.flag}: {problem}")
    return value


def _is_integer(text: str) -> bool:
    body = text.strip().removeprefix("-").removeprefix("+")
    return body.isascii() and body.isdigit()


def check_value(setting: Setting, value: Value) -> str | None:
    """The problem with a well-typed value, if any: bounds, choices, URLs, emptiness."""
    if isinstance(value, float) and (math.isnan(value) or (math.isinf(value) and value < 0)):
        return f"must be a number{_lower_bound(setting)}, got {shown(value)}"
    if isinstance(value, float) and math.isinf(value) and not setting.infinite:
        return f"must be a finite number, got {shown(value)}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if setting.minimum is not None and value < setting.minimum:
            return f"must be >= {setting.minimum:g}, got {shown(value)}"
        if setting.above is not None and not value > setting.above:
            return f"must be > {setting.above:g}, got {shown(value)}"
        if setting.maximum is not None and value > setting.maximum:
            return f"must be <= {setting.maximum:g}, got {shown(value)}"
    if isinstance(value, str):
        if not value.strip():
            return "must not be empty"
        if setting.choices and value not in setting.choices:
            return f"must be one of {', '.join(setting.choices)}, got {shown(value)}"
        if setting.kind == "url" and not _is_url(value):
            return f"must be an http:// or https:// URL, got {shown(redact_url(value))}"
    if isinstance(value, tuple):
        if any(not item.strip() for item in value):
            return "must not hold an empty string"
        if setting.kind == "urls" and (bad := [v for v in value if not _is_url(v)]):
            return f"must be http:// or https:// URLs, got {shown(redact_url(bad[0]))}"
    return None


def _lower_bound(setting: Setting) -> str:
    """`` > 0`` or `` >= 1``: what a number below every number (NaN, -inf) misses."""
    if setting.above is not None:
        return f" > {setting.above:g}"
    if setting.minimum is not None:
        return f" >= {setting.minimum:g}"
    return ""


def _describe(setting: Setting) -> str:
    return {
        "int": "an integer",
        "float": "a number",
        "bool": "true or false",
        "str": "a string",
        "url": "a URL string",
        "path": "a path (a non-empty string)",
        "list": "a list of strings",
        "urls": "a list of URL strings",
    }[setting.kind]


def shown(value: object) -> str:
    """A value in a message: JSON-like, cut short. Only ever called for non-secret keys;
    a table is not shown at all, since a credential could sit one level down in it."""
    if isinstance(value, dict):
        return "a table"
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 3] + "..."


def _is_url(text: str) -> bool:
    return http_url_problem(text) is None
