"""`--config FILE` on plan, estimate and run, and `purger config check/show`: precedence
(defaults < file < PURGER_* < flags), one-line errors naming the key or variable, secrets
never echoed, and a check that sends and writes nothing."""

from __future__ import annotations

import json
import socket
import sqlite3
from dataclasses import fields
from pathlib import Path

import httpx
import pytest
import typer.main
from typer.testing import CliRunner

from purger.cli import app
from purger.cli._job import job_defaults
from purger.config.job import read_job
from purger.config.schema import SETTINGS
from purger.providers import ProviderOptions
from tests.cli.test_cli import assert_one_line_error

TOKEN = "s3cr3t-fastly-token-0123456789"  # noqa: S105 - a fake, looked for in outputs
BASE = "https://api.fastly.example"
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "purger.toml"
#: `purger run` options that have no key in a job file, on purpose: what a run is asked to
#: do this time (resume, dry run, retry the failures, go ahead without asking), ad hoc
#: signals, and how the job file itself is found.
COMMAND_LINE_ONLY = {"--resume", "--dry-run", "--signal", "--signals", "--names", "--names-url",
                     "--config", "--help", "--yes", "-y", "--retry-failed"}  # fmt: skip


def invoke(*args: str, env: dict[str, str] | None = None):
    environment = {"COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    return CliRunner().invoke(app, list(args), env=environment)


@pytest.fixture
def job_dir(tmp_path):
    """A job file with its names beside it, as a cron job keeps them."""
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "names.txt").write_text("\n".join(f"{c}{i}" for c in "abpq" for i in range(25)))
    return folder


def write_job(folder: Path, text: str = "") -> Path:
    path = folder / "purger.toml"
    path.write_text(
        '[names]\nsource = "names.txt"\n'
        '[targets]\nkey_templates = ["project/{name}"]\n'
        '[run]\nstate = "state.sqlite"\n' + text
    )
    return path


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# Precedence: each step, through a real command.


@pytest.mark.parametrize(
    ("env", "flags", "shards"),
    [
        ({}, [], 4),  # the file
        ({"PURGER_PLAN_SHARDS": "5"}, [], 5),  # env over the file
        ({"PURGER_PLAN_SHARDS": "5"}, ["--shards", "6"], 6),  # a flag over env
        ({"PURGER_PLAN_SHARDS": ""}, [], 16),  # an empty variable: the default (8 a worker)
    ],
)
def test_plan_takes_file_then_env_then_flags(job_dir, env, flags, shards):
    """plan.shards from the file, PURGER_PLAN_SHARDS over it, --shards over both."""
    path = write_job(job_dir, "[plan]\nworkers = 2\nshards = 4\n")
    result = invoke("plan", "--config", str(path), "--json", *flags, env=env)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["workers"] == 2
    assert len(document["shards"]) == shards


@pytest.mark.parametrize(
    ("env", "flags", "rate"),
    [
        ({}, [], 100.0),
        ({"PURGER_PACING_MAX_RATE": "200"}, [], 200.0),
        ({"PURGER_PACING_MAX_RATE": "200"}, ["--rate", "300"], 300.0),
    ],
)
def test_estimate_takes_pacing_from_file_then_env_then_flags(job_dir, env, flags, rate):
    """pacing.max_rate is --rate: the estimate's pace follows the same order."""
    path = write_job(job_dir, "[pacing]\nmax_rate = 100\n[provider]\nname = 'null'\n")
    result = invoke("estimate", "--config", str(path), "--json", *flags, env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rate"] == rate


def test_estimate_follows_the_run_s_controller_from_the_job_file(job_dir):
    """[pacing] initial_rate and feedback_delay are the run's controller and the estimate's
    alike: a faster start in the file shortens the governed figure as the flag does."""
    common = ["--json", "--hard", "--origin-capacity", "20", "--tick", "1"]
    slow = write_job(job_dir, "[pacing]\ninitial_rate = 2\nfeedback_delay = 10\n")
    by_file = invoke("estimate", "--config", str(slow), *common)
    by_flag = invoke("estimate", "--config", str(slow), *common, "--initial-rate", "15")
    assert by_file.exit_code == 0, by_file.output
    assert by_flag.exit_code == 0, by_flag.output
    slow_doc, fast_doc = json.loads(by_file.stdout), json.loads(by_flag.stdout)
    assert "backpressure (the controller from 2 targets/s" in slow_doc["bottleneck"]
    assert "feedback delay 10 s" in slow_doc["bottleneck"]
    assert fast_doc["duration_s"] < slow_doc["duration_s"]


def test_variables_apply_without_a_job_file(job_dir):
    """PURGER_* settings work on their own, with the built-in defaults beneath them."""
    result = invoke("plan", str(job_dir / "names.txt"), "--json", env={"PURGER_PLAN_SHARDS": "3"})
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["shards"]) == 3


def test_purger_config_names_the_job_file(job_dir):
    """PURGER_CONFIG stands for --config, for a container that is configured by env."""
    path = write_job(job_dir, "[plan]\nshards = 4\n")
    result = invoke("plan", "--json", env={"PURGER_CONFIG": str(path)})
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["shards"]) == 4


def test_a_run_reads_its_paths_from_the_job_file_s_directory(job_dir, tmp_path, monkeypatch):
    """Run from elsewhere: names and state are the job's, cwd gets nothing."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    path = write_job(job_dir, "[provider]\nname = 'null'\n[pacing]\nmax_rate = inf\n")
    result = invoke("run", "--config", str(path), "--yes")
    assert result.exit_code == 0, result.output
    assert "done: 100 targets purged" in result.stderr
    assert (job_dir / "state.sqlite").exists()
    assert list(cwd.iterdir()) == []


def test_plan_writes_plan_file_and_run_and_estimate_read_it(job_dir):
    """The cron flow: `plan --config` writes plan.file, `run --config` purges that plan
    (names re-read from names.source and checked against it), estimate uses it too."""
    path = write_job(job_dir, "[plan]\nfile = 'plan.json'\nshards = 5\n[provider]\nname = 'null'\n")
    made = invoke("plan", "--config", str(path))
    assert made.exit_code == 0, made.output
    plan = json.loads((job_dir / "plan.json").read_text())
    ran = invoke("run", "--config", str(path), "--rate", "inf", "--yes")
    assert ran.exit_code == 0, ran.output
    stored = sqlite3.connect(job_dir / "state.sqlite").execute("SELECT fingerprint FROM run")
    assert stored.fetchone()[0] == plan["fingerprint"]
    estimated = invoke("estimate", "--config", str(path), "--json")
    assert estimated.exit_code == 0, estimated.output
    assert len(json.loads(estimated.stdout)["shards"]) == len(plan["shards"])


# Errors: one line, exit 2, the key or variable named, nothing written.


@pytest.mark.parametrize(
    ("extra", "env", "fragments"),
    [
        ("[pacing]\nmax_rate = 0\n", {}, ["purger.toml: pacing.max_rate: must be > 0"]),
        ("[pacing]\nconcurrency = '8'\n", {}, ['concurrency: must be an integer, got "8"']),
        ("[provider]\nname = 'bunny'\n", {}, ["provider.name: must be one of"]),
        ("[pacing]\nmax_rat = 5\n", {}, ["max_rat: unknown key (did you mean pacing.max_rate?)"]),
        (
            "",
            {"PURGER_PACING_CONCURRENCY": "eight"},
            ['PURGER_PACING_CONCURRENCY: must be an integer, got "eight"'],
        ),
        (
            "",
            {"PURGER_PACING_MAXRATE": "5"},
            ["PURGER_PACING_MAXRATE: unknown purger setting", "PURGER_PACING_MAX_RATE?"],
        ),
        (
            "[pacing]\nmax_rate = 0\nconcurrency = 0\n",
            {},
            ["max_rate", "(and 1 more: purger config check"],
        ),
    ],
)
@pytest.mark.parametrize("command", ["run", "estimate", "plan"])
def test_a_bad_job_is_one_line_exit_2_on_every_command(job_dir, command, extra, env, fragments):
    """Whether the command uses the key or not, a bad value stops it before anything else."""
    path = write_job(job_dir, extra)
    before = files_under(job_dir)
    result = invoke(command, "--config", str(path), env=env)
    assert_one_line_error(result, 2, *fragments)
    assert files_under(job_dir) == before


def test_a_missing_job_file_is_one_line_exit_2(tmp_path):
    """--config naming no file: exit 2, naming it."""
    result = invoke("run", "--config", str(tmp_path / "nope.toml"))
    assert_one_line_error(result, 2, "nope.toml: cannot read")


def test_the_test_suite_s_variable_is_not_refused(job_dir):
    """PURGER_E2E_REQUIRED belongs to the test suite: commands run with it set."""
    path = write_job(job_dir, "[plan]\nshards = 2\n")
    result = invoke("plan", "--config", str(path), "--json", env={"PURGER_E2E_REQUIRED": "1"})
    assert result.exit_code == 0, result.output


def test_a_token_in_the_job_file_is_refused_and_never_echoed(job_dir):
    """The run stops (exit 2) pointing to the variable and token_file; the value is nowhere."""
    path = write_job(job_dir, f"[provider]\nname = 'fastly'\nservice_id = 'S'\ntoken = '{TOKEN}'\n")
    for args in (["run", "--config", str(path)], ["config", "check", str(path)]):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert "FASTLY_API_TOKEN or provider.token_file" in result.stderr
        assert TOKEN not in result.output
    assert not (job_dir / "state.sqlite").exists()


def test_a_run_reads_the_token_from_token_file_and_keeps_it_out_of_everything(job_dir, httpx_mock):
    """provider.token_file: the token goes to the API only; not to output, state or repr."""

    def answer(request: httpx.Request) -> httpx.Response:
        keys = json.loads(request.content)["surrogate_keys"]
        return httpx.Response(200, json={key: f"id-{i}" for i, key in enumerate(keys)})

    httpx_mock.add_callback(answer, url=f"{BASE}/service/SVC/purge", is_reusable=True)
    (job_dir / "fastly.token").write_text(TOKEN + "\n")
    path = write_job(
        job_dir,
        f"[provider]\nname = 'fastly'\nservice_id = 'SVC'\napi_base = '{BASE}'\n"
        "token_file = 'fastly.token'\n[pacing]\nmax_rate = inf\n",
    )
    result = invoke("run", "--config", str(path), "--yes")
    assert result.exit_code == 0, result.output
    assert {r.headers["Fastly-Key"] for r in httpx_mock.get_requests()} == {TOKEN}
    assert TOKEN not in result.output
    for file in job_dir.iterdir():
        if file.name != "fastly.token":
            assert TOKEN.encode() not in file.read_bytes(), file


def test_a_dry_run_reads_no_token_file(job_dir, httpx_mock):
    """--dry-run needs no credentials: a token file that is not there does not matter."""
    path = write_job(
        job_dir, "[provider]\nname = 'fastly'\nservice_id = 'S'\ntoken_file = 'absent.token'\n"
    )
    result = invoke("run", "--config", str(path), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "estimate (nothing sent)" in result.stdout
    assert not (job_dir / "state.sqlite").exists()


# purger config check and show


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args: object) -> None:
        pytest.fail(f"a connection was attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def fastly_job(folder: Path, extra: str = "") -> Path:
    return write_job(
        folder,
        "[provider]\nname = 'fastly'\nservice_id = 'SVC'\n[pacing]\nmax_rate = 2000\n"
        "[[signal]]\nname = 'p99'\nsource = 'prometheus'\nurl = 'http://127.0.0.1:9090'\n"
        "query = 'x'\nlimit = 0.5\n" + extra,
    )


def test_check_of_a_good_job_exits_0_with_a_summary_sending_and_writing_nothing(
    job_dir, no_network
):
    """Exit 0; the summary names provider, token source and state; no file appears, the
    state file included, and no connection is opened."""
    path = fastly_job(job_dir)
    before = files_under(job_dir)
    result = invoke("config", "check", str(path), env={"FASTLY_API_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output
    assert f"{path}: valid" in result.stdout
    assert "provider: fastly, token from FASTLY_API_TOKEN" in result.stdout
    assert "1 signal" in result.stdout
    assert TOKEN not in result.output
    assert files_under(job_dir) == before


def test_check_of_a_database_state_connects_to_nothing_and_refuses_a_password(job_dir, no_network):
    """``run.state`` as a postgresql:// URL: valid without a connection (user info masked); with a
    password in it, a problem naming the key, the password shown nowhere."""
    path = fastly_job(job_dir)
    text = path.read_text()
    path.write_text(text.replace('"state.sqlite"', '"postgresql://purger@db:5432/purges"'))
    good = invoke("config", "check", str(path), env={"FASTLY_API_TOKEN": TOKEN})
    assert good.exit_code == 0, good.output
    assert "state: postgresql://***@db:5432/purges" in good.stdout  # user info masked
    path.write_text(text.replace('"state.sqlite"', '"postgresql://purger:hunter2x@db/purges"'))
    bad = invoke("config", "check", str(path), env={"FASTLY_API_TOKEN": TOKEN})
    assert bad.exit_code == 2, bad.output
    assert "run.state" in bad.output
    assert "the password goes in a file or PGPASSWORD" in bad.output
    assert "hunter2x" not in bad.output


def test_check_lists_every_problem_one_line_each(job_dir, no_network):
    """Bad values and what the good ones point to, all at once, each naming its key."""
    path = write_job(
        job_dir,
        "[provider]\nname = 'fastly'\n[pacing]\nmax_rate = 0\nconcurrency = 'eight'\n",
    )
    path.write_text(
        path.read_text()
        .replace('"names.txt"', '"missing.txt"')
        .replace('"state.sqlite"', '"no/such/dir/state.sqlite"')
        .replace("project/{name}", "project/{nam}")
    )
    result = invoke("config", "check", str(path), env={"PURGER_RUN_MAX_DURATION": "soon"})
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    expected = [
        "pacing.max_rate: must be > 0",
        'pacing.concurrency: must be an integer, got "eight"',
        'PURGER_RUN_MAX_DURATION: must be a number, got "soon"',
        "names.source: no such file",
        "targets.key_templates: 'project/{nam}': unknown placeholder {nam}",
        "provider.service_id: missing: fastly needs it",
        "provider.token_file: fastly needs an API token: export FASTLY_API_TOKEN",
        "run.state: no such directory",
    ]
    assert len(lines) == len(expected), lines
    for fragment in expected:
        assert sum(fragment in line for line in lines) == 1, (fragment, lines)
    assert all(line.startswith("purger: error: ") for line in lines)


@pytest.mark.parametrize(
    ("extra", "env", "fragment"),
    [
        ("token_file = 'fastly.token'\n", {"FASTLY_API_TOKEN": TOKEN}, "both set"),
        ("token_file = 'missing.token'\n", {}, "cannot read the token file"),
    ],
)
def test_check_reads_the_token_source_as_run_would(job_dir, extra, env, fragment):
    """Token file and variable together, or a token file that cannot be read: a problem
    naming them, and the token itself appears nowhere."""
    (job_dir / "fastly.token").write_text(TOKEN)
    path = write_job(job_dir, "[provider]\nname = 'fastly'\nservice_id = 'S'\n" + extra)
    result = invoke("config", "check", str(path), env=env)
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr
    assert "provider.name" in result.stderr
    assert TOKEN not in result.output


def test_check_reads_akamai_credentials_and_varnish_nodes_offline(job_dir, tmp_path, no_network):
    """Akamai: the .edgerc section must be there; varnish: its nodes must be URLs."""
    akamai = write_job(job_dir, "[provider]\nname = 'akamai'\nedgerc = 'edgerc'\n")
    (job_dir / "edgerc").write_text("[default]\nhost = h\n")
    result = invoke("config", "check", str(akamai))
    assert result.exit_code == 2, result.output
    assert "provider.name: akamai:" in result.stderr
    assert "client_token is not set" in result.stderr
    varnish = write_job(job_dir, "[provider]\nname = 'varnish'\n")
    result = invoke("config", "check", str(varnish))
    assert result.exit_code == 2, result.output
    assert "provider.endpoints: missing: varnish needs its nodes" in result.stderr


def test_show_says_where_each_value_came_from(job_dir):
    """file, the variable's name, or purger run's own default; signals counted."""
    path = fastly_job(job_dir)
    result = invoke("config", "show", str(path), env={"PURGER_PACING_CONCURRENCY": "4"})
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    assert rows["pacing.max_rate"] == ["2000", "[file]"]
    assert rows["pacing.concurrency"] == ["4", "[PURGER_PACING_CONCURRENCY]"]
    assert rows["pacing.tick"] == ["5", "[default]"]
    assert rows["provider.network"] == ["production", "[default]"]
    assert rows["provider.hard"] == ["false", "[default]"]
    assert rows["signal"][0] == "1"
    assert set(rows) == {s.key for s in SETTINGS} | {"signal"}


def test_the_example_job_file_is_accepted_with_its_token_from_env(no_network):
    """docs/examples/purger.toml passes config check with FASTLY_API_TOKEN set; without
    it, the one problem is the token, named by its variable."""
    before = files_under(EXAMPLE.parent)
    ok = invoke("config", "check", str(EXAMPLE), env={"FASTLY_API_TOKEN": TOKEN})
    assert ok.exit_code == 0, ok.output
    assert "provider: fastly, token from FASTLY_API_TOKEN" in ok.stdout
    missing = invoke("config", "check", str(EXAMPLE), env={"FASTLY_API_TOKEN": ""})
    assert missing.exit_code == 2, missing.output
    (line,) = missing.stderr.strip().splitlines()
    assert "export FASTLY_API_TOKEN or set provider.token_file" in line
    assert files_under(EXAMPLE.parent) == before


# The schema stays in step with the commands and the docs.


def _params(command: str) -> list:
    return typer.main.get_command(app).commands[command].params  # type: ignore[attr-defined]


def test_every_run_option_has_a_key_or_is_command_line_only():
    """A new `purger run` option needs a job file key (or a reason not to have one)."""
    run_flags = {flag for p in _params("run") if p.param_type_name == "option" for flag in p.opts}
    keyed = {s.flag for s in SETTINGS}
    assert run_flags - keyed - COMMAND_LINE_ONLY == set()
    simple = {s.flag for s in SETTINGS if s.flag.startswith("--")}
    assert simple - run_flags == set()  # and every key's flag exists


def test_provider_keys_are_the_provider_options():
    """[provider] keys are ProviderOptions' fields by name: config check builds them as is."""
    keys = {s.key.removeprefix("provider.") for s in SETTINGS if s.key.startswith("provider.")}
    assert keys == {f.name for f in fields(ProviderOptions)}


def test_docs_document_every_key_and_variable():
    """docs/config.md has a row for every key, with its flag and variable."""
    text = (ROOT / "docs" / "config.md").read_text()
    for setting in SETTINGS:
        row = next((line for line in text.splitlines() if f"`{setting.key}`" in line), "")
        assert setting.variable in row, setting.key
        flags = [flag for flag in setting.flag.split(" | ") if flag.startswith("--")]
        assert all(f"`{flag}`" in row for flag in flags), setting.key


def test_a_postgresql_state_in_a_job_file_stays_a_url(tmp_path):
    """``run.state`` may name a database: kept as written, not made a path beside the job
    file (which would fold ``//`` and break it), from the file and the environment alike."""
    path = tmp_path / "purger.toml"
    path.write_text("[run]\nstate = 'postgresql://purger@db:5432/purges'\nname = 'nightly'\n")
    run = job_defaults(read_job(path, {}), _params("run"))
    assert run["state_spec"] == "postgresql://purger@db:5432/purges"
    assert run["run_name"] == "nightly"
    env = read_job(None, {"PURGER_RUN_STATE": "postgresql://purger@db/purges"})
    assert job_defaults(env, _params("run"))["state_spec"] == "postgresql://purger@db/purges"


def test_job_keys_go_to_each_command_s_own_parameters(tmp_path):
    """plan.file is plan's --out and run's argument; names.source then run's --names, or
    --names-url for a URL; [[signal]] tables reach --signals; keys a command lacks are not
    passed to it."""
    path = tmp_path / "job.toml"
    path.write_text(
        "[names]\nsource = 'n.txt'\n[plan]\nfile = 'p.json'\n[run]\nstate = 's'\n"
        "[[signal]]\nname = 'p99'\nsource = 'prometheus'\nurl = 'http://127.0.0.1:9090'\n"
        "query = 'x'\nlimit = 0.5\n"
    )
    job = read_job(path, {})
    run = job_defaults(job, _params("run"))
    assert run["plan_or_names"] == tmp_path / "p.json"
    assert run["names_file"] == str(tmp_path / "n.txt")
    assert run["signals_file"] == path
    assert run["state_spec"] == tmp_path / "s"
    plan = job_defaults(job, _params("plan"))
    assert plan == {"out": tmp_path / "p.json", "source": str(tmp_path / "n.txt")}
    url = read_job(None, {"PURGER_NAMES_SOURCE": "https://pypi.org/simple/"})
    assert job_defaults(url, _params("estimate")) == {"names_url": "https://pypi.org/simple/"}
