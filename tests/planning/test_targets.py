"""Templates: checked before anything is sent; {name} normalized, {raw} as given."""

from __future__ import annotations

import pytest

from purger.errors import UsageError
from purger.model import TargetKind
from purger.planning.targets import (
    bind_rows,
    columns_of,
    parse_templates,
    targets_of,
)


def test_name_and_raw_render_normalized_and_given_spellings():
    """{name} is the normalized name; {raw} gives each spelling it was given in, too."""
    templates = parse_templates(["project/{name}"], ["https://pypi.org/pypi/{raw}/json"])
    aliases = {"pyopenssl": ("pyOpenSSL",)}
    assert list(targets_of("pyopenssl", templates, TargetKind.KEY, aliases)) == [
        "project/pyopenssl"
    ]
    assert list(targets_of("pyopenssl", templates, TargetKind.URL, aliases)) == [
        "https://pypi.org/pypi/pyopenssl/json",
        "https://pypi.org/pypi/pyOpenSSL/json",
    ]


def test_repeated_targets_of_one_name_are_sent_once():
    """{name} and {raw} that render the same, or a template given twice, purge once."""
    templates = parse_templates(["p/{name}", "p/{raw}", "p/{name}"], [])
    assert list(targets_of("abc", templates, TargetKind.KEY, {})) == ["p/abc"]


def test_url_templates_cannot_gain_path_segments_from_a_name():
    """A key space name with '/' or '?' is one escaped path segment in a URL."""
    templates = parse_templates([], ["https://h.example/{name}/json"])
    assert list(targets_of("a/b?c", templates, TargetKind.URL, {})) == [
        "https://h.example/a%2Fb%3Fc/json"
    ]


@pytest.mark.parametrize(
    ("keys", "urls", "message"),
    [
        ([], [], "at least one"),
        (["project/{nmae}"], [], "unknown placeholder {nmae}: a template needs {name}"),
        (["project/{name!r}"], [], "unknown placeholder"),
        (["project/{name:>5}"], [], "unknown placeholder"),
        (["project/{}"], [], "unknown placeholder {}"),
        (["project/{name"], [], "literal braces"),
        (["all"], [], "every name would purge the same target"),
        (["project {name}"], [], "U+0020 is a control, format or separator"),
        (["project/\u202e{name}"], [], "U+202E is a control, format or separator"),
        (["project/\u200b{name}"], [], "U+200B"),
        (["project/\x85{name}"], [], "U+0085"),
        ([], ["https://h/{name}\r\nX-Injected: 1"], "U+000D is a control"),
        ([], ["https://h/{name}\n"], "U+000A"),
        ([], ["https://h/\t{name}"], "U+0009"),
        ([], ["https://h/a b/{name}"], "U+0020"),
        ([], ["https://h/\u202e{name}"], "U+202E"),
        ([], ["https://h\u3000/{name}"], "U+3000"),
        ([], ["https://[::1/{name}"], "not a usable URL"),
        ([], ["https://h:99999/{name}"], "not a usable URL"),
        ([], ["https://:80/{name}"], "http:// or https://"),
        ([], ["pypi.org/{name}"], "http:// or https://"),
        ([], ["ftp://h/{name}"], "http:// or https://"),
    ],
)
def test_bad_templates_are_usage_errors_naming_the_flag(keys, urls, message):
    """A bad template is refused before anything is sent, with the flag and the reason."""
    with pytest.raises(UsageError, match=r"--(key|url)-template|at least one") as caught:
        parse_templates(keys, urls)
    assert message in str(caught.value)


def test_a_column_placeholder_makes_one_target_per_row_of_the_name():
    """{version} renders once per row given to the name, escaped like a name in URLs."""
    url = "https://pypi.org/pypi/{name}/{version}/json"
    templates = bind_rows(
        parse_templates(["project/{name}"], [url]),
        {"requests": ({"version": "2.0"}, {"version": "2.1"}), "a-b": ({"version": "1/2"},)},
    )
    assert list(targets_of("requests", templates, TargetKind.URL, {})) == [
        "https://pypi.org/pypi/requests/2.0/json",
        "https://pypi.org/pypi/requests/2.1/json",
    ]
    assert list(targets_of("a-b", templates, TargetKind.URL, {})) == [
        "https://pypi.org/pypi/a-b/1%2F2/json"
    ]
    # A template without columns is unchanged; a name without rows has no row targets.
    assert list(targets_of("requests", templates, TargetKind.KEY, {})) == ["project/requests"]
    assert list(targets_of("other", templates, TargetKind.URL, {})) == []


def test_column_and_raw_placeholders_combine():
    """Each row renders with each spelling of its name."""
    (template,) = bind_rows(
        parse_templates([], ["https://h/{raw}/{version}"]), {"pyopenssl": ({"version": "1"},)}
    )
    aliases = {"pyopenssl": ("pyOpenSSL",)}
    assert list(targets_of("pyopenssl", [template], TargetKind.URL, aliases)) == [
        "https://h/pyopenssl/1",
        "https://h/pyOpenSSL/1",
    ]


def test_columns_are_named_in_order_once():
    """What the source must have: every column placeholder, in order, without repeats."""
    templates = parse_templates(["{name}@{version}"], ["https://h/{name}/{version}/{file}"])
    assert templates[0].columns == ("version",)
    assert templates[1].columns == ("version", "file")
    assert columns_of(templates) == ("version", "file")
