"""Fastly: bulk surrogate-key purges, and single-URL purges through the API.

Keys go to ``POST /service/{id}/purge`` with a JSON body, up to 256 a call, rather than
one call per key in the path: the JSON body sidesteps the path-encoding questions keys
with ``/`` raise (shared/reference/cdn-apis.md 1.2). URLs go one a call to
``POST /purge/{host/path}``, the authenticated API form, since PyPI-like services require
auth for the ``PURGE`` method. Both are soft (``Fastly-Soft-Purge: 1``) unless ``--hard``:
a soft purge marks objects stale, so the origin sees revalidations instead of a stampede.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar
from urllib.parse import quote

import httpx

from purger.errors import (
    AuthError,
    RateLimitedError,
    RejectedError,
    TransientError,
    UsageError,
)
from purger.model import Batch, BatchResult, Secret, TargetKind, redact_url, scrub, url_secrets
from purger.providers import TOKEN_VARIABLES, ProviderOptions
from purger.providers._http import json_or_none, retry_after_seconds
from purger.providers._token import api_token
from purger.providers.base import ProviderLimits

__all__ = ["FastlyProvider", "from_options"]

DEFAULT_API_BASE = "https://api.fastly.com"
CREDENTIAL_ENV = TOKEN_VARIABLES["fastly"]
MAX_KEYS = 256


class FastlyProvider:
    """Purges on one Fastly service with an API token that has the ``purge_select`` scope."""

    name: ClassVar[str] = "fastly"

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        token: Secret,
        service_id: str,
        api_base: str = DEFAULT_API_BASE,
        hard: bool = False,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._token = token
        self._service_id = service_id
        self._api_base = api_base.rstrip("/")
        self._shown_base = redact_url(self._api_base)  # how messages show it
        # A proxy's user name and password are as secret as the token.
        self._secrets: tuple[Secret | str, ...] = (token, *url_secrets(api_base))
        self._hard = hard
        self._timeout = timeout
        self._clock = clock
        # Key and URL purges are exempt from Fastly's 1,000/h API limit and no other
        # limit is published (cdn-apis.md 1.7), so there is no bucket: a 429 is handled
        # when it comes. No byte cap is published either; keys are capped by count.
        self._limits = ProviderLimits(
            max_targets={TargetKind.KEY: MAX_KEYS, TargetKind.URL: 1},
            api_latency=0.25,
            soft_purge=not hard,
        )

    def __repr__(self) -> str:
        return (
            f"FastlyProvider(service_id={self._service_id!r}, "
            f"api_base={self._shown_base!r}, "
            f"soft_purge={not self._hard})"
        )

    @property
    def limits(self) -> ProviderLimits:
        return self._limits

    def target_bytes(self, kind: TargetKind, target: str) -> int:
        # A key costs its JSON string and a comma; a URL its bytes in the path.
        if kind is TargetKind.KEY:
            return len(json.dumps(target)) + 1
        return len(target.encode())

    async def purge(self, batch: Batch, /) -> BatchResult:
        if len(batch) > self._limits.max_targets[batch.kind]:
            raise ValueError(f"a batch of {len(batch)} {batch.kind}s is over the limit")
        if not batch.targets:
            return BatchResult(purged=0)
        if batch.kind is TargetKind.KEY:
            return await self._purge_keys(batch.targets)
        return await self._purge_url(batch.targets[0])

    async def _purge_keys(self, keys: Sequence[str]) -> BatchResult:
        sid = quote(self._service_id, safe="")
        body = json.dumps({"surrogate_keys": list(keys)}, separators=(",", ":")).encode()
        response = await self._post(f"{self._api_base}/service/{sid}/purge", body, keys=True)
        ids = json_or_none(response)
        if not isinstance(ids, dict):
            raise TransientError(
                "a 200 answer without a JSON object of purge ids", provider="fastly"
            )
        missing = [key for key in keys if not isinstance(ids.get(key), str)]
        if missing:
            # Not transient: resending the same batch would likely lose the same keys. As a
            # rejection the run splits the batch and records the keys Fastly keeps dropping.
            shown = ", ".join(repr(key) for key in missing[:3])
            raise RejectedError(
                f"no purge id for {len(missing)} of {len(keys)} keys ({shown})",
                provider="fastly",
                status=response.status_code,
            )
        return BatchResult(purged=len(keys), purge_id=ids[keys[0]])

    async def _purge_url(self, url: str) -> BatchResult:
        # The API form takes the URL without its scheme, sent as given: no re-normalizing.
        _, sep, rest = url.partition("://")
        response = await self._post(f"{self._api_base}/purge/{rest if sep else url}", None)
        answer = json_or_none(response)
        if not isinstance(answer, dict) or answer.get("status") != "ok":
            # PyPI retries a purge whose answer is not "ok"; so does purger.
            raise TransientError('the answer\'s status is not "ok"', provider="fastly")
        purge_id = answer.get("id")
        return BatchResult(purged=1, purge_id=purge_id if isinstance(purge_id, str) else None)

    async def _post(self, url: str, body: bytes | None, *, keys: bool = False) -> httpx.Response:
        headers = {"Fastly-Key": self._token.reveal(), "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if not self._hard:
            headers["Fastly-Soft-Purge"] = "1"
        try:
            response = await self._client.post(
                url, content=body, headers=headers, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            message = f"no answer within {self._timeout:g} s ({type(exc).__name__})"
            raise TransientError(message, provider="fastly") from exc
        except httpx.TransportError as exc:
            message = self._scrub(f"{type(exc).__name__}: {exc}")
            raise TransientError(message, provider="fastly") from exc
        if not response.is_success:
            raise self._error(response, keys=keys)
        return response

    def _error(self, response: httpx.Response, *, keys: bool) -> Exception:
        status = response.status_code
        if status in (401, 403):
            return AuthError("fastly", status, CREDENTIAL_ENV)
        detail = _detail(response, self._secrets)
        message = f"HTTP {status}: {detail}"
        if status == 429:
            return RateLimitedError(
                message, provider="fastly", retry_after=self._retry_after(response)
            )
        if status == 404 and keys:
            return UsageError(f"fastly: service {self._service_id!r} not found (--service-id)")
        if status < 400:
            return UsageError(
                f"fastly: unexpected HTTP {status} from {self._shown_base} (--api-base)"
            )
        if status == 408 or status >= 500:
            return TransientError(message, provider="fastly", status=status)
        return RejectedError(message, provider="fastly", status=status)

    def _retry_after(self, response: httpx.Response) -> float | None:
        """``Retry-After`` if sent, else the ``Fastly-RateLimit-Reset`` epoch from now."""
        wait = retry_after_seconds(response.headers.get("Retry-After"), self._clock())
        if wait is not None:
            return wait
        reset = response.headers.get("Fastly-RateLimit-Reset", "")
        try:
            at = float(reset)
        except ValueError:
            return None
        return max(0.0, at - self._clock()) if math.isfinite(at) else None

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)


def _detail(response: httpx.Response, secrets: tuple[Secret | str, ...]) -> str:
    """Fastly errors are ``{"msg": ..., "detail": ...}``; otherwise the start of the text.
    Scrubbed before it is cut: a cut can split an echoed token past recognizing."""
    body = json_or_none(response)
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("msg", "detail") if body.get(k)]
        if parts:
            return scrub(": ".join(parts), secrets, limit=300)
    return scrub(response.text, secrets, limit=200).strip() or response.reason_phrase


def from_options(
    options: ProviderOptions,
    client: httpx.AsyncClient,
    env: Mapping[str, str],
    *,
    clock: Callable[[], float] = time.time,
) -> FastlyProvider:
    """Fastly needs ``FASTLY_API_TOKEN`` and ``--service-id``, checked before any call."""
    token = api_token(options, env, CREDENTIAL_ENV)
    if not options.service_id:
        raise UsageError("fastly needs --service-id (the service whose keys are purged)")
    return FastlyProvider(
        client=client,
        token=token,
        service_id=options.service_id,
        api_base=options.api_base or DEFAULT_API_BASE,
        hard=options.hard,
        timeout=options.timeout,
        clock=clock,
    )
