"""The one path every HTTP provider call takes: auth, send, error mapping, retries."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from providers.adapter import HttpAdapter
from providers.deployment import Deployment
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
    ServerError,
)
from providers.retry import RetryPolicy
from providers.types import RerankRequest, RerankResponse, sort_and_cut

REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "x-amz-request-id", "cf-ray")
EXCERPT_CHARS = 300


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


def _request_id(headers: Mapping[str, str]) -> str | None:
    for name in REQUEST_ID_HEADERS:
        if value := headers.get(name):
            return value
    return None


def _envelope_message(body: Any) -> str | None:
    """The human message out of any provider's error envelope."""
    if isinstance(body, str):
        return body
    if not isinstance(body, dict):
        return None
    for key in ("message", "detail", "error", "msg", "Message", "errorMessage"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict):
            nested = _envelope_message(value)
            if nested:
                return nested
    return None


def error_for_response(provider: str, response: httpx.Response) -> ProviderError:
    """Translate a non-2xx answer into the typed error tree, once."""
    text = response.text
    try:
        message = _envelope_message(orjson.loads(text)) or text[:EXCERPT_CHARS]
    except orjson.JSONDecodeError:
        message = text[:EXCERPT_CHARS]
    status = response.status_code
    kwargs: dict[str, Any] = {
        "provider": provider,
        "status": status,
        "request_id": _request_id(response.headers),
        "body_excerpt": text[:EXCERPT_CHARS] or None,
        "retry_after": parse_retry_after(response.headers.get("retry-after")),
    }
    message = message or response.reason_phrase or f"HTTP {status}"
    if status == 429:
        return RateLimitedError(message, **kwargs)
    if status == 408:
        return ProviderTimeoutError(message, **kwargs)
    if status in (409, 425) or status >= 500:
        return ServerError(message, **kwargs)
    if status in (401, 403):
        return AuthenticationError(message, **kwargs)
    if status == 402:
        return QuotaExceededError(message, **kwargs)
    return InvalidRequestError(message, **kwargs)


def auth_headers(adapter: HttpAdapter, deployment: Deployment) -> dict[str, str]:
    key = deployment.credentials.api_key
    if key is None or not key.get_secret_value():
        if adapter.key_required:
            names = " or ".join(adapter.key_env)
            raise ConfigurationError(
                f"no API key for {deployment.model!r}: set {names}", provider=adapter.provider
            )
        return {}
    return {"authorization": f"Bearer {key.get_secret_value()}"}


class HttpTransport:
    """Sends adapter requests over one shared ``httpx.AsyncClient`` with retries."""

    def __init__(self, client: httpx.AsyncClient, retry: RetryPolicy) -> None:
        self.client = client
        self.retry = retry

    async def rerank(
        self, adapter: HttpAdapter, deployment: Deployment, request: RerankRequest
    ) -> RerankResponse:
        wire = adapter.build_request(deployment, request)
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            **auth_headers(adapter, deployment),
            **wire.headers,
        }
        content = orjson.dumps(wire.body)

        async def attempt() -> tuple[httpx.Response, Any]:
            return await self._send_once(adapter.provider, wire.method, wire.url, headers, content)

        (response, body), attempts = await self.retry.call(attempt)
        try:
            parsed = adapter.parse_response(body, request)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise BadResponseError(
                f"unexpected response shape: {exc!r}",
                provider=adapter.provider,
                status=response.status_code,
                request_id=_request_id(response.headers),
                body_excerpt=response.text[:EXCERPT_CHARS],
            ) from exc
        return RerankResponse(
            results=sort_and_cut(parsed.results, request.top_n),
            response_id=parsed.response_id,
            request_id=_request_id(response.headers),
            usage=parsed.usage,
            attempts=attempts,
        )

    async def _send_once(
        self, provider: str, method: str, url: str, headers: dict[str, str], content: bytes
    ) -> tuple[httpx.Response, Any]:
        try:
            response = await self.client.request(method, url, headers=headers, content=content)
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
        try:
            return response, orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise BadResponseError(
                "response is not JSON",
                provider=provider,
                status=response.status_code,
                request_id=_request_id(response.headers),
                body_excerpt=response.text[:EXCERPT_CHARS],
            ) from exc
