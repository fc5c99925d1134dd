"""EdgeGrid signing against Akamai's published vectors, and where credentials come from."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from purger.errors import UsageError
from purger.model import Secret
from purger.providers.edgegrid import (
    DEFAULT_MAX_BODY,
    EdgeGridCredentials,
    authorization,
    eg_timestamp,
    load_credentials,
)

# Test vectors from akamai/AkamaiOPEN-edgegrid-python, akamai/edgegrid/test/testdata.json
# (commit da6ec9f37469c78fa5c862090de2db761fa24ee6), the data its test_edgegrid.py runs:
# the request is base_url joined with path, signed with max_body 2048 and headers_to_sign
# X-Test1..3. "jsontest_hash" is that file's JsonTest: a requests-style JSON POST.
BASE_URL = "https://akaa-baseurl-xxxxxxxxxxx-xxxxxxxxxxxxx.luna.akamaiapis.net"
HOST = {"Host": "akaa-baseurl-xxxxxxxxxxx-xxxxxxxxxxxxx.luna.akamaiapis.net"}
TIMESTAMP = "20140321T19:34:21+0000"
NONCE = "nonce-xx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
HEADERS_TO_SIGN = ("X-Test1", "X-Test2", "X-Test3")
PREFIX = (
    "EG1-HMAC-SHA256 client_token=akab-client-token-xxx-xxxxxxxxxxxxxxxx;"
    "access_token=akab-access-token-xxx-xxxxxxxxxxxxxxxx;"
    "timestamp=20140321T19:34:21+0000;nonce=nonce-xx-xxxx-xxxx-xxxx-xxxxxxxxxxxx;signature="
)
VECTORS = [
    # (testName, method, path, body, extra headers, expected signature)
    ("simple GET", "GET", "/", None, {}, "tL+y4hxyHxgWVD30X3pWnGKHcPzmrIF+LThiAOhMxYU="),
    (
        "GET with querystring",
        "GET",
        "/testapi/v1/t1?p1=1&p2=2",
        None,
        {},
        "hKDH1UlnQySSHjvIcZpDMbQHihTQ0XyVAKZaApabdeA=",
    ),
    (
        "POST inside limit",
        "POST",
        "/testapi/v1/t3",
        b"datadatadatadatadatadatadatadata",
        {},
        "hXm4iCxtpN22m4cbZb4lVLW5rhX8Ca82vCFqXzSTPe4=",
    ),
    # The file's "POST too large" body is longer than max_body (2048) and signs the same
    # as "POST length equals max_body": only the first max_body bytes are hashed.
    (
        "POST too large",
        "POST",
        "/testapi/v1/t3",
        b"d" * 4096,
        {},
        "6Q6PiTipLae6n4GsSIDTCJ54bEbHUBp+4MUXrbQCBoY=",
    ),
    (
        "POST length equals max_body",
        "POST",
        "/testapi/v1/t3",
        b"d" * 2048,
        {},
        "6Q6PiTipLae6n4GsSIDTCJ54bEbHUBp+4MUXrbQCBoY=",
    ),
    (
        "POST empty body",
        "POST",
        "/testapi/v1/t6",
        b"",
        {},
        "1gEDxeQGD5GovIkJJGcBaKnZ+VaPtrc4qBUHixjsPCQ=",
    ),
    (
        "Simple header signing with GET",
        "GET",
        "/testapi/v1/t4",
        None,
        {"X-Test1": "test-simple-header"},
        "8F9AybcRw+PLxnvT+H0JRkjROrrUgsxJTnRXMzqvcwY=",
    ),
    (
        "Header containing spaces",
        "GET",
        "/testapi/v1/t4",
        None,
        {"X-Test1": '"     test-header-with-spaces     "'},
        "ucq2AbjCNtobHfCTuS38fdkl5UDdWHZhQX46fYR8CqI=",
    ),
    (
        "Header with leading and interior spaces",
        "GET",
        "/testapi/v1/t4",
        None,
        {"X-Test1": "     first-thing      second-thing"},
        "WtnneL539UadAAOJwnsXvPqT4Kt6z7HMgBEwAFpt3+c=",
    ),
    (
        "Headers out of order",
        "GET",
        "/testapi/v1/t4",
        None,
        {"X-Test2": "t2", "X-Test1": "t1", "X-Test3": "t3"},
        "Wus73Nx8jOYM+kkBFF2q8D1EATRIMr0WLWwpLBgkBqY=",
    ),
    (
        "Extra header",
        "GET",
        "/testapi/v1/t5",
        None,
        {"X-Test2": "t2", "X-Test1": "t1", "X-Test3": "t3", "X-Extra": "this won't be included"},
        "Knd/jc0A5Ghhizjayr0AUUvl2MZjBpS3FDSzvtq4Ixc=",
    ),
    (
        "PUT test",
        "PUT",
        "/testapi/v1/t6",
        b"P" * 31,
        {},
        "GNBWEYSEWOLtu+7dD52da2C39aX/Jchpon3K/AmBqBU=",
    ),
]


def vector_credentials(max_body: int) -> EdgeGridCredentials:
    return EdgeGridCredentials(
        client_token=Secret("akab-client-token-xxx-xxxxxxxxxxxxxxxx"),
        client_secret=Secret("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx="),
        access_token=Secret("akab-access-token-xxx-xxxxxxxxxxxxxxxx"),
        host="akaa-baseurl-xxxxxxxxxxx-xxxxxxxxxxxxx.luna.akamaiapis.net",
        origin="test vectors",
        max_body=max_body,
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "signature"),
    [vector[1:] for vector in VECTORS],
    ids=[vector[0] for vector in VECTORS],
)
def test_published_vectors(method, path, body, headers, signature):
    """Each testdata.json case signs to its expectedAuthorization."""
    request = httpx.Request(method, BASE_URL + path, content=body, headers={**HOST, **headers})
    header = authorization(
        request,
        vector_credentials(2048),
        timestamp=TIMESTAMP,
        nonce=NONCE,
        headers_to_sign=HEADERS_TO_SIGN,
    )
    assert header == PREFIX + signature


def test_published_json_post_vector():
    """testdata.json "jsontest_hash": a JSON POST with a query string, default max_body."""
    request = httpx.Request(
        "POST",
        BASE_URL + "/testapi/v1/t3?extended=true",
        content=b'{"key": "value"}',
        headers={"Content-Type": "application/json"},
    )
    header = authorization(
        request, vector_credentials(DEFAULT_MAX_BODY), timestamp=TIMESTAMP, nonce=NONCE
    )
    assert header == PREFIX + "nONuDe50qGrPius4Rg4D2jfi/2zDZWAYRUG6RudJLNM="


def test_timestamp_format():
    """Timestamps are UTC, yyyyMMddTHH:mm:ss+0000 (the vectors' 2014-03-21 19:34:21)."""
    assert eg_timestamp(1395430461) == TIMESTAMP


EDGERC = """\
[default]
client_secret = secret-default-AAAA=
host = akab-default.luna.akamaiapis.net
access_token = akab-access-default
client_token = akab-client-default

[purge]
client_secret = secret-purge-BBBB=
host = akab-purge.luna.akamaiapis.net/
access_token = akab-access-purge
client_token = akab-client-purge
max-body = 2048

[broken]
client_secret = secret-broken
host = akab-broken.luna.akamaiapis.net
"""
AKAMAI_ENV = {
    "AKAMAI_CLIENT_TOKEN": "akab-client-env",
    "AKAMAI_CLIENT_SECRET": "secret-env-CCCC=",
    "AKAMAI_ACCESS_TOKEN": "akab-access-env",
    "AKAMAI_HOST": "akab-env.luna.akamaiapis.net",
}


@pytest.fixture
def edgerc(tmp_path: Path) -> Path:
    path = tmp_path / "edgerc"
    path.write_text(EDGERC)
    return path


def test_edgerc_section_with_max_body(edgerc):
    """A named section is read, max-body included; the secrets stay wrapped."""
    credentials = load_credentials({}, edgerc, "purge")
    assert credentials.client_secret.reveal() == "secret-purge-BBBB="
    assert credentials.host == "akab-purge.luna.akamaiapis.net/"
    assert credentials.max_body == 2048
    assert credentials.origin == f"{edgerc} section [purge]"
    assert "secret-purge" not in repr(credentials)


def test_edgerc_default_section_and_default_max_body(edgerc):
    """[default] without max-body signs up to 131072 bytes."""
    credentials = load_credentials({}, edgerc, "default")
    assert credentials.client_token.reveal() == "akab-client-default"
    assert credentials.max_body == DEFAULT_MAX_BODY


def test_home_edgerc_is_the_default(tmp_path):
    """With no --edgerc and no AKAMAI_* variables, $HOME/.edgerc is read."""
    (tmp_path / ".edgerc").write_text(EDGERC)
    credentials = load_credentials({"HOME": str(tmp_path)}, None, "default")
    assert credentials.host == "akab-default.luna.akamaiapis.net"


def test_environment_replaces_the_default_edgerc():
    """The four AKAMAI_* variables, when set, are the credentials."""
    credentials = load_credentials(AKAMAI_ENV, None, "default")
    assert credentials.client_secret.reveal() == "secret-env-CCCC="
    assert "AKAMAI_CLIENT_SECRET" in credentials.origin


def test_explicit_edgerc_wins_over_the_environment(edgerc):
    """--edgerc given on purpose is used even when AKAMAI_* are set."""
    assert load_credentials(AKAMAI_ENV, edgerc, "default").host.startswith("akab-default")


def test_partial_environment_names_the_missing_variable():
    """Some AKAMAI_* set but not all: the missing one is named."""
    env = {k: v for k, v in AKAMAI_ENV.items() if k != "AKAMAI_ACCESS_TOKEN"}
    with pytest.raises(UsageError, match="AKAMAI_ACCESS_TOKEN is not set"):
        load_credentials(env, None, "default")


def test_missing_file_section_or_key_names_the_flag(edgerc, tmp_path):
    """A missing file names --edgerc; a missing section or key names --edgerc-section."""
    with pytest.raises(UsageError, match="--edgerc\\)"):
        load_credentials({}, tmp_path / "nope", "default")
    with pytest.raises(UsageError, match="no section \\[other\\] \\(--edgerc-section\\)"):
        load_credentials({}, edgerc, "other")
    with pytest.raises(UsageError, match="client_token is not set \\(--edgerc-section\\)"):
        load_credentials({}, edgerc, "broken")


def test_unparseable_edgerc_does_not_quote_it(tmp_path):
    """A malformed file is a UsageError whose message shows none of its lines."""
    path = tmp_path / "edgerc"
    path.write_text("client_secret = leaked-secret\n[default]\n")
    with pytest.raises(UsageError, match=r"not a valid \.edgerc") as caught:
        load_credentials({}, path, "default")
    assert "leaked-secret" not in str(caught.value)


@pytest.mark.parametrize(
    "content",
    [
        b"[default]\nclient_secret = s3cr\xffet\nhost = h\n",  # a stray byte
        "[default]\nclient_secret = sécret\n".encode("latin-1"),  # another encoding
        b"\xff\xfe[\x00d\x00",  # UTF-16
    ],
)
def test_a_non_utf8_edgerc_is_a_usage_error_naming_the_file(tmp_path, content):
    """Not a UnicodeDecodeError traceback: one line naming the file, quoting none of it."""
    path = tmp_path / "edgerc"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=r"edgerc: the \.edgerc file is not UTF-8") as caught:
        load_credentials({}, path, "default")
    assert str(caught.value).startswith(str(path))
    assert "s3cr" not in str(caught.value)
