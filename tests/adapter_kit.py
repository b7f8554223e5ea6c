"""Helpers for adapter tests: exact wire requests (``prepare``), the shared HTTP path over
``httpx.MockTransport`` with an instant retry policy, and error-mapping checks every
provider must pass in its own error envelope."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from providers.adapter import HttpAdapter, WireRequest
from providers.deployment import Credentials, Deployment
from providers.dispatcher import Dispatcher, prepare
from providers.errors import (
    BadResponseError,
    ConfigurationError,
    InvalidRequestError,
    ProviderError,
    RateLimitedError,
    ServerError,
)
from providers.reranker import Reranker
from providers.retry import RetryPolicy
from providers.types import RerankRequest, RerankResponse

Reply = httpx.Response | Exception


def deployment(provider: str, wire_model: str, key: str | None = None, base: str | None = None) -> Deployment:
    return Deployment(
        model=f"{provider}/{wire_model}",
        provider=provider,
        wire_model=wire_model,
        credentials=Credentials(api_key=SecretStr(key) if key is not None else None, api_base=base),
    )


def wires(adapter: HttpAdapter, d: Deployment, r: RerankRequest) -> list[WireRequest]:
    return [wire for _, wire in prepare(adapter, d, r)]


def single(adapter: HttpAdapter, d: Deployment, r: RerankRequest) -> WireRequest:
    (wire,) = wires(adapter, d, r)
    return wire


class Mock:
    """Answers requests in order with the given replies (the last one repeats)."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, req: httpx.Request) -> httpx.Response:
        self.requests.append(req)
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests]


class FakeSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@asynccontextmanager
async def transport_for(
    mock: Mock, max_attempts: int = 1, **policy: Any
) -> AsyncIterator[tuple[Dispatcher, FakeSleep]]:
    """A Dispatcher over ``mock``, and the fake sleep its retry policy (``policy``) records into."""
    sleep = FakeSleep()
    async with httpx.AsyncClient(transport=httpx.MockTransport(mock)) as client:
        yield Dispatcher(client, RetryPolicy(max_attempts=max_attempts, sleep=sleep, **policy)), sleep


async def rerank(
    adapter: HttpAdapter, d: Deployment, r: RerankRequest, mock: Mock, max_attempts: int = 1
) -> tuple[RerankResponse, list[float]]:
    async with transport_for(mock, max_attempts) as (transport, sleep):
        return await transport.rerank(adapter, d, r), sleep.waits


async def failure(
    adapter: HttpAdapter, d: Deployment, r: RerankRequest, mock: Mock, max_attempts: int = 1
) -> tuple[ProviderError, list[float]]:
    async with transport_for(mock, max_attempts) as (transport, sleep):
        with pytest.raises(ProviderError) as raised:
            await transport.rerank(adapter, d, r)
    return raised.value, sleep.waits


def serving(start: Callable[[], AbstractContextManager[Any]]) -> Any:
    """A fixture yielding a started local server: ``server = serving(lambda: XServer(...))``."""

    @pytest.fixture
    def server() -> Iterator[Any]:
        with start() as running:
            yield running

    return server


def reranker_for(client: httpx.AsyncClient, d: Deployment) -> Reranker:
    """A Reranker over ``client`` (one attempt) knowing ``d``'s provider by its credentials."""
    return Reranker(Dispatcher(client, RetryPolicy(max_attempts=1)), {d.provider: d.credentials})


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


async def check_error_mapping(
    adapter: HttpAdapter, d: Deployment, r: RerankRequest, envelope: Any, message: str, ok: httpx.Response
) -> None:
    """429 with Retry-After in seconds then as an HTTP date (both waited, then success); a
    5xx retried; the provider's 4xx envelope carried as an invalid-request message and not
    retried; a 2xx that is not JSON a bad response."""
    mock = Mock(
        httpx.Response(429, json=envelope, headers={"retry-after": "7"}),
        httpx.Response(429, json=envelope, headers={"retry-after": http_date(30)}),
        httpx.Response(503, json=envelope),
        ok,
    )
    response, waits = await rerank(adapter, d, r, mock, max_attempts=4)
    assert (response.attempts, len(mock.requests)) == (4, 4)
    assert waits[0] == 7.0
    assert 28.0 <= waits[1] <= 30.0
    assert 0.0 <= waits[2] <= 2.0  # no Retry-After on the 503: jittered backoff (0.5 * 2**2 at most)
    assert len({r.content for r in mock.requests}) == 1  # every retry resends the same body

    limited, _ = await failure(
        adapter, d, r, Mock(httpx.Response(429, json=envelope, headers={"retry-after": "3"}))
    )
    assert isinstance(limited, RateLimitedError)
    assert (limited.status, limited.retry_after, limited.message) == (429, 3.0, message)

    down, _ = await failure(adapter, d, r, Mock(httpx.Response(502, json=envelope)))
    assert isinstance(down, ServerError) and down.retryable and down.message == message

    mock = Mock(httpx.Response(400, json=envelope), ok)
    bad, waits = await failure(adapter, d, r, mock, max_attempts=3)
    assert isinstance(bad, InvalidRequestError)
    assert (bad.status, bad.message, bad.retryable, len(mock.requests), waits) == (400, message, False, 1, [])

    garbled, _ = await failure(adapter, d, r, Mock(httpx.Response(200, text='{"scores": [0.1,')))
    assert isinstance(garbled, BadResponseError) and garbled.status == 200


async def check_missing_setting(
    adapter: HttpAdapter, d: Deployment, r: RerankRequest, names: tuple[str, ...]
) -> None:
    """A ConfigurationError naming every variable to set, and no request sent."""
    mock = Mock(httpx.Response(200, json={}))
    async with transport_for(mock) as (transport, _):
        with pytest.raises(ConfigurationError) as raised:
            await transport.rerank(adapter, d, r)
    assert all(name in raised.value.message for name in names), raised.value.message
    assert d.model in raised.value.message
    assert mock.requests == []


def e2e_env(**variables: str) -> dict[str, str]:
    """A worker environment reaching only 127.0.0.1, with short timeouts."""
    return {
        **variables,
        "RR_HTTP_TIMEOUT": "10",
        "RR_RETRY_MAX_SECONDS": "20",
        "RR_JOB_TIMEOUT": "60",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
