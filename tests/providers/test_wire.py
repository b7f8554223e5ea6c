"""One HTTP exchange (``providers.wire.send``): every httpx failure and error status becomes the
typed tree, the same for both callers, the dispatcher and the IBM IAM token exchange."""

from __future__ import annotations

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
    RateLimitedError,
    RerankError,
    ServerError,
)
from providers.retry import RetryPolicy
from providers.types import RerankRequest

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
