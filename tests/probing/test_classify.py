"""The classification rules, pinned: Age arithmetic, the miss header, loops (relative
Location resolved), too many redirects, --expect."""

from __future__ import annotations

import pytest

from purger.probing.classify import (
    Answer,
    Chain,
    Freshness,
    ProbeClass,
    Verdict,
    judge_freshness,
    resolve_location,
)

PURGED = 1_000.0


def at(received: float, age: str | None, cache: str | None = None, status: int = 200) -> Answer:
    return Answer(status=status, received_at=received, age=age, cache_status=cache)


@pytest.mark.parametrize(
    ("received", "age", "expected"),
    [
        (1_010.0, "5", ProbeClass.FRESH),  # fetched at 1005, after the purge
        (1_010.0, "10", ProbeClass.FRESH),  # fetched at the purge itself
        (1_010.0, "11", ProbeClass.FRESH),  # one second before: within Age's rounding
        (1_010.0, "12", ProbeClass.STALE),  # two seconds before
        (1_010.0, "3600", ProbeClass.STALE),
        (1_010.0, None, ProbeClass.FRESH),  # no Age: just fetched (RFC 9111)
        (1_010.0, " 7 ", ProbeClass.FRESH),
    ],
)
def test_age_says_when_the_object_was_fetched(
    received: float, age: str | None, expected: ProbeClass
) -> None:
    assert judge_freshness(at(received, age), Freshness(purged_at=PURGED)).cls is expected


def test_slack_is_configurable() -> None:
    answer = at(1_010.0, "11")
    assert judge_freshness(answer, Freshness(purged_at=PURGED, slack=0)).cls is ProbeClass.STALE


def test_bad_age_is_an_error_not_a_guess() -> None:
    verdict = judge_freshness(at(1_010.0, "-3"), Freshness(purged_at=PURGED))
    assert verdict.cls is ProbeClass.ERROR
    assert "Age" in verdict.detail


def test_without_age_the_miss_header_decides() -> None:
    rule = Freshness(purged_at=PURGED)
    assert judge_freshness(at(1_010.0, None, "MISS"), rule).cls is ProbeClass.FRESH
    # Fastly's shield, edge: the edge (last) is the node answering.
    assert judge_freshness(at(1_010.0, None, "HIT, miss"), rule).cls is ProbeClass.FRESH
    assert judge_freshness(at(1_010.0, "x", "MISS"), rule).cls is ProbeClass.FRESH
    assert judge_freshness(at(1_010.0, "x", "MISS, HIT"), rule).cls is ProbeClass.ERROR
    custom = Freshness(purged_at=PURGED, miss_value="TCP_MISS")
    assert judge_freshness(at(1_010.0, None, "TCP_MISS"), custom).cls is ProbeClass.FRESH


def test_an_old_age_is_stale_even_on_a_miss() -> None:
    """An edge that missed and refetched from a shield still holding the old object: the
    Age the shield passed on says stale, whatever the edge's X-Cache."""
    rule = Freshness(purged_at=PURGED)
    assert judge_freshness(at(1_010.0, "900", "MISS"), rule).cls is ProbeClass.STALE


def test_without_a_purge_time_an_answer_is_ok() -> None:
    assert judge_freshness(at(1_010.0, "3600"), Freshness()).cls is ProbeClass.OK


def chain(url: str = "http://h/a", **kw: object) -> Chain:
    settings: dict[str, object] = {
        "expect": frozenset({200}),
        "max_redirects": 5,
        "freshness": Freshness(),
    }
    settings.update(kw)
    return Chain(url, **settings)  # type: ignore[arg-type]


def redirect(location: str, status: int = 301) -> Answer:
    return Answer(status=status, received_at=0.0, location=location)


def test_relative_location_is_resolved_against_the_current_url() -> None:
    assert resolve_location("http://h/pypi/Foo/json", "/pypi/foo/json") == "http://h/pypi/foo/json"
    assert resolve_location("http://h/pypi/Foo/json", "../foo/json") == "http://h/pypi/foo/json"
    assert resolve_location("http://h/a", "https://o/b#frag") == "https://o/b"
    walk = chain("http://h/pypi/Foo/json")
    assert walk.step(redirect("../foo/json")) == "http://h/pypi/foo/json"


def test_a_url_seen_twice_is_a_loop() -> None:
    walk = chain("http://h/pypi/Foo/json")
    assert walk.step(redirect("/pypi/foo/json")) == "http://h/pypi/foo/json"
    verdict = walk.step(redirect("/pypi/Foo/json"))
    assert isinstance(verdict, Verdict)
    assert verdict.cls is ProbeClass.REDIRECT_LOOP
    assert verdict.chain == ("http://h/pypi/Foo/json", "http://h/pypi/foo/json")


def test_a_redirect_to_itself_is_a_loop() -> None:
    verdict = chain("http://h/a").step(redirect("/a", 302))
    assert isinstance(verdict, Verdict)
    assert verdict.cls is ProbeClass.REDIRECT_LOOP


def test_more_redirects_than_allowed() -> None:
    walk = chain("http://h/0", max_redirects=2)
    assert walk.step(redirect("/1")) == "http://h/1"
    assert walk.step(redirect("/2")) == "http://h/2"
    verdict = walk.step(redirect("/3"))
    assert isinstance(verdict, Verdict)
    assert verdict.cls is ProbeClass.TOO_MANY_REDIRECTS
    ok = chain("http://h/0", max_redirects=2)
    ok.step(redirect("/1"))
    ok.step(redirect("/2"))
    assert ok.step(Answer(200, 0.0)) == Verdict(
        ProbeClass.OK, 200, "", ("http://h/0", "http://h/1", "http://h/2")
    )


def test_expect_decides_what_is_an_error() -> None:
    verdict = chain().step(Answer(404, 0.0))
    assert isinstance(verdict, Verdict)
    assert verdict.cls is ProbeClass.ERROR
    assert verdict.detail == "HTTP 404"
    gone = chain(expect=frozenset({200, 404})).step(Answer(404, 0.0))
    assert isinstance(gone, Verdict)
    assert gone.cls is ProbeClass.OK
    # An expected redirect is an answer, not a hop.
    kept = chain(expect=frozenset({301})).step(redirect("/b"))
    assert isinstance(kept, Verdict)
    assert kept.cls is ProbeClass.OK
    assert kept.status == 301
    empty = chain().step(Answer(302, 0.0))
    assert isinstance(empty, Verdict)
    assert empty.cls is ProbeClass.ERROR
    assert "without Location" in empty.detail


def test_the_target_is_judged_by_its_own_answer_not_the_last_hop() -> None:
    walk = chain(freshness=Freshness(purged_at=PURGED))
    old = Answer(301, 1_010.0, age="600", location="/b")
    assert walk.step(old) == "http://h/b"
    verdict = walk.step(Answer(200, 1_010.0, age="0"))
    assert isinstance(verdict, Verdict)
    assert verdict.cls is ProbeClass.STALE


def test_a_location_to_another_scheme_is_an_error() -> None:
    verdict = chain().step(redirect("ftp://h/x"))
    assert isinstance(verdict, Verdict)
    assert verdict.cls is ProbeClass.ERROR
