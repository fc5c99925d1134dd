"""A hostile user's sweep (issue 12): bad input of every kind to every command. Each case
must give exactly one line ``purger: error: ...`` (or ``purger: cannot start: ...``) on
stderr, its documented exit code, no traceback, and no state file.

The cases marked ``found`` broke before the sweep's fixes; the rest are a representative
set of the probes that already held, kept so that they keep holding."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from purger.cli import app

WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}
HUGE = str(10**23)


def _files(tmp: Path) -> dict[str, str]:
    """The inputs the cases name as ``{key}``: good names, and bad files of each kind."""
    made = {
        "names": "requests\nflask\ndjango\nnumpy\n",
        "empty": "",
        "plan_garbage_json": "{not json",
        "plan_list_json": "[]",
        "signals_broken_toml": "[[signal]\n",
        "job_broken_toml": "[pacing\n",
        "job_unknown_toml": "[pacing]\nfoo = 1\n",
        "job_workers_toml": f"[plan]\nworkers = {HUGE}\n",
        "not_a_state": "hello",
        "edgerc_no_section": "[other]\nhost = x\n",
        "token_empty": "",
    }
    paths = {}  # keys without dots: str.format reads a dot as an attribute
    for name, text in made.items():
        path = tmp / name
        path.write_text(text)
        paths[name] = str(path)
    control = tmp / "token_control"
    control.write_text("tok\x01en\n")
    paths["token_control"] = str(control)
    bad_utf8 = tmp / "bad_utf8"
    bad_utf8.write_bytes(b"abc\n\xff\xfe\n")
    paths["bad_utf8"] = str(bad_utf8)
    paths["missing"] = str(tmp / "missing")
    paths["state"] = str(tmp / "s.sqlite")
    paths["scan_out"] = str(tmp / "bad.txt")
    paths["directory"] = str(tmp)
    os.mkfifo(tmp / "fifo")
    paths["fifo"] = str(tmp / "fifo")
    paths["nodir_state"] = str(tmp / "nodir" / "s.sqlite")
    return paths


RUN = [
    "run", "{names}", "--provider", "varnish", "--endpoint", "http://127.0.0.1:9",
    "--key-template", "k/{{name}}", "--state", "{state}", "--yes",
]  # fmt: skip
FASTLY = [
    "run", "{names}", "--provider", "fastly", "--service-id", "S",
    "--key-template", "k/{{name}}", "--state", "{state}", "--yes",
]  # fmt: skip

SCAN = [
    "scan", "{names}", "--url-template", "http://127.0.0.1:9/{{name}}",
    "--via", "http://127.0.0.1:9", "--out", "{scan_out}",
]  # fmt: skip

# (id, arguments, extra environment, exit code, found by the sweep)
CASES: list[tuple[str, list[str], dict[str, str], int, bool]] = [
    # A worker count no machine can hold: traceback (OverflowError) or minutes of silence.
    ("run --workers huge", [*RUN, "--workers", HUGE], {}, 2, True),
    ("run PURGER_PLAN_WORKERS huge", RUN, {"PURGER_PLAN_WORKERS": HUGE}, 2, True),
    ("run job plan.workers huge", [*RUN, "--config", "{job_workers_toml}"], {}, 2, True),
    ("plan --workers huge", ["plan", "{names}", "--workers", HUGE], {}, 2, True),
    ("plan --workers 257", ["plan", "{names}", "--workers", "257"], {}, 2, True),
    ("estimate --workers huge", ["estimate", "{names}", "--workers", HUGE], {}, 2, True),
    # URLs that urlsplit takes but no call can use: a traceback after the state file was
    # made (a line break, a broken IPv6 literal) or endless retries (port 99999).
    *[
        (f"{route} {url!r}", args, env, 2, url != "http://u:p@" or "api" in route.lower())
        for url in ("http://x:99999", "http://[::1", "http://x/\n", "http://u:p@", "http://x:0")
        for route, args, env in (
            ("--endpoint", [*RUN[:4], "--endpoint", url, *RUN[6:]], {}),
            ("--tier", [*RUN[:4], "--tier", f"a={url}", *RUN[6:]], {}),
            ("--api-base", [*FASTLY, "--api-base", url], {"FASTLY_API_TOKEN": "t"}),
            (
                "PURGER_PROVIDER_API_BASE",
                FASTLY,
                {"FASTLY_API_TOKEN": "t", "PURGER_PROVIDER_API_BASE": url},
            ),
        )
        if route != "--tier" or url == url.strip()  # a tier's URLs are stripped: fine
    ],
    # scan (and verify: the same option) took any concurrency (100,000: minutes of silence);
    # scan found an --out that is a directory only after every probe: a traceback.
    ("scan --concurrency huge", [*SCAN, "--concurrency", "100000"], {}, 2, True),
    ("scan --out a directory", [*SCAN[:-1], "{directory}"], {}, 2, True),
    # --out over a pipe or a device (/dev/null as root) was replaced by a regular file.
    ("scan --out a pipe", [*SCAN[:-1], "{fifo}"], {}, 2, True),
    ("plan --out a pipe", ["plan", "{names}", "--out", "{fifo}"], {}, 2, True),
    # Representative probes that held.
    ("run --rate nan", [*RUN, "--rate", "nan"], {}, 2, False),
    ("run --concurrency huge", [*RUN, "--concurrency", HUGE], {}, 2, False),
    ("run --timeout 0", [*RUN, "--timeout", "0"], {}, 2, False),
    ("run --drain-timeout nan", [*RUN, "--drain-timeout", "nan"], {}, 2, False),
    ("run --shards 0", [*RUN, "--shards", "0"], {}, 2, False),
    ("run --files-cap 501", [*RUN, "--files-cap", "501"], {}, 2, False),
    ("run unknown placeholder", [*RUN, "--key-template", "k/{{nme}}"], {}, 2, False),
    ("run format spec", [*RUN, "--key-template", "k/{{name.__class__}}"], {}, 2, False),
    ("run bidi template", [*RUN, "--key-template", "k/{{name}}\u202e"], {}, 2, False),
    (
        "run url template space",
        [*RUN[:6], "--url-template", "http://x/{{raw}} y", "--state", "{state}", "--yes"],
        {},
        2,
        False,
    ),
    (
        "run url bad port",
        [*RUN[:6], "--url-template", "http://x:99999/{{name}}", "--state", "{state}", "--yes"],
        {},
        2,
        False,
    ),
    ("run endpoint ftp", [*RUN[:4], "ftp://x", *RUN[6:]], {}, 2, False),
    ("run unknown provider", [*RUN[:2], "--provider", "nope", *RUN[6:]], {}, 2, False),
    ("run names not utf-8", ["run", "{bad_utf8}", *RUN[2:]], {}, 2, False),
    ("run names empty", ["run", "{empty}", *RUN[2:]], {}, 2, False),
    ("run names missing", ["run", "{missing}", *RUN[2:]], {}, 2, False),
    ("run plan garbage", ["run", "{plan_garbage_json}", *RUN[2:]], {}, 2, False),
    ("run plan a list", ["run", "{plan_list_json}", *RUN[2:]], {}, 2, False),
    ("run state not a state", [*RUN[:-3], "{not_a_state}", "--yes"], {}, 2, False),
    ("run state in no dir", [*RUN[:-3], "{nodir_state}", "--yes"], {}, 2, False),
    ("run --resume no state", [*RUN, "--resume"], {}, 2, False),
    ("run --resume --retry-failed", [*RUN, "--resume", "--retry-failed"], {}, 2, False),
    ("run signals broken", [*RUN, "--signals", "{signals_broken_toml}"], {}, 2, False),
    ("run signal garbage", [*RUN, "--signal", "x"], {}, 2, False),
    ("run job broken", [*RUN, "--config", "{job_broken_toml}"], {}, 2, False),
    ("run job unknown key", [*RUN, "--config", "{job_unknown_toml}"], {}, 2, False),
    ("run PURGER_CONFIG missing", RUN, {"PURGER_CONFIG": "{missing}"}, 2, False),
    ("run PURGER_PROVIDER_HARD maybe", RUN, {"PURGER_PROVIDER_HARD": "maybe"}, 2, False),
    ("run PURGER_BOGUS", RUN, {"PURGER_BOGUS": "1"}, 2, False),
    ("fastly token empty", FASTLY, {"FASTLY_API_TOKEN": ""}, 2, False),
    # A token variable with a line break was sent as is (a header of its own after it).
    ("fastly token two lines", FASTLY, {"FASTLY_API_TOKEN": "a\nb"}, 2, True),
    ("fastly token CR", FASTLY, {"FASTLY_API_TOKEN": "tok\r"}, 2, True),
    ("fastly token file control", [*FASTLY, "--token-file", "{token_control}"], {}, 2, True),
    ("fastly token file empty", [*FASTLY, "--token-file", "{token_empty}"], {}, 2, False),
    (
        "fastly api-base ftp",
        [*FASTLY, "--api-base", "ftp://x"],
        {"FASTLY_API_TOKEN": "t"},
        2,
        False,
    ),
    (
        "akamai edgerc missing",
        [*RUN[:2], "--provider", "akamai", "--edgerc", "{missing}", *RUN[6:]],
        {},
        2,
        False,
    ),
    (
        "akamai edgerc no section",
        [*RUN[:2], "--provider", "akamai", "--edgerc", "{edgerc_no_section}", *RUN[6:]],
        {},
        2,
        False,
    ),
    (
        "akamai edgerc not utf-8",
        [*RUN[:2], "--provider", "akamai", "--edgerc", "{bad_utf8}", *RUN[6:]],
        {},
        2,
        False,
    ),
    ("plan strict not utf-8", ["plan", "{bad_utf8}", "--strict"], {}, 2, False),
    ("plan --max-weight inf", ["plan", "{names}", "--max-weight", "inf"], {}, 2, False),
    (
        "estimate --origin-capacity 0",
        ["estimate", "{names}", "--origin-capacity", "0"],
        {},
        2,
        False,
    ),
    ("estimate --soft-cost 2", ["estimate", "{names}", "--soft-cost", "2"], {}, 2, False),
    ("status not a state", ["status", "{not_a_state}"], {}, 2, False),
    ("status missing", ["status", "{missing}", "--json"], {}, 2, False),
    ("failures empty file", ["failures", "{empty}"], {}, 2, False),
    ("config check broken", ["config", "check", "{job_broken_toml}"], {}, 2, False),
    ("config show unknown key", ["config", "show", "{job_unknown_toml}"], {}, 2, False),
    # demo's numbers were not checked: NaN crashed the simulation with a traceback.
    ("demo --speed nan", ["demo", "--speed", "nan"], {}, 2, True),
    ("demo --speed -1", ["demo", "--speed", "-1"], {}, 2, True),
    ("demo --speed inf", ["demo", "--speed", "inf"], {}, 2, True),
    ("demo --seed -1", ["demo", "--seed", "-1"], {}, 2, True),
    ("probe --interval 0", ["probe", "--interval", "0", "--signal", "x"], {}, 2, False),
    (
        "verify --rounds 0",
        [
            "verify",
            "{names}",
            "--url-template",
            "http://x/{{name}}",
            "--via",
            "http://127.0.0.1:9",
            "--rounds",
            "0",
        ],
        {},
        2,
        False,
    ),
    (
        "scan --out in no dir",
        ["scan", "{names}", "--url-template", "http://x/{{name}}", "--out", "{nodir_state}"],
        {},
        2,
        False,
    ),
]


@pytest.mark.parametrize(
    ("args", "env", "code", "found"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_one_line_its_exit_code_and_creates_nothing(tmp_path, args, env, code, found):
    files = _files(tmp_path)
    argv = [arg.format(**files) for arg in args]
    environment = {**WIDE, **{k: v.format(**files) for k, v in env.items()}}
    result = CliRunner().invoke(app, argv, env=environment)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(("purger: error: ", "purger: cannot start: ")), lines[0]
    assert not Path(files["state"]).exists()
    assert Path(files["fifo"]).is_fifo()
