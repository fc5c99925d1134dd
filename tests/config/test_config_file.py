"""Job files and PURGER_* variables: every value checked and named by its dotted key or
variable, env over file, unknown keys and variables refused, secrets never read or shown."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from purger.config.job import NOT_SETTINGS, collect_job, load_signals, read_job
from purger.config.schema import SETTINGS, Setting, Value
from purger.errors import ConfigError, InputError, UsageError

SECRET = "s3cr3t-job-file-token-0123456789"  # noqa: S105 - a fake, looked for in output


def write(tmp_path: Path, text: str, name: str = "purger.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path | None, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        read_job(path, env or {})
    return list(caught.value.problems)


def test_a_full_job_file_is_read_into_its_dotted_keys(tmp_path):
    """Each table's keys land under their dotted names, typed; floats from integers too."""
    path = write(
        tmp_path,
        """
        [names]
        source = "https://pypi.org/simple/"
        strict = true
        [plan]
        workers = 16
        [targets]
        key_templates = ["project/{name}"]
        [provider]
        name = "fastly"
        service_id = "SVC"
        [pacing]
        max_rate = 2000
        concurrency = 8
        [run]
        max_duration = 3600
        """,
    )
    job = read_job(path, {})
    assert job.values == {
        "names.source": "https://pypi.org/simple/",
        "names.strict": True,
        "plan.workers": 16,
        "targets.key_templates": ("project/{name}",),
        "provider.name": "fastly",
        "provider.service_id": "SVC",
        "pacing.max_rate": 2000.0,
        "pacing.concurrency": 8,
        "run.max_duration": 3600.0,
    }
    assert isinstance(job.values["pacing.max_rate"], float)
    assert set(job.origins.values()) == {"file"}


def test_relative_paths_are_read_from_the_file_s_directory(tmp_path, monkeypatch):
    """names.source, plan.file, run.state, token_file, edgerc: against the file, not cwd;
    stdin, URLs and absolute paths stay as written."""
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(
        jobs,
        """
        [names]
        source = "data/names.txt"
        [plan]
        file = "plan.json"
        [provider]
        token_file = "../secrets/fastly.token"
        edgerc = "/etc/purger/edgerc"
        [run]
        state = "state/nightly.sqlite"
        """,
    )
    job = read_job(Path("../jobs/purger.toml"), {})
    assert Path(str(job.values["names.source"])).resolve() == jobs / "data" / "names.txt"
    assert Path(job.values["plan.file"]).resolve() == jobs / "plan.json"  # type: ignore[arg-type]
    assert Path(job.values["run.state"]).resolve() == jobs / "state/nightly.sqlite"  # type: ignore[arg-type]
    token_file = Path(job.values["provider.token_file"])  # type: ignore[arg-type]
    assert token_file.resolve() == tmp_path / "secrets" / "fastly.token"
    assert job.values["provider.edgerc"] == Path("/etc/purger/edgerc")
    for source in ("-", "https://pypi.org/simple/"):
        path.write_text(f'[names]\nsource = "{source}"\n')
        assert read_job(path, {}).values["names.source"] == source


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[pacing]\nmax_rate = 0", "pacing.max_rate: must be > 0, got 0"),
        ("[pacing]\nmax_rate = -inf", "pacing.max_rate: must be a number > 0"),
        ("[pacing]\nmax_rate = nan", "pacing.max_rate: must be a number > 0"),
        ('[pacing]\nconcurrency = "8"', 'pacing.concurrency: must be an integer, got "8"'),
        ("[pacing]\nconcurrency = 0", "pacing.concurrency: must be >= 1, got 0"),
        ("[pacing]\nconcurrency = 2.5", "pacing.concurrency: must be an integer, got 2.5"),
        ("[pacing]\ntick = true", "pacing.tick: must be a number, got true"),
        ("[pacing]\ntick = inf", "pacing.tick: must be a finite number"),
        (
            '[provider]\nname = "bunny"',
            "provider.name: must be one of akamai, cloudflare, fastly, null, varnish",
        ),
        ('[provider]\nhard = "yes"', 'provider.hard: must be true or false, got "yes"'),
        ('[provider]\napi_base = "api.fastly.com"', "provider.api_base: must be an http://"),
        ('[provider]\nendpoints = "http://a:6081"', "provider.endpoints: must be a list of URL"),
        ('[provider]\nendpoints = ["tcp://a:6081"]', "provider.endpoints: must be http://"),
        ("[provider]\nfiles_cap = 1000", "provider.files_cap: must be <= 500, got 1000"),
        ('[provider]\nservice_id = ""', "provider.service_id: must not be empty"),
        ('[names]\nformat = "xml"', "names.format: must be one of auto, text, tsv, csv"),
        ('[names]\nnormalize = "pep508"', "names.normalize: must be one of pep503, none"),
        ("[names]\nstrict = 1", "names.strict: must be true or false, got 1"),
        ('[targets]\nkey_templates = "project/{name}"', "targets.key_templates: must be a list"),
        ('[targets]\nurl_templates = [""]', "targets.url_templates: must not hold an empty"),
        ('[run]\nstate = ""', "run.state: must be a path"),
        ("[run]\ndrain_timeout = -1", "run.drain_timeout: must be >= 0, got -1"),
        ("[plan]\nmax_weight = 0.0", "plan.max_weight: must be > 0, got 0.0"),
        ("[names]\nsorce = 'x'", "names.sorce: unknown key (did you mean names.source?)"),
        ("[pacing]\nrate = 5", "pacing.rate: unknown key (did you mean pacing.max_rate?)"),
        ("[pacer]\nmax_rate = 5", "pacer: unknown table; tables: names, plan, targets"),
        ("max_rate = 5", "max_rate: unknown key (did you mean pacing.max_rate?)"),
        ("pacing = 5", "pacing: must be a table ([pacing])"),
        ('[signal]\nname = "x"', "signal: must be [[signal]] tables"),
        ("[plan]\nshards = 4\nmax_weight = 10.0", "plan.shards, plan.max_weight: give one"),
        ('[names]\nsource = "n.txt"\nsample = true', "names.source, names.sample: give one"),
    ],
)
def test_every_bad_value_is_named_by_file_and_dotted_key(tmp_path, toml, expected):
    """Type, range, choice, URL, unknown key or table, conflict: one problem naming it."""
    path = write(tmp_path, toml)
    problems = problems_of(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: ")
    assert expected in problems[0]


def test_every_problem_is_listed_not_just_the_first(tmp_path):
    """Three bad keys in the file and a bad variable: four problems; the error's one line
    says how many more there are."""
    path = write(tmp_path, "[pacing]\nmax_rate = 0\nconcurrency = 0\n[names]\nsorce = 'x'\n")
    with pytest.raises(ConfigError) as caught:
        read_job(path, {"PURGER_PLAN_WORKERS": "many"})
    assert len(caught.value.problems) == 4
    message = str(caught.value)
    assert "\n" not in message
    assert "and 3 more: purger config check lists them all" in message


def test_the_environment_overrides_the_file_and_an_empty_variable_clears_it(tmp_path):
    """PURGER_* over the file; an empty variable puts the default back; origins say which."""
    path = write(tmp_path, "[pacing]\nmax_rate = 100\nconcurrency = 4\n[plan]\nshards = 4\n")
    job = read_job(
        path,
        {"PURGER_PACING_MAX_RATE": "inf", "PURGER_PLAN_SHARDS": "", "PATH": "/usr/bin"},
    )
    assert job.values["pacing.max_rate"] == math.inf
    assert job.values["pacing.concurrency"] == 4
    assert "plan.shards" not in job.values
    assert job.origins == {
        "pacing.max_rate": "env",
        "pacing.concurrency": "file",
        "plan.shards": "env",
    }


def test_the_environment_alone_is_a_job(tmp_path):
    """No file: the variables are the job; env paths stay relative to the working directory."""
    job = read_job(
        None,
        {
            "PURGER_RUN_STATE": "state.sqlite",
            "PURGER_TARGETS_KEY_TEMPLATES": "project/{name}  all-json",
            "PURGER_PROVIDER_HARD": "Yes",
            "PURGER_PROVIDER_ENDPOINTS": "http://a:6081 http://b:6081",
        },
    )
    assert job.values == {
        "run.state": Path("state.sqlite"),
        "targets.key_templates": ("project/{name}", "all-json"),
        "provider.hard": True,
        "provider.endpoints": ("http://a:6081", "http://b:6081"),
    }


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("PURGER_PACING_CONCURRENCY", "eight", 'must be an integer, got "eight"'),
        ("PURGER_PACING_CONCURRENCY", "0", "must be >= 1, got 0"),
        ("PURGER_PACING_MAX_RATE", "fast", 'must be a number, got "fast"'),
        ("PURGER_PACING_MAX_RATE", "nan", "must be a number > 0"),
        ("PURGER_PROVIDER_HARD", "maybe", "must be true or false"),
        ("PURGER_PROVIDER_NAME", "bunny", "must be one of akamai"),
        ("PURGER_PACING_MAXRATE", "5", "unknown purger setting (did you mean PURGER_PACING_MAX_"),
        ("PURGER_RATE", "5", "unknown purger setting"),
    ],
)  # fmt: skip
def test_a_bad_variable_is_named(variable, value, expected):
    """A bad or unknown PURGER_* variable is a problem naming the variable."""
    (problem,) = problems_of(None, {variable: value})
    assert problem.startswith(f"{variable}: ")
    assert expected in problem


def test_the_test_suite_s_own_variables_and_purger_config_are_not_settings():
    """PURGER_E2E_REQUIRED, PURGER_PYPI_LIST and PURGER_CONFIG are neither read nor refused;
    variables without the prefix are none of purger's business."""
    env = dict.fromkeys(NOT_SETTINGS, "1") | {"PURGERX": "1", "MY_PURGER_RATE": "x"}
    assert read_job(None, env).values == {}
    assert {"PURGER_CONFIG", "PURGER_E2E_REQUIRED", "PURGER_PYPI_LIST"} == NOT_SETTINGS


@pytest.mark.parametrize(
    ("toml", "pointer"),
    [
        (f'[provider]\nname = "fastly"\ntoken = "{SECRET}"', "FASTLY_API_TOKEN or provider.token"),
        (f'[provider]\nname = "cloudflare"\napi_token = "{SECRET}"', "CLOUDFLARE_API_TOKEN"),
        (f'[provider]\nname = "akamai"\nclient_secret = "{SECRET}"', "provider.edgerc or the AK"),
        (f'fastly_api_token = "{SECRET}"', "CLOUDFLARE_API_TOKEN or FASTLY_API_TOKEN"),
        (f'[provider]\npassword = "{SECRET}"', "provider.token_file"),
        (f'[secrets]\nfastly = "{SECRET}"', "provider.token_file"),
    ],
)  # fmt: skip
def test_a_secret_in_the_file_is_refused_and_never_shown(tmp_path, toml, pointer):
    """A key that looks like a credential: refused, pointing to the variable or token_file,
    and its value appears in no message."""
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as caught:
        read_job(path, {})
    (problem,) = caught.value.problems
    assert "secrets are never read from a job file" in problem
    assert pointer in problem
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


def test_a_secret_one_level_down_is_not_shown_in_a_type_error(tmp_path):
    """An inline table where a string belongs is refused without showing what it holds."""
    path = write(tmp_path, f'[provider]\nservice_id = {{ token = "{SECRET}" }}\n')
    (problem,) = problems_of(path)
    assert "provider.service_id: must be a string, got a table" in problem
    assert SECRET not in problem


def test_a_secret_looking_variable_is_refused_and_never_shown():
    """PURGER_PROVIDER_TOKEN is not a setting: say where the token goes, not what it is."""
    (problem,) = problems_of(None, {"PURGER_PROVIDER_TOKEN": SECRET})
    assert problem.startswith("PURGER_PROVIDER_TOKEN: not a purger setting")
    assert "FASTLY_API_TOKEN" in problem
    assert SECRET not in problem


def test_a_job_holds_no_secret_in_its_repr(tmp_path):
    """The token file's path is a value; the token in it is never read by the loader."""
    token = write(tmp_path, SECRET, "fastly.token")
    path = write(tmp_path, f'[provider]\nname = "fastly"\ntoken_file = "{token.name}"\n')
    job = read_job(path, {"FASTLY_API_TOKEN": SECRET})
    assert SECRET not in repr(job)
    assert job.values["provider.token_file"] == token


def test_unreadable_and_invalid_toml_are_input_errors(tmp_path):
    """No file, or not TOML: one InputError naming the file (nothing to go on with)."""
    with pytest.raises(InputError, match=r"missing\.toml: cannot read"):
        read_job(tmp_path / "missing.toml", {})
    with pytest.raises(InputError, match="not valid TOML"):
        read_job(write(tmp_path, "[pacing\nmax_rate = 5"), {})


def test_signals_in_a_job_file_share_the_signals_file_parser(tmp_path):
    """[[signal]] tables in a job file are read by the same parser as --signals files:
    load_signals reads either, and a bad signal is named the same way in both."""
    signal = """
        [[signal]]
        name = "origin p99"
        source = "prometheus"
        url = "http://127.0.0.1:9090"
        query = "histogram_quantile(0.99, rate(x_bucket[1m]))"
        limit = 0.5
        critical = 2.0
        """
    job_path = write(tmp_path, '[provider]\nname = "null"\n' + signal, "job.toml")
    signals_path = write(tmp_path, signal, "signals.toml")
    assert read_job(job_path, {}).signals == load_signals(signals_path)
    assert load_signals(job_path) == load_signals(signals_path)
    bad = signal.replace("limit = 0.5", "limit = 0.5\nlimt = 1")
    job_problem = problems_of(write(tmp_path, '[run]\nstate = "s"\n' + bad, "job.toml"))
    with pytest.raises(UsageError) as caught:
        load_signals(write(tmp_path, bad, "signals.toml"))
    assert job_problem == [str(caught.value).replace("signals.toml", "job.toml")]
    assert "signal[1].limt: unknown key" in job_problem[0]


def test_collect_job_keeps_the_good_values_beside_the_problems(tmp_path):
    """config check goes on with the good values: a bad key is left out, with its problem."""
    path = write(tmp_path, "[pacing]\nmax_rate = 0\nconcurrency = 4\n")
    job, problems = collect_job(path, {})
    assert job.values == {"pacing.concurrency": 4}
    assert [p.key for p in problems] == ["pacing.max_rate"]


def test_the_schema_s_variables_follow_one_rule_and_are_unique():
    """pacing.max_rate <-> PURGER_PACING_MAX_RATE, one to one, none a reserved name."""
    variables = [s.variable for s in SETTINGS]
    assert len(set(variables)) == len(SETTINGS)
    assert all(
        v == "PURGER_" + s.key.upper().replace(".", "_")
        for s, v in zip(SETTINGS, variables, strict=True)
    )
    assert not set(variables) & NOT_SETTINGS  # fmt: skip


# A round trip: any valid settings, written as TOML or as variables, read back the same.

_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=12)
_WORD = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), min_size=1, max_size=12
).filter(lambda w: not any(c.isspace() for c in w))
# from_regex draws from all of UTF-8 unless told otherwise, and Hypothesis builds that table
# (a second or more) on first use: the patterns are ASCII, so their alphabet is too.
_ASCII = st.characters(codec="ascii")
_URL = st.from_regex(
    r"https?://[a-z]{1,8}(\.[a-z]{2,4})?(:[1-9][0-9]{1,3})?(/[a-z0-9]{0,6})?",  # port 0: refused
    fullmatch=True,
    alphabet=_ASCII,
)
_SEGMENT = st.from_regex(r"[a-z0-9_-]{1,8}", fullmatch=True, alphabet=_ASCII)
_PATH = st.lists(_SEGMENT, min_size=1, max_size=3).map(lambda parts: Path("/", *parts))


def _values_of(setting: Setting) -> st.SearchStrategy[Value]:
    if setting.choices:
        return st.sampled_from(setting.choices)
    match setting.kind:
        case "int":
            low = int(setting.minimum if setting.minimum is not None else 0)
            return st.integers(low, int(setting.maximum or 10**9))
        case "float":
            low = setting.minimum if setting.minimum is not None else setting.above or 0.0
            high = setting.maximum if setting.maximum is not None else 1e12
            finite = st.floats(low, high, exclude_min=setting.above is not None)
            return finite | st.just(math.inf) if setting.infinite else finite
        case "bool":
            return st.booleans()
        case "path":
            return _PATH
        case "url":
            return _URL
        case "list":
            return st.lists(_WORD, min_size=1, max_size=3).map(tuple)
        case "urls":
            return st.lists(_URL, min_size=1, max_size=3).map(tuple)
    if setting.key == "names.source":
        return st.sampled_from(("-", "https://pypi.org/simple/")) | _PATH.map(str)
    return _TEXT.filter(str.strip)


@st.composite
def _jobs(draw: st.DrawFn) -> dict[str, Value]:
    chosen = draw(st.lists(st.sampled_from(SETTINGS), unique=True, max_size=len(SETTINGS)))
    values = {setting.key: draw(_values_of(setting)) for setting in chosen}
    assume(not {"plan.shards", "plan.max_weight"} <= set(values))
    assume(not ("names.source" in values and values.get("names.sample") is True))
    return values


def _toml(value: Value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "inf" if math.isinf(value) else repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)


def _text(value: Value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    return " ".join(value) if isinstance(value, tuple) else str(value)


def _expected(value: Value) -> Value:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=_jobs())
def test_any_valid_job_reads_back_the_same_from_toml_and_from_variables(tmp_path, values):
    """Every valid value, written as TOML or as PURGER_* text, reads back as written."""
    tables: dict[str, list[str]] = {}
    for key, value in values.items():
        table, _, name = key.partition(".")
        tables.setdefault(table, []).append(f"{name} = {_toml(value)}")
    text = "".join(f"[{table}]\n" + "\n".join(lines) + "\n" for table, lines in tables.items())
    path = write(tmp_path, text)
    from_file = read_job(path, {}).values
    env = {s.variable: _text(values[s.key]) for s in SETTINGS if s.key in values}
    from_env = read_job(None, env).values
    ints = {s.key for s in SETTINGS if s.kind == "int"}
    expected = {k: v if k in ints else _expected(v) for k, v in values.items()}
    assert from_file == expected
    assert from_env == expected
