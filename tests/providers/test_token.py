"""API tokens from a token file (``--token-file``, ``provider.token_file``): read, checked,
never shown, never stored, and never silently chosen over the variable."""

from __future__ import annotations

import pytest

from purger.errors import UsageError
from purger.launch.build import run_record
from purger.model import Batch, TargetKind
from purger.names.nameset import build_name_set
from purger.planning.plan import PlanSettings, make_plan
from purger.planning.targets import parse_templates
from purger.providers import ProviderOptions, create_provider
from purger.providers._token import api_token

pytestmark = pytest.mark.anyio

TOKEN = "file-token-s3cr3t-0123456789"  # noqa: S105 (a fake, looked for in output)


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "fastly.token"
    path.write_text(TOKEN + "\n")  # as `echo` writes it
    return path


def test_the_variable_is_used_without_a_token_file():
    """No token_file: the variable, as before."""
    secret = api_token(
        ProviderOptions(name="fastly"), {"FASTLY_API_TOKEN": "t"}, "FASTLY_API_TOKEN"
    )
    assert secret.reveal() == "t"


def test_the_token_file_is_read_and_stripped(token_file):
    """The file's token, without the final newline, wrapped as a Secret."""
    options = ProviderOptions(name="fastly", token_file=token_file)
    secret = api_token(options, {}, "FASTLY_API_TOKEN")
    assert secret.reveal() == TOKEN
    assert TOKEN not in repr(secret)
    assert TOKEN not in repr(options)


def test_variable_and_token_file_together_are_refused(token_file):
    """Both set: an error naming both, not a silent choice."""
    options = ProviderOptions(name="fastly", token_file=token_file)
    with pytest.raises(UsageError, match="FASTLY_API_TOKEN and --token-file"):
        api_token(options, {"FASTLY_API_TOKEN": "other"}, "FASTLY_API_TOKEN")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot read the token file"),
        ("", "is empty"),
        ("  \n", "is empty"),
        (TOKEN + "\n" + TOKEN + "\n", "more than one word"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_bad_token_file_is_named_and_its_content_is_not(tmp_path, content, fragment):
    """Missing, empty, two tokens, not text: the message names the file, never the content."""
    path = tmp_path / "token"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    options = ProviderOptions(name="cloudflare", zone_id="Z", token_file=path)
    with pytest.raises(UsageError, match=fragment) as caught:
        api_token(options, {}, "CLOUDFLARE_API_TOKEN")
    assert str(path) in str(caught.value)
    assert TOKEN not in str(caught.value)


async def test_fastly_and_cloudflare_send_the_file_token(client, httpx_mock, token_file):
    """The token read from the file is the one that goes on the wire."""
    httpx_mock.add_response(
        url="https://api.fastly.com/service/S/purge",
        match_headers={"Fastly-Key": TOKEN},
        json={"k": "id-1"},
    )
    fastly = create_provider(
        ProviderOptions(name="fastly", service_id="S", token_file=token_file), client, {}
    )
    await fastly.purge(Batch(TargetKind.KEY, ("k",)))
    cloudflare = create_provider(
        ProviderOptions(name="cloudflare", zone_id="Z", token_file=token_file), client, {}
    )
    assert TOKEN not in repr(cloudflare)


async def test_akamai_refuses_a_token_file(client, token_file):
    """Akamai signs with EdgeGrid credentials: a token file would go unused, so it is an error."""
    with pytest.raises(UsageError, match="akamai reads its credentials"):
        create_provider(ProviderOptions(name="akamai", token_file=token_file), client, {})


def test_the_token_file_path_is_not_recorded_in_the_state(token_file):
    """Where the token is read from is not part of the run (a resume may read it elsewhere)."""
    names = build_name_set([("a", None, 1)], where="t")
    the_plan = make_plan(names, PlanSettings(workers=1), source="t")
    record = run_record(
        the_plan,
        ProviderOptions(name="fastly", service_id="S", token_file=token_file),
        parse_templates(["k/{name}"], []),
    )
    assert "token_file" not in record.provider_options
    assert str(token_file) not in repr(record)
