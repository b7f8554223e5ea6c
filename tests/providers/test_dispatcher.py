"""The shared HTTP path (providers/dispatcher.py): error mapping (statuses, Retry-After, envelopes,
bodies that are not what an adapter expects), transport failures, missing settings.  Cohere's
adapter stands for any; what every provider does in its own format: adapters/test_contract.py."""

from __future__ import annotations

import email.utils
import json
import socket
import time
from typing import Any

import httpx
import pytest

from providers.adapters import cohere
from providers.dispatcher import Dispatcher, parse_retry_after
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
from providers.types import RerankRequest
from tests.adapter_kit import Mock, failure, reranker_for, transport_for
from tests.cases.case import req
from tests.cases.cohere import dep, error, ok
from tests.servers.cohere import CohereServer
from tests.wire_server import Fault


async def fails(mock: Mock, request: RerankRequest | None = None) -> ProviderError:
    exc, _ = await failure(cohere.ADAPTER, dep(), request or req(), mock)
    return exc


@pytest.mark.parametrize(
    ("status", "kind", "code", "retryable"),
    [
        (429, RateLimitedError, "rate_limited", True),
        (503, ServerError, "server_error", True),
        (500, ServerError, "server_error", True),
        (408, ProviderTimeoutError, "timeout", True),
        (401, AuthenticationError, "authentication", False),
        (403, AuthenticationError, "authentication", False),
        (402, QuotaExceededError, "quota_exceeded", False),
        (400, InvalidRequestError, "invalid_request", False),
        (422, InvalidRequestError, "invalid_request", False),
    ],
)
async def test_status_mapping(status: int, kind: type[ProviderError], code: str, retryable: bool) -> None:
    exc = await fails(Mock(error(status, f"message for {status}")))
    assert type(exc) is kind
    assert (exc.code, exc.retryable, exc.status, exc.provider) == (code, retryable, status, "cohere")
    assert exc.message == f"message for {status}"
    assert exc.request_id == "req-e"


async def test_429_with_retry_after_seconds() -> None:
    exc = await fails(Mock(error(429, "slow down", {"retry-after": "7"})))
    assert isinstance(exc, RateLimitedError)
    assert exc.retry_after == 7.0
    assert exc.to_record()["retry_after"] == 7.0


async def test_429_with_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    exc = await fails(Mock(error(429, "slow down", {"retry-after": when})))
    assert isinstance(exc, RateLimitedError)
    assert exc.retry_after is not None
    assert 28 <= exc.retry_after <= 30


def test_parse_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after(" 1.5 ", now=now) == 1.5
    assert parse_retry_after("-3", now=now) == 0.0
    assert parse_retry_after(email.utils.formatdate(now + 12, usegmt=True), now=now) == 12.0
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


async def test_400_carries_message_status_request_id_and_excerpt() -> None:
    body = {"id": "x", "message": "invalid request: query must be a non-empty string"}
    exc = await fails(Mock(httpx.Response(400, json=body, headers={"x-request-id": "req-400"})))
    assert isinstance(exc, InvalidRequestError)
    assert exc.message == "invalid request: query must be a non-empty string"
    assert (exc.status, exc.request_id) == (400, "req-400")
    assert exc.body_excerpt is not None
    assert json.loads(exc.body_excerpt) == body
    assert exc.to_record() == {
        "code": "invalid_request",
        "message": body["message"],
        "retryable": False,
        "provider": "cohere",
        "status": 400,
        "request_id": "req-400",
        "body_excerpt": exc.body_excerpt,
    }


async def test_error_without_json_envelope_uses_text() -> None:
    exc = await fails(Mock(httpx.Response(502, text="<html>bad gateway</html>")))
    assert isinstance(exc, ServerError)
    assert exc.message == "<html>bad gateway</html>"


async def test_200_with_malformed_json_is_bad_response() -> None:
    exc = await fails(Mock(httpx.Response(200, text='{"results": [', headers={"x-request-id": "r"})))
    assert isinstance(exc, BadResponseError)
    assert (exc.code, exc.status, exc.request_id, exc.body_excerpt) == (
        "bad_response",
        200,
        "r",
        '{"results": [',
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"id": "x", "results": [{"index": 2, "relevance_score": 0.5}]}, id="index-past-end"),
        pytest.param({"id": "x", "results": [{"index": -1, "relevance_score": 0.5}]}, id="negative-index"),
        pytest.param({"id": "x", "results": [{"relevance_score": 0.5}]}, id="no-index"),
        pytest.param({"id": "x", "results": [{"index": 0, "relevance_score": None}]}, id="null-score"),
        pytest.param({"id": "x", "results": [{"index": 0, "relevance_score": "high"}]}, id="text-score"),
        pytest.param({"id": "x", "data": []}, id="no-results"),
        pytest.param({"id": "x", "results": None}, id="null-results"),
    ],
)
async def test_200_with_wrong_shape_is_bad_response(body: dict[str, Any]) -> None:
    exc = await fails(Mock(httpx.Response(200, json=body)))
    assert isinstance(exc, BadResponseError)
    assert exc.status == 200
    assert exc.body_excerpt == httpx.Response(200, json=body).text


@pytest.mark.parametrize("text", ["[]", "null", '{"results": [], "meta": "v2"}'])
async def test_200_with_non_object_json_is_bad_response(text: str) -> None:
    exc = await fails(Mock(httpx.Response(200, text=text)))
    assert isinstance(exc, BadResponseError)


@pytest.mark.parametrize("key", [None, ""])
async def test_missing_key_is_configuration_error_and_sends_nothing(key: str | None) -> None:
    mock = Mock(ok())
    async with transport_for(mock) as (transport, _):
        with pytest.raises(ConfigurationError) as raised:
            await transport.rerank(cohere.ADAPTER, dep(key=key), req())
    assert "COHERE_API_KEY" in raised.value.message
    assert "cohere/rerank-v3.5" in raised.value.message
    assert (raised.value.code, raised.value.retryable) == ("configuration", False)
    assert mock.requests == []


@pytest.mark.parametrize(
    ("raised", "kind", "code"),
    [
        (httpx.ReadTimeout("read timed out"), ProviderTimeoutError, "timeout"),
        (httpx.ConnectTimeout("connect timed out"), ProviderTimeoutError, "timeout"),
        (httpx.PoolTimeout("no free connection"), ProviderTimeoutError, "timeout"),
        (httpx.ConnectError("connection refused"), ProviderConnectionError, "connection_error"),
        (httpx.RemoteProtocolError("server disconnected"), ProviderConnectionError, "connection_error"),
        (httpx.ReadError("connection reset"), ProviderConnectionError, "connection_error"),
    ],
)
async def test_transport_failures_are_retryable(
    raised: Exception, kind: type[ProviderError], code: str
) -> None:
    exc = await fails(Mock(raised))
    assert type(exc) is kind
    assert (exc.code, exc.retryable, exc.status) == (code, True, None)
    assert exc.__cause__ is raised


# --- over a real socket -----------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_real_connection_refused_is_connection_error() -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        transport = Dispatcher(client, RetryPolicy(max_attempts=1))
        with pytest.raises(ProviderConnectionError):
            await transport.rerank(cohere.ADAPTER, dep(f"http://127.0.0.1:{closed_port()}"), req())


async def test_base_without_scheme_is_configuration_error() -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        transport = Dispatcher(client, RetryPolicy(max_attempts=1))
        with pytest.raises(ConfigurationError):
            await transport.rerank(cohere.ADAPTER, dep("api.cohere.com"), req())


async def test_a_slow_answer_is_a_retryable_timeout() -> None:
    with CohereServer() as server:
        server.fail_next(Fault(delay=0.5))
        async with httpx.AsyncClient(trust_env=False, timeout=0.1) as slow_client:
            with pytest.raises(ProviderTimeoutError) as raised:
                await reranker_for(slow_client, dep(server.base_url)).rerank("cohere/rerank-v3.5", req())
    assert raised.value.retryable
