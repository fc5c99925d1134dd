"""Cloudflare: ``purge_cache`` by cache tag or by URL on one zone.

One endpoint takes either ``{"tags": [...]}`` (up to 100) or ``{"files": [...]}`` (30,
100 or 500 by plan: ``--files-cap``). Cloudflare has no soft purge, so ``--hard`` changes
nothing. Answers come in the v4 envelope ``{success, errors: [{code, message}], result}``;
an error's first code and message go into the exception, since they say what to fix.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import ClassVar
from urllib.parse import quote

import httpx

from purger.errors import AuthError, RateLimitedError, RejectedError, TransientError, UsageError
from purger.model import Batch, BatchResult, Secret, TargetKind, redact_url, scrub, url_secrets
from purger.providers import TOKEN_VARIABLES, ProviderOptions
from purger.providers._http import json_or_none, retry_after_seconds
from purger.providers._token import api_token
from purger.providers.base import ProviderLimits, RateBucket

__all__ = ["CloudflareProvider", "from_options"]

DEFAULT_API_BASE = "https://api.cloudflare.com"
CREDENTIAL_ENV = TOKEN_VARIABLES["cloudflare"]
MAX_TAGS = 100
MAX_FILES = 500
#: Cloudflare's "could not route / no route for that URI": the zone id in the path is wrong.
_ROUTE_CODES = frozenset({7000, 7003})
#: The ``t=`` (seconds to reset) of the 2025 ``Ratelimit`` header.
_RATELIMIT_T = re.compile(r"(?:^|;)\s*t=(\d+)")

# The client API allows 1,200 calls per 5 minutes (cdn-apis.md 2.5) and purges also draw
# on a per-plan bucket of 25 to 500 (2.4). A bucket of 25 refilled at 3.5/s can never
# pass more than 25 + 3.5 * 300 = 1,075 calls in any 5 minutes, under both limits for
# every paid plan. (Free plans allow only 5 tag purges a minute: lower --rate there.)
_CALLS = RateBucket(per_second=3.5, burst=25, unit="calls")


class CloudflareProvider:
    """Purges on one zone with an API token that has the zone's Cache Purge permission."""

    name: ClassVar[str] = "cloudflare"

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        token: Secret,
        zone_id: str,
        api_base: str = DEFAULT_API_BASE,
        files_cap: int = 30,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= files_cap <= MAX_FILES:
            raise UsageError(
                f"--files-cap must be from 1 to {MAX_FILES} (30, 100 or 500), not {files_cap}"
            )
        self._client = client
        self._token = token
        self._zone_id = zone_id
        self._api_base = api_base.rstrip("/")
        self._shown_base = redact_url(self._api_base)  # how messages show it
        # A proxy's user name and password are as secret as the token.
        self._secrets: tuple[Secret | str, ...] = (token, *url_secrets(api_base))
        self._timeout = timeout
        self._clock = clock
        self._limits = ProviderLimits(
            max_targets={TargetKind.KEY: MAX_TAGS, TargetKind.URL: files_cap},
            buckets=(_CALLS,),
            api_latency=0.3,
            soft_purge=False,
        )

    def __repr__(self) -> str:
        return f"CloudflareProvider(zone_id={self._zone_id!r}, api_base={self._shown_base!r})"

    @property
    def limits(self) -> ProviderLimits:
        return self._limits

    def target_bytes(self, kind: TargetKind, target: str) -> int:
        # Each target costs its JSON string and a comma; no body cap is published.
        return len(json.dumps(target)) + 1

    async def purge(self, batch: Batch, /) -> BatchResult:
        if len(batch) > self._limits.max_targets[batch.kind]:
            raise ValueError(f"a batch of {len(batch)} {batch.kind}s is over the limit")
        if not batch.targets:
            return BatchResult(purged=0)
        field = "tags" if batch.kind is TargetKind.KEY else "files"
        body = json.dumps({field: list(batch.targets)}, separators=(",", ":")).encode()
        url = f"{self._api_base}/client/v4/zones/{quote(self._zone_id, safe='')}/purge_cache"
        headers = {
            "Authorization": f"Bearer {self._token.reveal()}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        try:
            response = await self._client.post(
                url, content=body, headers=headers, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            message = f"no answer within {self._timeout:g} s ({type(exc).__name__})"
            raise TransientError(message, provider="cloudflare") from exc
        except httpx.TransportError as exc:
            message = self._scrub(f"{type(exc).__name__}: {exc}")
            raise TransientError(message, provider="cloudflare") from exc
        envelope = json_or_none(response)
        if response.is_success and isinstance(envelope, dict) and envelope.get("success") is True:
            result = envelope.get("result")
            purge_id = result.get("id") if isinstance(result, dict) else None
            return BatchResult(
                purged=len(batch), purge_id=purge_id if isinstance(purge_id, str) else None
            )
        raise self._error(response, envelope)

    def _error(self, response: httpx.Response, envelope: object) -> Exception:
        status = response.status_code
        code, text = _first_error(envelope)
        if status in (401, 403):
            return AuthError("cloudflare", status, CREDENTIAL_ENV)
        # Scrubbed before it is cut: a cut can split an echoed token past recognizing.
        text = scrub(text, self._secrets, limit=300)
        detail = f"error {code}: {text}" if code is not None else text or self._snippet(response)
        message = f"HTTP {status}: {detail}"
        if status == 429:
            return RateLimitedError(
                message, provider="cloudflare", retry_after=self._retry_after(response)
            )
        if status == 404 or code in _ROUTE_CODES:
            return UsageError(f"cloudflare: zone {self._zone_id!r} not found (--zone-id): {detail}")
        if status == 408 or status >= 500:
            return TransientError(message, provider="cloudflare", status=status)
        if response.is_success and not (isinstance(envelope, dict) and "success" in envelope):
            # A 2xx that is not the v4 envelope came from something in between: try again.
            return TransientError(
                f"{message} (not a v4 envelope)", provider="cloudflare", status=status
            )
        if status < 400 and not response.is_success:
            return UsageError(
                f"cloudflare: unexpected HTTP {status} from {self._shown_base} (--api-base)"
            )
        return RejectedError(message, provider="cloudflare", status=status)

    def _retry_after(self, response: httpx.Response) -> float | None:
        """``Retry-After`` first, then the ``t=`` of the newer ``Ratelimit`` header."""
        wait = retry_after_seconds(response.headers.get("Retry-After"), self._clock())
        if wait is not None:
            return wait
        match = _RATELIMIT_T.search(response.headers.get("Ratelimit", ""))
        return float(match.group(1)) if match else None

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    def _snippet(self, response: httpx.Response) -> str:
        return scrub(response.text, self._secrets, limit=200).strip() or response.reason_phrase


def _first_error(envelope: object) -> tuple[int | None, str]:
    """The first ``errors[]`` entry's code and message, if the body has one."""
    if isinstance(envelope, dict):
        errors = envelope.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = errors[0].get("code")
            return (code if isinstance(code, int) else None), str(errors[0].get("message", ""))
    return None, ""


def from_options(
    options: ProviderOptions,
    client: httpx.AsyncClient,
    env: Mapping[str, str],
    *,
    clock: Callable[[], float] = time.time,
) -> CloudflareProvider:
    """Cloudflare needs ``CLOUDFLARE_API_TOKEN`` and ``--zone-id``, checked before any call."""
    token = api_token(options, env, CREDENTIAL_ENV)
    if not options.zone_id:
        raise UsageError("cloudflare needs --zone-id (the zone whose cache is purged)")
    return CloudflareProvider(
        client=client,
        token=token,
        zone_id=options.zone_id,
        api_base=options.api_base or DEFAULT_API_BASE,
        files_cap=options.files_cap,
        timeout=options.timeout,
        clock=clock,
    )
