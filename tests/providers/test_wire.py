"""One HTTP exchange (``providers.wire.send``): every httpx failure and error status becomes the
typed tree, the same for both callers, the dispatcher and the IBM IAM token exchange; statuses,
``Retry-After``, envelopes and excerpts as a line's error reports them.  (Each provider's own
envelope: adapters/test_contract.py.)"""

from __future__ import annotations

import email.utils
import json
import socket
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from pydantic import SecretStr

from providers import wire
from providers.adapters import cohere
from providers.auth import AuthRequest
from providers.auth.token_cache import TokenCache
from providers.auth.watsonx_iam import WatsonxAuth
from providers.deployment import Credentials, Deployment
from providers.dispatcher import Dispatcher
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
from providers.retry import RetryPolicy
from providers.transport import HTTP_TRANSPORTS, HttpTransport, http_client
from providers.types import RerankRequest
from providers.wire import parse_retry_after
from tests.adapter_kit import Mock, failure, reranker_for
from tests.cases.case import req
from tests.cases.cohere import dep, error
from tests.servers.cohere import CohereServer
from tests.wire_server import Fault

Handler = Callable[[httpx.Request], httpx.Response]
COHERE = Deployment(
    model="cohere/rerank-v3.5",
    provider="cohere",
    wire_model="rerank-v3.5",
    credentials=Credentials(api_key=SecretStr("k")),
)
WATSONX = Deployment(
    model="watsonx/m",
    provider="watsonx",
    wire_model="m",
    credentials=Credentials(api_key=SecretStr("ibm-key"), params={"project_id": "p"}),
)


async def via_dispatcher(handler: Handler) -> RerankError:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        dispatcher = Dispatcher(client, RetryPolicy(max_attempts=1))
        with pytest.raises(RerankError) as raised:
            await dispatcher.rerank(cohere.ADAPTER, COHERE, RerankRequest(query="q", documents=["d"]))
    return raised.value


async def via_iam(handler: Handler) -> RerankError:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        request = AuthRequest(WATSONX, "POST", "https://wx.example/rerank", b"{}", {}, client, TokenCache())
        with pytest.raises(RerankError) as raised:
            await WatsonxAuth().headers(request)
    return raised.value


CALLERS: list[Callable[[Handler], Awaitable[RerankError]]] = [via_dispatcher, via_iam]


def raising(exc: Exception) -> Handler:
    def handler(_request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (httpx.ReadTimeout("read timed out"), ProviderTimeoutError),
        (httpx.PoolTimeout("no free connection"), ProviderTimeoutError),
        (httpx.ConnectError("connection refused"), ProviderConnectionError),
        (httpx.RemoteProtocolError("server disconnected"), ProviderConnectionError),
        (httpx.UnsupportedProtocol("no scheme"), ConfigurationError),
        (httpx.InvalidURL("bad host"), ConfigurationError),
        (httpx.DecodingError("not gzip"), BadResponseError),
    ],
)
async def test_every_httpx_failure_is_typed(
    caller: Callable[[Handler], Awaitable[RerankError]], failure: Exception, kind: type[RerankError]
) -> None:
    error = await caller(raising(failure))
    assert type(error) is kind
    assert error.provider in ("cohere", "watsonx")
    cause = error.__cause__
    assert cause is failure or (cause is not None and cause.__cause__ is failure)  # IAM re-types


@pytest.mark.parametrize(
    ("status", "from_provider", "from_iam"),
    [
        (429, RateLimitedError, RateLimitedError),
        (503, ServerError, ServerError),
        (401, AuthenticationError, AuthenticationError),
        (400, InvalidRequestError, AuthenticationError),  # IAM's answer to an unknown key
    ],
)
async def test_statuses_are_typed_and_iam_keeps_its_rule(
    status: int, from_provider: type[ProviderError], from_iam: type[ProviderError]
) -> None:
    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"message": "no"}, headers={"retry-after": "4"})

    provider, iam = await via_dispatcher(answer), await via_iam(answer)
    assert isinstance(provider, ProviderError) and isinstance(iam, ProviderError)
    assert (type(provider), type(iam)) == (from_provider, from_iam)
    assert (provider.message, iam.message) == ("no", "IBM IAM token exchange failed: no")
    assert (provider.status, provider.retry_after) == (iam.status, iam.retry_after) == (status, 4.0)


async def test_send_returns_an_answer_below_400_and_posts_forms() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        return httpx.Response(200, content=request.content)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        response = await wire.send(client, "p", "POST", "https://x.example", data={"a": "1 2"})
    assert (response.status_code, response.content) == (200, b"a=1+2")


# --- through the dispatcher, Cohere's adapter standing for any ---------------------------------


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


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("kind", HTTP_TRANSPORTS)
async def test_real_connection_refused_is_connection_error(kind: HttpTransport) -> None:
    async with http_client(kind, 5, 4, trust_env=False) as client:
        transport = Dispatcher(client, RetryPolicy(max_attempts=1))
        with pytest.raises(ProviderConnectionError):
            await transport.rerank(cohere.ADAPTER, dep(f"http://127.0.0.1:{closed_port()}"), req())


@pytest.mark.parametrize("kind", HTTP_TRANSPORTS)
@pytest.mark.parametrize("base", ["api.cohere.com", "ftp://api.cohere.com"])
async def test_base_without_scheme_is_configuration_error(kind: HttpTransport, base: str) -> None:
    async with http_client(kind, 5, 4, trust_env=False) as client:
        transport = Dispatcher(client, RetryPolicy(max_attempts=1))
        with pytest.raises(ConfigurationError):
            await transport.rerank(cohere.ADAPTER, dep(base), req())


@pytest.mark.parametrize("kind", HTTP_TRANSPORTS)
async def test_a_slow_answer_is_a_retryable_timeout(kind: HttpTransport) -> None:
    with CohereServer() as server:
        server.fail_next(Fault(delay=0.5))
        async with http_client(kind, 0.1, 4, trust_env=False) as slow_client:
            with pytest.raises(ProviderTimeoutError) as raised:
                await reranker_for(slow_client, dep(server.base_url)).rerank("cohere/rerank-v3.5", req())
    assert raised.value.retryable
