"""Akamai EdgeGrid: where the credentials come from, and how a request is signed.

EdgeGrid (``EG1-HMAC-SHA256``) signs each request with an HMAC of its method, scheme,
host, path and query, chosen headers and a hash of the body, keyed by an HMAC of the
timestamp under the client secret. It is implemented here on the standard library, so
purger does not depend on ``edgegrid-python`` (a ``requests`` plugin it could not use with
httpx anyway). The algorithm follows akamai/AkamaiOPEN-edgegrid-python
``akamai/edgegrid/edgegrid.py``; ``tests/providers/test_edgegrid.py`` checks it against
that repository's published test vectors.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from purger.errors import UsageError
from purger.model import Secret

__all__ = [
    "DEFAULT_MAX_BODY",
    "ENV_VARIABLES",
    "EdgeGridCredentials",
    "authorization",
    "eg_timestamp",
    "load_credentials",
]

#: How much of a POST body the signature covers when ``.edgerc`` does not say.
DEFAULT_MAX_BODY = 131072
#: The variables that, when set, replace the default ``~/.edgerc`` (all four are needed).
ENV_VARIABLES = (
    "AKAMAI_CLIENT_TOKEN",
    "AKAMAI_CLIENT_SECRET",
    "AKAMAI_ACCESS_TOKEN",
    "AKAMAI_HOST",
)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeGridCredentials:
    """One API client's credentials. ``origin`` names where they came from (a file section
    or the environment) so that an :class:`~purger.errors.AuthError` can point there; all
    three tokens are :class:`Secret`, because together they are the credential."""

    client_token: Secret
    client_secret: Secret
    access_token: Secret
    host: str
    origin: str
    max_body: int = DEFAULT_MAX_BODY

    def secrets(self) -> tuple[str, ...]:
        """The revealed values, for scrubbing them out of any text shown to a person."""
        return tuple(s.reveal() for s in (self.client_token, self.client_secret, self.access_token))


class _EdgeRc(configparser.ConfigParser):
    """``.edgerc`` spells keys both ``max-body`` and ``max_body``, like the Akamai clients."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr.replace("-", "_").lower()


def load_credentials(
    env: Mapping[str, str], edgerc: Path | None, section: str
) -> EdgeGridCredentials:
    """Read credentials: an explicit ``--edgerc`` file wins; otherwise the ``AKAMAI_*``
    variables when any is set (then all four must be); otherwise ``~/.edgerc``."""
    if edgerc is None and any(env.get(name) for name in ENV_VARIABLES):
        return _from_env(env)
    if edgerc is None:
        home = env.get("HOME")
        edgerc = (Path(home) if home else Path.home()) / ".edgerc"
    return _from_file(edgerc, section)


def _from_env(env: Mapping[str, str]) -> EdgeGridCredentials:
    for name in ENV_VARIABLES:
        if not env.get(name):
            raise UsageError(f"{name} is not set (the AKAMAI_* variables are used together)")
    return EdgeGridCredentials(
        client_token=Secret(env["AKAMAI_CLIENT_TOKEN"]),
        client_secret=Secret(env["AKAMAI_CLIENT_SECRET"]),
        access_token=Secret(env["AKAMAI_ACCESS_TOKEN"]),
        host=env["AKAMAI_HOST"],
        origin="AKAMAI_CLIENT_TOKEN/AKAMAI_CLIENT_SECRET/AKAMAI_ACCESS_TOKEN",
    )


def _from_file(path: Path, section: str) -> EdgeGridCredentials:
    parser = _EdgeRc(interpolation=None)
    try:
        with path.open(encoding="utf-8") as file:
            parser.read_file(file)
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot read the .edgerc file ({exc.strerror}) (--edgerc)"
        ) from exc
    except UnicodeDecodeError as err:
        # Where, not what: the bytes around the bad one may be a secret.
        raise UsageError(
            f"{path}: the .edgerc file is not UTF-8 text (byte {err.start + 1}) (--edgerc)"
        ) from None
    except configparser.Error:
        # The parser's message may quote a line of the file, secret included: leave it out.
        raise UsageError(f"{path}: not a valid .edgerc file (--edgerc)") from None
    if not parser.has_section(section):
        raise UsageError(f"{path}: no section [{section}] (--edgerc-section)")
    values = parser[section]
    for key in ("client_token", "client_secret", "access_token", "host"):
        if not values.get(key, "").strip():
            raise UsageError(f"{path} [{section}]: {key} is not set (--edgerc-section)")
    max_body = values.get("max_body", str(DEFAULT_MAX_BODY)).strip()
    if not max_body.isdigit() or int(max_body) <= 0:
        raise UsageError(f"{path} [{section}]: max-body must be a positive integer")
    return EdgeGridCredentials(
        client_token=Secret(values["client_token"].strip()),
        client_secret=Secret(values["client_secret"].strip()),
        access_token=Secret(values["access_token"].strip()),
        host=values["host"].strip(),
        origin=f"{path} section [{section}]",
        max_body=int(max_body),
    )


def eg_timestamp(epoch: float) -> str:
    """EdgeGrid's timestamp format, in UTC: ``20140321T19:34:21+0000``."""
    return time.strftime("%Y%m%dT%H:%M:%S+0000", time.gmtime(epoch))


def _hmac_b64(key: str, data: str) -> str:
    digest = hmac.new(key.encode(), data.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def authorization(
    request: httpx.Request,
    credentials: EdgeGridCredentials,
    *,
    timestamp: str,
    nonce: str,
    headers_to_sign: Sequence[str] = (),
) -> str:
    """The ``Authorization`` header value for ``request`` exactly as it will be sent: the
    signature covers its ``Host`` header and raw path, so sign the built request."""
    unsigned = (
        "EG1-HMAC-SHA256 "
        f"client_token={credentials.client_token.reveal()};"
        f"access_token={credentials.access_token.reveal()};"
        f"timestamp={timestamp};nonce={nonce};"
    )
    signed_headers = "\t".join(
        f"{name.lower()}:{_SPACES.sub(' ', request.headers[name].strip())}"
        for name in headers_to_sign
        if name in request.headers
    )
    content_hash = ""
    body = request.content[: credentials.max_body]
    if request.method == "POST" and body:
        content_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
    data = "\t".join(
        [
            request.method,
            request.url.scheme,
            request.headers.get("Host", request.url.netloc.decode("ascii")),
            request.url.raw_path.decode("ascii"),
            signed_headers,
            content_hash,
            unsigned,
        ]
    )
    signing_key = _hmac_b64(credentials.client_secret.reveal(), timestamp)
    return unsigned + "signature=" + _hmac_b64(signing_key, data)
