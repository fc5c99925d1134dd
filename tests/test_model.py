"""The one scrubbing function and the one URL redaction, shared by every module that shows
or stores text that may hold a secret."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from purger.model import FRAGMENT_CHARS, Secret, redact_url, scrub, url_secrets

TOKEN = "Zq7xK2mP9vLw4RtY8nBc3HsD6fGj1aEu5oIk0yTrWq2ZxCvBnM"  # noqa: S105 - 50 characters, fake


def leaked(text: str, secret: str = TOKEN) -> list[str]:
    """Every run of FRAGMENT_CHARS characters of ``secret`` still in ``text``."""
    return [
        secret[i : i + FRAGMENT_CHARS]
        for i in range(len(secret) - FRAGMENT_CHARS + 1)
        if secret[i : i + FRAGMENT_CHARS] in text
    ]


def test_a_secret_cut_by_the_limit_is_scrubbed_before_the_cut() -> None:
    """49 of 50 characters before the cut: cutting first would leave them all."""
    body = "y" * 251 + TOKEN + " trailing text"
    shown = scrub(body, [Secret(TOKEN)], limit=300)
    assert len(shown) <= 300
    assert leaked(shown) == []
    assert shown.startswith("y" * 251 + "***")


def test_a_fragment_of_a_secret_is_scrubbed_wherever_it_is() -> None:
    """A body that itself cut or split the token leaks no run of 8 of its characters."""
    body = f"bad key '{TOKEN[:30]}...' and '...{TOKEN[22:]}'; also {TOKEN[10:18]}!"
    shown = scrub(body, [TOKEN])
    assert leaked(shown) == []
    assert shown == "bad key '***...' and '...***'; also ***!"


def test_a_secret_echoed_in_another_case_is_scrubbed() -> None:
    body = f"token {TOKEN.upper()} / {TOKEN[5:20].lower()} refused"
    assert scrub(body, [TOKEN]) == "token *** / *** refused"


def test_short_fragments_and_other_text_are_kept() -> None:
    text = f"HTTP 400: token {TOKEN[: FRAGMENT_CHARS - 1]} is not valid"
    assert scrub(text, [TOKEN]) == text
    assert scrub("nothing here", [Secret(""), ""]) == "nothing here"


def test_a_short_secret_is_scrubbed_whole() -> None:
    assert scrub("user pw1 in pw1x", ["pw1"]) == "user *** in ***x"


@given(
    before=st.text(max_size=400),
    after=st.text(max_size=50),
    start=st.integers(0, len(TOKEN) - FRAGMENT_CHARS),
    limit=st.integers(1, 500),
)
def test_no_run_of_8_characters_of_a_secret_survives_scrub_and_cut(
    before: str, after: str, start: int, limit: int
) -> None:
    """Any piece of the token, anywhere in a body, cut anywhere: no 8 of its characters left."""
    shown = scrub(before + TOKEN[start:] + after, [Secret(TOKEN)], limit=limit)
    assert len(shown) <= limit
    assert leaked(shown) == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:pass@proxy:3128", "http://***@proxy:3128"),
        ("https://tok3n@api.example/v1/?key=k3y#top", "https://***@api.example/v1/#top"),
        ("http://us%40er:p%3Ass@proxy/", "http://***@proxy/"),
        ("http://a:b@c@proxy/", "http://***@proxy/"),
        ("https://api.fastly.com", "https://api.fastly.com"),
        ("http://proxy/path@x", "http://proxy/path@x"),  # an @ in the path is not userinfo
        ("https://u:p@[::1/", "https://***@[::1/"),  # invalid, still redacted
        ("not a url", "not a url"),
    ],
)
def test_redact_url_masks_userinfo_and_drops_the_query(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_url_secrets_are_the_userinfo_parts_as_written_and_decoded() -> None:
    found = url_secrets("http://us%40er:p%3Ass@proxy/")
    assert {"us%40er", "p%3Ass", "us@er", "p:ss", "us%40er:p%3Ass"} <= set(found)
    assert url_secrets("https://api.example/") == ()
    assert url_secrets(None) == ()
    message = "ConnectError: cannot reach us@er:p:ss@proxy"
    assert "p:ss" not in scrub(message, found)
