"""Retries (providers/retry.py) through the shared HTTP path: what is retried, how long it waits
(Retry-After over backoff), when it gives up; the policy alone; and over a real socket, faults
injected by a local server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from providers.adapters import cohere
from providers.dispatcher import Dispatcher
from providers.errors import ProviderError, RateLimitedError, ServerError
from providers.retry import RetryPolicy
from providers.types import RankedDocument
from tests.adapter_kit import FakeSleep, Mock, transport_for
from tests.cases.case import req
from tests.cases.cohere import KEY, dep, error, ok
from tests.servers.cohere import CohereServer
from tests.wire_server import Fault, rate_limited, unavailable


async def test_retries_429_and_503_then_succeeds() -> None:
    mock = Mock(error(429, headers={"retry-after": "2"}), error(503), ok())
    async with transport_for(mock, max_attempts=4, initial_wait=0.5) as (transport, sleep):
        response = await transport.rerank(cohere.ADAPTER, dep(), req())
    waits = sleep.waits
    assert response.attempts == 3
    assert response.results == [RankedDocument(0, 0.9), RankedDocument(1, 0.1)]
    assert len(mock.requests) == 3
    assert [json.loads(r.content) for r in mock.requests] == [json.loads(mock.requests[0].content)] * 3
    assert waits[0] == 2.0  # Retry-After
    assert 0.0 <= waits[1] <= 1.0  # full jitter, 0.5 * 2 ** (attempt - 1) after the second attempt
    assert len(waits) == 2


@pytest.mark.parametrize(
    ("reply", "wait"),
    [
        (error(503, headers={"retry-after": "3"}), 3.0),
        (error(429, headers={"retry-after": "0"}), 0.0),
        (error(429, headers={"retry-after": "30"}), 30.0),
    ],
)
async def test_retry_after_wins_over_backoff(reply: httpx.Response, wait: float) -> None:
    mock = Mock(reply, ok())
    async with transport_for(mock, max_attempts=3, initial_wait=100.0, max_wait=100.0) as (transport, sleep):
        response = await transport.rerank(cohere.ADAPTER, dep(), req())
    assert response.attempts == 2
    assert sleep.waits == [wait]


@pytest.mark.parametrize(
    "reply",
    [
        error(400),
        error(401),
        error(402),
        error(404),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json={"id": "x", "results": [{"index": 9, "relevance_score": 1.0}]}),
    ],
)
async def test_permanent_errors_are_not_retried(reply: httpx.Response) -> None:
    mock = Mock(reply, ok())
    async with transport_for(mock, max_attempts=5) as (transport, sleep):
        with pytest.raises(ProviderError) as raised:
            await transport.rerank(cohere.ADAPTER, dep(), req())
    assert raised.value.retryable is False
    assert len(mock.requests) == 1
    assert sleep.waits == []


async def test_gives_up_after_max_attempts_with_last_error() -> None:
    replies = [error(503, f"down {n}", {"x-request-id": f"req-{n}", "retry-after": "1"}) for n in range(1, 4)]
    mock = Mock(*replies, ok())
    async with transport_for(mock, max_attempts=3) as (transport, sleep):
        with pytest.raises(ServerError) as raised:
            await transport.rerank(cohere.ADAPTER, dep(), req())
    assert len(mock.requests) == 3
    assert sleep.waits == [1.0, 1.0]
    assert (raised.value.message, raised.value.request_id) == ("down 3", "req-3")


async def test_timeout_then_success_counts_attempts() -> None:
    mock = Mock(httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), ok())
    async with transport_for(mock, max_attempts=3) as (transport, _):
        response = await transport.rerank(cohere.ADAPTER, dep(), req())
    assert response.attempts == 3
    assert len(mock.requests) == 3


# --- the policy alone -------------------------------------------------------------------------------


async def test_policy_does_not_retry_foreign_exceptions() -> None:
    calls: list[int] = []
    sleep = FakeSleep()

    async def attempt() -> str:
        calls.append(1)
        raise ValueError("a bug, not a provider failure")

    with pytest.raises(ValueError):
        await RetryPolicy(max_attempts=5, sleep=sleep).call(attempt)
    assert (len(calls), sleep.waits) == (1, [])


async def test_policy_returns_result_and_attempts() -> None:
    outcomes: list[Exception | str] = [RateLimitedError("x", provider="cohere", retry_after=0.25), "done"]
    sleep = FakeSleep()

    async def attempt() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert await RetryPolicy(sleep=sleep).call(attempt) == ("done", 2)
    assert sleep.waits == [0.25]


async def test_policy_never_starts_an_attempt_past_its_budget() -> None:
    started: list[float] = []
    begin = time.monotonic()

    async def attempt() -> str:
        started.append(time.monotonic() - begin)
        raise RateLimitedError("slow down", provider="cohere", retry_after=0.15)

    with pytest.raises(RateLimitedError):
        await RetryPolicy(max_attempts=10, max_total_seconds=0.2).call(attempt)
    # the second attempt starts after one 0.15 s wait; a third would start 0.30 s in, past the
    # 0.2 s budget, so the policy gives up instead of waiting (however slow the machine is)
    assert len(started) == 2
    assert started[1] >= 0.15


# --- over a real socket -----------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[CohereServer]:
    with CohereServer(KEY) as running:
        yield running


async def test_faults_from_the_server_are_retried(server: CohereServer) -> None:
    server.fail_next(Fault(429, retry_after_date_in=2), unavailable(), rate_limited("0"))
    sleep = FakeSleep()
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        dispatcher = Dispatcher(client, RetryPolicy(max_attempts=4, sleep=sleep))
        response = await dispatcher.rerank(cohere.ADAPTER, dep(server.base_url), req())
    assert [r.status for r in server.requests] == [429, 503, 429, 200]
    assert response.attempts == 4
    assert 0.5 <= sleep.waits[0] <= 2.0  # HTTP date, whole seconds
    assert 0.0 <= sleep.waits[1] <= 1.0  # no Retry-After: backoff
    assert sleep.waits[2] == 0.0
    assert response.request_id == server.requests[-1].request_id


async def test_faults_for_one_query_hit_only_its_first_attempts(server: CohereServer) -> None:
    server.fail_query("solar power", rate_limited("0"), rate_limited("0"))
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        dispatcher = Dispatcher(client, RetryPolicy(max_attempts=4, sleep=FakeSleep()))
        d = dep(server.base_url)
        other = await dispatcher.rerank(cohere.ADAPTER, d, req(query="coffee"))
        first = await dispatcher.rerank(cohere.ADAPTER, d, req())
        again = await dispatcher.rerank(cohere.ADAPTER, d, req())
    assert (other.attempts, first.attempts, again.attempts) == (1, 3, 1)
