"""Probe targets: each URL with its name's spellings; the request through a node."""

from __future__ import annotations

import pytest

from purger.errors import UsageError
from purger.planning.targets import parse_templates
from purger.probing.targets import (
    ProbeTarget,
    check_nodes,
    in_sample,
    probe_targets,
    through_node,
)


def test_raw_templates_render_every_spelling_and_keep_them() -> None:
    templates = parse_templates(
        ["project/{name}"],
        ["https://pypi.test/pypi/{name}/json", "https://pypi.test/pypi/{raw}/json"],
    )
    got = list(probe_targets(["foo-bar", "baz"], templates, {"foo-bar": ("Foo_Bar",)}))
    assert got == [
        ProbeTarget("https://pypi.test/pypi/foo-bar/json", "foo-bar", ("Foo_Bar",)),
        ProbeTarget("https://pypi.test/pypi/Foo_Bar/json", "foo-bar", ("Foo_Bar",)),
        ProbeTarget("https://pypi.test/pypi/baz/json", "baz", ("baz",)),
    ]


def test_through_a_node_the_host_and_path_are_the_targets() -> None:
    assert through_node("https://pypi.test/pypi/Foo%2Fx/json?a=1#f", "http://n:1") == (
        "http://n:1/pypi/Foo%2Fx/json?a=1",
        "pypi.test",
    )
    assert through_node("https://u@pypi.test:8443", "http://n:1") == (
        "http://n:1/",
        "pypi.test:8443",
    )
    assert through_node("https://pypi.test/a", None) == ("https://pypi.test/a", None)


@pytest.mark.parametrize("node", ["https://n:1", "n:1", "http://n:1/path", "http://"])
def test_a_node_is_http_host_port(node: str) -> None:
    with pytest.raises(UsageError, match="--via"):
        check_nodes([node])


def test_a_node_with_credentials_is_refused_without_showing_them() -> None:
    with pytest.raises(UsageError, match="user:password") as caught:
        check_nodes(["http://admin:s3cret@n:1"])
    assert "s3cret" not in str(caught.value)


def test_nodes_are_deduplicated_without_trailing_slash() -> None:
    assert check_nodes(["http://a:1/", "http://a:1", "http://b:2"]) == ("http://a:1", "http://b:2")


def test_a_sample_is_the_same_every_time_and_about_its_size() -> None:
    urls = [f"https://pypi.test/pypi/p{i}/json" for i in range(4000)]
    chosen = [u for u in urls if in_sample(u, 0.25)]
    assert chosen == [u for u in urls if in_sample(u, 0.25)]
    assert 800 < len(chosen) < 1200
    assert all(in_sample(u, 1.0) for u in urls)
    assert not any(in_sample(u, 0.0) for u in urls)
