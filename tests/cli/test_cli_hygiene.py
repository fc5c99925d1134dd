"""Through the CLI: keys and URLs with white space, controls or format characters, and a
non-UTF-8 .edgerc, are one line and exit 2 before anything is created or sent."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from purger.cli import app

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "FASTLY_API_TOKEN": "t0ken"}


def run(tmp_path, *args: str):
    return CliRunner().invoke(
        app, ["run", *args, "--state", str(tmp_path / "s.sqlite"), "--yes"], env=ENV
    )


def assert_refused(result, tmp_path, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("purger: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["names.txt"]  # no state file


@pytest.fixture
def names(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("alpha\nbeta\n")
    return path


@pytest.mark.parametrize(
    "template",
    ["https://h/{name}\r\nX: 1", "https://h/{name}\n", "https://h/\t{name}", "https://h/a {name}"],
)
@pytest.mark.parametrize(
    "provider",
    [
        ("--provider", "varnish", "--endpoint", "http://127.0.0.1:9"),
        ("--provider", "fastly", "--service-id", "SVC", "--api-base", "http://127.0.0.1:9"),
    ],
)
def test_a_url_template_with_white_space_or_controls_is_refused_before_the_state(
    names, tmp_path, httpx_mock, template, provider
):
    result = run(tmp_path, str(names), *provider, "--url-template", template)
    assert_refused(result, tmp_path, "--url-template", "control, format or separator")
    assert httpx_mock.get_requests() == []


@pytest.mark.parametrize("key", ["evil\u202etxt", "zero\u200bwidth", "c1\x85control", "nb\xa0sp"])
def test_strict_opaque_keys_with_controls_or_format_characters_are_refused(tmp_path, key):
    source = tmp_path / "names.txt"
    source.write_text(f"fine\n{key}\n", encoding="utf-8")
    result = run(
        tmp_path, str(source), "--provider", "null", "--normalize", "none", "--strict",
        "--key-template", "k/{name}",
    )  # fmt: skip
    assert_refused(result, tmp_path, "names.txt:2:", "control, format or separator")


def test_a_non_utf8_edgerc_is_one_line_naming_the_file(names, tmp_path):
    edgerc = tmp_path / "names.txt.edgerc"
    edgerc.write_bytes(b"[default]\nclient_secret = \xff\xfe\nhost = h\n")
    result = run(
        tmp_path, str(names), "--provider", "akamai", "--edgerc", str(edgerc),
        "--key-template", "k/{name}",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"purger: error: {edgerc}: ")
    assert "UTF-8" in line
    assert not (tmp_path / "s.sqlite").exists()
