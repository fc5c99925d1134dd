"""Akamai Fast Purge v3: invalidate (the default) or delete by URL, cache tag or CP code.

``POST /ccu/v3/{invalidate|delete}/{url|tag|cpcode}/{network}`` with ``{"objects": [...]}``,
signed with EdgeGrid (:mod:`purger.providers.edgegrid`). *Invalidate* marks objects stale
so edges revalidate, and keep serving if the origin is down; *delete* (``--hard`` or
``--akamai-action delete``) forces refetches. A call is capped by its body, 50,000 bytes,
not by a count, so :meth:`AkamaiProvider.target_bytes` is the exact JSON cost of a target.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import ClassVar, Literal

import httpx

from purger.errors import AuthError, RateLimitedError, RejectedError, TransientError, UsageError
from purger.model import Batch, BatchResult, TargetKind, redact_url, scrub, url_secrets
from purger.providers import ProviderOptions
from purger.providers._http import json_or_none, retry_after_seconds
from purger.providers.base import ProviderLimits, RateBucket
from purger.providers.edgegrid import EdgeGridCredentials, authorization, eg_timestamp
from purger.providers.edgegrid import load_credentials as load_edgegrid

__all__ = ["AkamaiProvider", "from_options"]

MAX_BODY_BYTES = 50_000
_OVERHEAD = len(b'{"objects":[]}')
#: Akamai asks for five seconds when a 429 does not say (techdocs purge-cache 429).
DEFAULT_RETRY_AFTER = 5.0
_CPCODE = re.compile(r"[0-9]{1,18}")
#: A 403 about one object ("unauthorized arl") is about the batch, not the credential.
_FOREIGN_OBJECT = re.compile(r"unauthorized (arl|url|cp ?code|tag)", re.IGNORECASE)

# The account's token buckets (cdn-apis.md 3.6): one for requests, one per object type.
_REQUESTS = RateBucket(per_second=50, burst=100, unit="calls")
_OBJECTS = {
    "url": RateBucket(per_second=200, burst=10_000, unit="targets"),
    "tag": RateBucket(per_second=500 / 60, burst=5_000, unit="targets"),
    "cpcode": RateBucket(per_second=30 / 60, burst=300, unit="targets"),
}


class AkamaiProvider:
    """Purges on one network (``production`` or ``staging``) with one API client."""

    name: ClassVar[str] = "akamai"

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        credentials: EdgeGridCredentials,
        api_base: str | None = None,
        network: Literal["staging", "production"] = "production",
        action: Literal["invalidate", "delete"] = "invalidate",
        key_type: Literal["tag", "cpcode"] = "tag",
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        host = credentials.host.rstrip("/")
        self._client = client
        self._credentials = credentials
        self._api_base = (api_base or (host if "://" in host else f"https://{host}")).rstrip("/")
        self._shown_base = redact_url(self._api_base)  # how messages show it
        self._secrets = (*credentials.secrets(), *url_secrets(self._api_base))
        self._network = network
        self._action = action
        self._key_type = key_type
        self._timeout = timeout
        self._clock = clock
        self._nonce = nonce
        # Both object buckets apply: a run purges keys or URLs, and the engine cannot yet
        # tell them apart (RateBucket has no kind), so each target draws on both.
        self._limits = ProviderLimits(
            max_targets={
                TargetKind.KEY: int(_OBJECTS[key_type].burst),
                TargetKind.URL: int(_OBJECTS["url"].burst),
            },
            max_bytes=MAX_BODY_BYTES,
            overhead_bytes=_OVERHEAD,
            buckets=(_REQUESTS, _OBJECTS[key_type], _OBJECTS["url"]),
            api_latency=0.5,
            soft_purge=action == "invalidate",
        )

    def __repr__(self) -> str:
        return (
            f"AkamaiProvider(api_base={self._shown_base!r}, network={self._network!r}, "
            f"action={self._action!r}, key_type={self._key_type!r}, "
            f"credentials={self._credentials.origin!r})"
        )

    @property
    def limits(self) -> ProviderLimits:
        return self._limits

    def target_bytes(self, kind: TargetKind, target: str) -> int:
        # Exactly what the target adds to the body, plus its comma: CP codes go as numbers.
        if kind is TargetKind.KEY and self._key_type == "cpcode" and _CPCODE.fullmatch(target):
            return len(str(int(target))) + 1
        return len(json.dumps(target)) + 1

    async def purge(self, batch: Batch, /) -> BatchResult:
        if len(batch) > self._limits.max_targets[batch.kind]:
            raise ValueError(f"a batch of {len(batch)} {batch.kind}s is over the limit")
        if not batch.targets:
            return BatchResult(purged=0)
        kind = "url" if batch.kind is TargetKind.URL else self._key_type
        objects: list[str | int] = list(batch.targets)
        if kind == "cpcode":
            bad = [t for t in batch.targets if not _CPCODE.fullmatch(t)]
            if bad:
                # The target is bad, not the run: the batch is split and the rest purged.
                raise RejectedError(f"CP code {bad[0]!r} is not an integer", provider="akamai")
            objects = [int(t) for t in batch.targets]
        body = json.dumps({"objects": objects}, separators=(",", ":")).encode()
        url = f"{self._api_base}/ccu/v3/{self._action}/{kind}/{self._network}"
        response = await self._send(url, body)
        answer = json_or_none(response)
        if not response.is_success:
            raise self._error(response, answer, len(batch))
        purge_id = answer.get("purgeId") if isinstance(answer, dict) else None
        return BatchResult(
            purged=len(batch), purge_id=purge_id if isinstance(purge_id, str) else None
        )

    async def _send(self, url: str, body: bytes) -> httpx.Response:
        request = self._client.build_request(
            "POST",
            url,
            content=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            timeout=self._timeout,
        )
        request.headers["Authorization"] = authorization(
            request,
            self._credentials,
            timestamp=eg_timestamp(self._clock()),
            nonce=self._nonce(),
        )
        try:
            return await self._client.send(request)
        except httpx.TimeoutException as exc:
            message = f"no answer within {self._timeout:g} s ({type(exc).__name__})"
            raise TransientError(message, provider="akamai") from exc
        except httpx.TransportError as exc:
            message = self._scrub(f"{type(exc).__name__}: {exc}")
            raise TransientError(message, provider="akamai") from exc

    def _error(self, response: httpx.Response, answer: object, size: int) -> Exception:
        status = response.status_code
        problem = answer if isinstance(answer, dict) else {}
        title = str(problem.get("title") or response.reason_phrase)
        detail = str(problem.get("detail") or "")
        # Scrubbed before it is cut: a cut can split an echoed secret past recognizing.
        message = scrub(
            f"HTTP {status}: {title}" + (f": {detail}" if detail else ""), self._secrets, limit=300
        )
        if status == 401 or (status == 403 and not _FOREIGN_OBJECT.match(title)):
            return AuthError("akamai", status, self._credentials.origin)
        if status == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After"), self._clock())
            # rateLimitRemaining counts objects only when the object bucket ran dry; under
            # the plain "Rate Limit exceeded" title it counts requests (rate-limit examples).
            left = problem.get("rateLimitRemaining")
            shrink = (
                isinstance(left, int)
                and title.strip().lower() != "rate limit exceeded"
                and 0 < left < size
            )
            return RateLimitedError(
                message,
                provider="akamai",
                retry_after=DEFAULT_RETRY_AFTER if wait is None else wait,
                max_targets=left if shrink and isinstance(left, int) else None,
            )
        if status == 404 or (status < 400):
            return UsageError(
                f"akamai: {message} from {self._shown_base}: check --api-base and the host "
                f"in {self._credentials.origin}"
            )
        if status == 408 or status >= 500:
            return TransientError(message, provider="akamai", status=status)
        return RejectedError(message, provider="akamai", status=status)

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)


def from_options(
    options: ProviderOptions,
    client: httpx.AsyncClient,
    env: Mapping[str, str],
    *,
    clock: Callable[[], float] = time.time,
    nonce: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> AkamaiProvider:
    """Credentials from ``--edgerc``/``--edgerc-section``, else the ``AKAMAI_*`` variables
    when set, else ``~/.edgerc``; checked before any call."""
    credentials = load_edgegrid(env, options.edgerc, options.edgerc_section)
    return AkamaiProvider(
        client=client,
        credentials=credentials,
        api_base=options.api_base,
        network=options.network,
        action="delete" if options.hard or options.akamai_action == "delete" else "invalidate",
        key_type=options.akamai_key_type,
        timeout=options.timeout,
        clock=clock,
        nonce=nonce,
    )
