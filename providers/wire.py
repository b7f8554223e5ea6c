"""One HTTP exchange over the shared client, and the one place its failures become typed errors.

:func:`send` performs a request and raises every httpx exception and every error status as the
tree in :mod:`providers.errors`; the dispatcher and the IBM IAM token exchange both go through
it.  What is read off an answer for those errors (request ids, ``Retry-After``, the provider's
message, a body excerpt) is read here too.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from providers.errors import (
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitedError,
    RerankError,
    ServerError,
)
from providers.redaction import PATTERNS_ONLY, Redactor
from providers.types import MAX_RESPONSE_BYTES

__all__ = [
    "DROPPED_HEADERS",
    "EXCERPT_CHARS",
    "MAX_RESPONSE_BYTES",
    "REQUEST_ID_HEADERS",
    "error_for_response",
    "parse_retry_after",
    "request_id",
    "send",
]

REQUEST_ID_HEADERS = (
    "x-request-id",
    "request-id",
    "x-amzn-requestid",
    "x-amz-request-id",
    "x-goog-request-id",
    "x-global-transaction-id",
    "nvcf-reqid",
    "x-litellm-call-id",
    "apim-request-id",
    "cf-ray",
)
EXCERPT_CHARS = 300
"""How much of an answer's body an error carries (records stay small)."""
DROPPED_HEADERS = frozenset(("content-encoding", "content-length", "transfer-encoding"))
"""Headers that describe the body as it travelled, not the decoded body kept."""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def request_id(headers: Mapping[str, str]) -> str | None:
    """The provider's id for this exchange, from the first request-id header it sets."""
    for name in REQUEST_ID_HEADERS:
        if value := headers.get(name):
            return value
    return None


def _envelope_message(body: Any) -> str | None:
    """The human message out of any provider's error envelope: ``{message}``,
    ``{error: {message}}``, ``{detail: ...}``, ``{errors: [{message}]}``, a bare string."""
    if isinstance(body, str):
        return body or None
    if isinstance(body, list):
        return next((m for item in body if (m := _envelope_message(item))), None)
    if not isinstance(body, dict):
        return None
    for key in ("message", "detail", "error", "errors", "msg", "Message", "errorMessage", "error_message"):
        if message := _envelope_message(body.get(key)):
            return message
    return None


def _body_request_id(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("request_id", "requestId", "trace", "id"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    return None


def error_for_response(provider: str, response: httpx.Response) -> ProviderError:
    """An error status as its typed error (the statuses are drawn in :mod:`providers.errors`)."""
    text = response.text
    try:
        body: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        body = None
    message = _envelope_message(body) or text[:EXCERPT_CHARS]
    status = response.status_code
    kwargs: dict[str, Any] = {
        "provider": provider,
        "status": status,
        "request_id": request_id(response.headers) or _body_request_id(body),
        "body_excerpt": text[:EXCERPT_CHARS] or None,
        "retry_after": parse_retry_after(response.headers.get("retry-after")),
    }
    message = message or response.reason_phrase or f"HTTP {status}"
    if status == 429:
        return RateLimitedError(message, **kwargs)
    if status == 408:
        return ProviderTimeoutError(message, **kwargs)
    if status in (409, 424, 425) or status >= 500:
        return ServerError(message, **kwargs)
    if status in (401, 403):
        return AuthenticationError(message, **kwargs)
    if status == 402:
        return QuotaExceededError(message, **kwargs)
    return InvalidRequestError(message, **kwargs)


def _too_large(provider: str, response: httpx.Response, size: str, max_bytes: int) -> BadResponseError:
    return BadResponseError(
        f"response body is {size} bytes; at most {max_bytes} are read (RR_MAX_RESPONSE_BYTES)",
        provider=provider,
        status=response.status_code,
        request_id=request_id(response.headers),
    )


async def _read_capped(provider: str, response: httpx.Response, max_bytes: int) -> httpx.Response:
    """The answer with its decoded body read in chunks, never more than ``max_bytes`` held: a
    bigger 2xx body is a :class:`BadResponseError`; a bigger error body is cut (only its
    start is ever shown)."""
    ok = response.status_code < 400
    declared = response.headers.get("content-length", "")
    if ok and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(provider, response, declared, max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            if ok:
                raise _too_large(provider, response, f"over {max_bytes}", max_bytes)
            chunks.append(chunk[: max_bytes - size + len(chunk)])
            break
        chunks.append(chunk)
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in DROPPED_HEADERS]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=b"".join(chunks),
        request=response.request,
        extensions=response.extensions,
    )


async def send(
    client: httpx.AsyncClient,
    provider: str,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    data: Mapping[str, str] | None = None,
    max_bytes: int = MAX_RESPONSE_BYTES,
    redactor: Redactor = PATTERNS_ONLY,
) -> httpx.Response:
    """Perform one request (``content``: raw body; ``data``: a form); a status below 400 comes
    back, anything else is raised as a :class:`~providers.errors.RerankError` naming ``provider``,
    its message and body excerpt scrubbed by ``redactor``.  The body is streamed and never held
    beyond ``max_bytes`` (see :func:`_read_capped`)."""
    try:
        return await _exchange(client, provider, method, url, headers, content, data, max_bytes)
    except RerankError as exc:
        raise redactor.error(exc) from exc.__cause__


async def _exchange(
    client: httpx.AsyncClient,
    provider: str,
    method: str,
    url: str,
    headers: Mapping[str, str] | None,
    content: bytes | None,
    data: Mapping[str, str] | None,
    max_bytes: int,
) -> httpx.Response:
    try:
        request = client.build_request(method, url, headers=headers, content=content, data=data)
        streamed = await client.send(request, stream=True)
        try:
            response = await _read_capped(provider, streamed, max_bytes)
        finally:
            await streamed.aclose()
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise ConfigurationError(f"bad base URL {url!r}: {exc}", provider=provider) from exc
    except httpx.TimeoutException as exc:
        raise ProviderTimeoutError(f"request timed out: {exc!r}", provider=provider) from exc
    except httpx.TransportError as exc:
        raise ProviderConnectionError(f"could not reach {url}: {exc!r}", provider=provider) from exc
    except httpx.DecodingError as exc:
        raise BadResponseError(f"undecodable response body: {exc}", provider=provider) from exc
    if response.status_code >= 400:
        raise error_for_response(provider, response)
    return response
