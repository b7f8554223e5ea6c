"""Cohere adapter: URLs and bodies, the shared HTTP path, error mapping and retries (no Redis)."""

from __future__ import annotations

import email.utils
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from providers.adapter import WireRequest
from providers.adapters import cohere
from providers.deployment import Credentials, Deployment
from providers.dispatcher import Dispatcher, prepare
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
from providers.registry import credentials_from
from providers.reranker import Reranker
from providers.retry import RetryPolicy
from providers.types import Document, RankedDocument, RerankRequest, RerankResponse
from providers.wire import parse_retry_after
from tests.cohere_server import CohereServer, Fault, cohere_server, rate_limited, score, unavailable

KEY = "test-cohere-key"
BASE = "https://api.cohere.com"
V2_URL = "https://api.cohere.com/v2/rerank"
V1_BASE = "https://api.cohere.com/v1"
OBJECTS: list[Document] = [
    {"id": "a", "title": "Solar panels", "text": "Photovoltaic cells turn light into power."},
    {"id": "b", "title": "Coffee", "text": "Espresso is brewed under pressure.", "year": 2020},
]


def deployment(base: str | None = BASE, key: str | None = KEY) -> Deployment:
    return Deployment(
        model="cohere/rerank-v3.5",
        provider="cohere",
        wire_model="rerank-v3.5",
        credentials=Credentials(api_key=SecretStr(key) if key is not None else None, api_base=base),
    )


def request(**overrides: Any) -> RerankRequest:
    fields: dict[str, Any] = {"query": "solar power", "documents": ["solar power plants", "coffee"]}
    return RerankRequest(**{**fields, **overrides})


def single(d: Deployment, r: RerankRequest) -> WireRequest:
    """The one wire request a small line takes (planning included)."""
    [(_, wire)] = prepare(cohere.ADAPTER, d, r)
    return wire


# --- URLs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url", "version"),
    [
        ("https://api.cohere.com", "https://api.cohere.com/v2/rerank", 2),
        ("https://api.cohere.com/", "https://api.cohere.com/v2/rerank", 2),
        ("https://api.cohere.com/v1", "https://api.cohere.com/v1/rerank", 1),
        ("https://api.cohere.com/v1/", "https://api.cohere.com/v1/rerank", 1),
        ("https://api.cohere.com/v1/rerank", "https://api.cohere.com/v1/rerank", 1),
        ("https://api.cohere.com/v1/rerank/", "https://api.cohere.com/v1/rerank", 1),
        ("https://api.cohere.com/v2", "https://api.cohere.com/v2/rerank", 2),
        ("https://api.cohere.com/v2/", "https://api.cohere.com/v2/rerank", 2),
        ("https://api.cohere.com/v2/rerank", "https://api.cohere.com/v2/rerank", 2),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v2/rerank", 2),
        ("https://gw.example.com/cohere", "https://gw.example.com/cohere/v2/rerank", 2),
        ("https://gw.example.com/cohere/v1", "https://gw.example.com/cohere/v1/rerank", 1),
        ("https://gw.example.com/apiv1", "https://gw.example.com/apiv1/v2/rerank", 2),
    ],
)
def test_rerank_url(base: str, url: str, version: int) -> None:
    assert cohere.rerank_url(base) == (url, version)
    wire = single(deployment(base), request())
    assert (wire.method, wire.url) == ("POST", url)


def test_default_base_is_cohere_v2() -> None:
    assert single(deployment(base=None), request()).url == V2_URL
    assert cohere.ADAPTER.default_base == BASE


# --- bodies -----------------------------------------------------------------------------------------


HEAD = {"model": "rerank-v3.5", "query": "solar power"}
STRINGS = ["solar power plants", "coffee"]


@pytest.mark.parametrize(
    ("base", "overrides", "body"),
    [
        pytest.param(BASE, {}, {**HEAD, "documents": STRINGS}, id="v2-strings"),
        pytest.param(
            BASE,
            {"top_n": 1, "max_tokens_per_doc": 512, "return_documents": True},
            {**HEAD, "documents": STRINGS, "top_n": 1, "max_tokens_per_doc": 512},
            id="v2-top_n-max_tokens",
        ),
        pytest.param(
            BASE,
            {"documents": OBJECTS},
            {**HEAD, "documents": [
                "title: Solar panels\ntext: Photovoltaic cells turn light into power.",
                "title: Coffee\ntext: Espresso is brewed under pressure.\nyear: 2020",
            ]},
            id="v2-objects-all-fields-but-id",
        ),
        pytest.param(
            BASE,
            {"documents": OBJECTS, "rank_fields": ["year", "title", "missing"]},
            {**HEAD, "documents": ["title: Solar panels", "year: 2020\ntitle: Coffee"]},
            id="v2-objects-rank_fields-in-order",
        ),
        pytest.param(
            BASE,
            {"documents": [*OBJECTS, "plain"], "rank_fields": ["text"]},
            {**HEAD, "documents": [
                "Photovoltaic cells turn light into power.", "Espresso is brewed under pressure.", "plain",
            ]},
            id="v2-rank_fields-text-only-is-bare",
        ),
        pytest.param(
            BASE,
            {"documents": [{"tags": ["x", "y"], "n": 1.5, "ok": True}]},
            {**HEAD, "documents": ['tags: ["x","y"]\nn: 1.5\nok: true']},
            id="v2-non-string-values-as-json",
        ),
        pytest.param(
            V1_BASE, {}, {**HEAD, "documents": STRINGS, "return_documents": False}, id="v1-strings"
        ),
        pytest.param(
            V1_BASE,
            {"documents": OBJECTS, "return_documents": True},
            {**HEAD, "documents": OBJECTS, "return_documents": False},
            id="v1-objects-raw",
        ),
        pytest.param(
            V1_BASE,
            {"documents": OBJECTS, "rank_fields": ["title", "text"], "top_n": 1, "max_chunks_per_doc": 3},
            {**HEAD, "documents": OBJECTS, "return_documents": False,
             "rank_fields": ["title", "text"], "max_chunks_per_doc": 3, "top_n": 1},
            id="v1-rank_fields-top_n-max_chunks",
        ),
    ],
)  # fmt: skip
def test_build_request_body(base: str, overrides: dict[str, Any], body: dict[str, Any]) -> None:
    wire = single(deployment(base), request(**overrides))
    assert wire.body == body
    assert wire.headers == {}


LONG = " ".join(f"w{i}" for i in range(10))


@pytest.mark.parametrize("base", [BASE, "https://api.cohere.com/v2/rerank"])
def test_v2_chunks_client_side_for_max_chunks_per_doc(base: str) -> None:
    wire = single(
        deployment(base),
        request(documents=[LONG, "solar"], max_tokens_per_doc=4, max_chunks_per_doc=2, top_n=1),
    )
    # windows of 4 words, at most 2 per document; top_n is applied after max-pooling
    assert wire.body == {**HEAD, "documents": ["w0 w1 w2 w3", "w4 w5 w6 w7", "solar"]}


@pytest.mark.parametrize("base", [V1_BASE, "https://api.cohere.com/v1/rerank"])
def test_v1_truncates_client_side_for_max_tokens_per_doc(base: str) -> None:
    wire = single(deployment(base), request(documents=[LONG, {"text": LONG}], max_tokens_per_doc=3))
    assert wire.body == {**HEAD, "documents": ["w0 w1 w2", "w0 w1 w2"], "return_documents": False}


async def test_chunk_scores_are_max_pooled_onto_the_callers_documents() -> None:
    mock = Mock(ok_body([(2, 0.9), (0, 0.5), (1, 0.2)]))
    async with transport_for(mock) as (transport, _):
        response = await transport.rerank(
            cohere.ADAPTER,
            deployment(),
            request(documents=[LONG, "solar"], max_tokens_per_doc=4, max_chunks_per_doc=2),
        )
    assert [(r.index, r.relevance_score) for r in response.results] == [(1, 0.9), (0, 0.5)]


async def test_large_candidate_lists_are_split_and_merged() -> None:
    documents: list[Document] = [f"doc {i}" for i in range(cohere.MAX_DOCUMENTS + 5)]
    mock = Mock(ok_body([(0, 0.1), (1, 0.3)]), ok_body([(4, 0.8), (0, 0.2)]))
    async with transport_for(mock) as (transport, _):
        response = await transport.rerank(cohere.ADAPTER, deployment(), request(documents=documents, top_n=3))
    sizes = [len(json.loads(r.content)["documents"]) for r in mock.requests]
    assert sizes == [cohere.MAX_DOCUMENTS, 5]
    assert [json.loads(r.content)["top_n"] for r in mock.requests] == [3, 3]
    assert [(r.index, r.relevance_score) for r in response.results] == [
        (cohere.MAX_DOCUMENTS + 4, 0.8),
        (1, 0.3),
        (cohere.MAX_DOCUMENTS, 0.2),
    ]
    assert (response.requests, response.usage) == (2, {"billed_units": {"search_units": 2}})


# --- the shared HTTP path, over httpx.MockTransport --------------------------------------------------

Reply = httpx.Response | Exception


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


class FakeSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def ok_body(
    results: list[tuple[int, float]] | None = None, meta: dict[str, Any] | None = None
) -> httpx.Response:
    body = {
        "id": "resp-1",
        "results": [{"index": i, "relevance_score": s} for i, s in (results or [(0, 0.9), (1, 0.1)])],
        "meta": meta
        if meta is not None
        else {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
    }
    return httpx.Response(200, json=body, headers={"x-request-id": "req-1"})


def error(status: int, message: str = "nope", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, json={"message": message}, headers={"x-request-id": "req-e", **(headers or {})}
    )


@asynccontextmanager
async def transport_for(
    mock: Mock, max_attempts: int = 1, **policy: Any
) -> AsyncIterator[tuple[Dispatcher, FakeSleep]]:
    """An Dispatcher over a MockTransport, and the fake sleep its retry policy records into."""
    sleep = FakeSleep()
    async with httpx.AsyncClient(transport=httpx.MockTransport(mock)) as client:
        yield Dispatcher(client, RetryPolicy(max_attempts=max_attempts, sleep=sleep, **policy)), sleep


async def send(
    mock: Mock, req: RerankRequest | None = None, base: str | None = BASE, **kw: Any
) -> RerankResponse:
    async with transport_for(mock, **kw) as (transport, _):
        return await transport.rerank(cohere.ADAPTER, deployment(base), req or request())


async def fails(mock: Mock, req: RerankRequest | None = None, **kw: Any) -> ProviderError:
    with pytest.raises(ProviderError) as raised:
        await send(mock, req, **kw)
    return raised.value


async def test_sends_exact_request() -> None:
    mock = Mock(ok_body())
    req = request(documents=OBJECTS, rank_fields=["title"], top_n=1)
    await send(mock, req)
    (sent,) = mock.requests
    assert sent.method == "POST"
    assert str(sent.url) == V2_URL
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["accept"] == "application/json"
    assert json.loads(sent.content) == {
        "model": "rerank-v3.5",
        "query": "solar power",
        "documents": ["title: Solar panels", "title: Coffee"],
        "top_n": 1,
    }


async def test_v1_base_sends_objects_and_rank_fields() -> None:
    mock = Mock(ok_body())
    await send(mock, request(documents=OBJECTS, rank_fields=["text"]), base="http://10.0.0.1:9/v1/")
    (sent,) = mock.requests
    assert str(sent.url) == "http://10.0.0.1:9/v1/rerank"
    assert json.loads(sent.content)["documents"] == OBJECTS
    assert json.loads(sent.content)["rank_fields"] == ["text"]


async def test_parses_cohere_response_sorted_and_cut() -> None:
    mock = Mock(ok_body([(0, 0.2), (3, 0.95), (1, 0.6), (2, 0.6)]))
    docs: list[Document] = ["a", "b", "c", "d"]
    response = await send(mock, request(documents=docs, top_n=3))
    assert response.results == [
        RankedDocument(3, 0.95),
        RankedDocument(1, 0.6),
        RankedDocument(2, 0.6),
    ]
    assert (response.response_id, response.request_id, response.attempts) == ("resp-1", "req-1", 1)
    assert response.usage == {"billed_units": {"search_units": 1}}


@pytest.mark.parametrize(
    ("meta", "usage"),
    [
        ({"billed_units": {"search_units": 2}, "tokens": {"input_tokens": 40}, "warnings": ["w"]},
         {"billed_units": {"search_units": 2}, "tokens": {"input_tokens": 40}}),
        ({"api_version": {"version": "2"}}, None),
        ({}, None),
    ],
)  # fmt: skip
async def test_usage_is_cohere_accounting_only(meta: dict[str, Any], usage: dict[str, Any] | None) -> None:
    response = await send(Mock(ok_body(meta=meta)))
    assert response.usage == usage


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
    mock = Mock(httpx.Response(400, json=body, headers={"x-request-id": "req-400"}))
    exc = await fails(mock)
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
    mock = Mock(ok_body())
    async with transport_for(mock) as (transport, _):
        with pytest.raises(ConfigurationError) as raised:
            await transport.rerank(cohere.ADAPTER, deployment(key=key), request())
    assert "COHERE_API_KEY" in raised.value.message
    assert "cohere/rerank-v3.5" in raised.value.message
    assert (raised.value.code, raised.value.retryable) == ("configuration", False)
    assert mock.requests == []


def test_key_and_base_come_from_cohere_variables() -> None:
    found = credentials_from(
        {"CO_API_KEY": "co", "COHERE_API_KEY": "cohere", "COHERE_API_BASE": "http://h/v1"}
    )
    assert found["cohere"].api_key is not None
    assert found["cohere"].api_key.get_secret_value() == "cohere"
    assert found["cohere"].api_base == "http://h/v1"
    fallback = credentials_from({"CO_API_KEY": "co"})["cohere"]
    assert fallback.api_key is not None
    assert fallback.api_key.get_secret_value() == "co"
    assert fallback.api_base is None


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


async def test_real_connection_refused_is_connection_error() -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        transport = Dispatcher(client, RetryPolicy(max_attempts=1))
        with pytest.raises(ProviderConnectionError):
            await transport.rerank(cohere.ADAPTER, deployment(f"http://127.0.0.1:{closed_port()}"), request())


async def test_base_without_scheme_is_configuration_error() -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        transport = Dispatcher(client, RetryPolicy(max_attempts=1))
        with pytest.raises(ConfigurationError):
            await transport.rerank(cohere.ADAPTER, deployment("api.cohere.com"), request())


# --- retries ----------------------------------------------------------------------------------------


async def test_retries_429_and_503_then_succeeds() -> None:
    mock = Mock(error(429, headers={"retry-after": "2"}), error(503), ok_body())
    async with transport_for(mock, max_attempts=4, initial_wait=0.5) as (transport, sleep):
        response = await transport.rerank(cohere.ADAPTER, deployment(), request())
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
    sleep = FakeSleep()
    policy = RetryPolicy(max_attempts=3, initial_wait=100.0, max_wait=100.0, sleep=sleep)
    async with httpx.AsyncClient(transport=httpx.MockTransport(Mock(reply, ok_body()))) as client:
        response = await Dispatcher(client, policy).rerank(cohere.ADAPTER, deployment(), request())
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
    mock = Mock(reply, ok_body())
    async with transport_for(mock, max_attempts=5) as (transport, sleep):
        with pytest.raises(ProviderError) as raised:
            await transport.rerank(cohere.ADAPTER, deployment(), request())
    assert raised.value.retryable is False
    assert len(mock.requests) == 1
    assert sleep.waits == []


async def test_gives_up_after_max_attempts_with_last_error() -> None:
    replies = [error(503, f"down {n}", {"x-request-id": f"req-{n}", "retry-after": "1"}) for n in range(1, 4)]
    mock = Mock(*replies, ok_body())
    async with transport_for(mock, max_attempts=3) as (transport, sleep):
        with pytest.raises(ServerError) as raised:
            await transport.rerank(cohere.ADAPTER, deployment(), request())
    assert len(mock.requests) == 3
    assert sleep.waits == [1.0, 1.0]
    assert (raised.value.message, raised.value.request_id) == ("down 3", "req-3")


async def test_timeout_then_success_counts_attempts() -> None:
    mock = Mock(httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), ok_body())
    response = await send(mock, max_attempts=3)
    assert response.attempts == 3
    assert len(mock.requests) == 3


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
    assert len(started) >= 2
    assert max(started) < 0.26  # the 0.2 s budget plus scheduling slack


# --- against the local wire server --------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[CohereServer]:
    with cohere_server(KEY) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        yield http


def reranker_for(
    client: httpx.AsyncClient, base: str, key: str = KEY, attempts: int = 1
) -> tuple[Reranker, FakeSleep]:
    sleep = FakeSleep()
    transport = Dispatcher(client, RetryPolicy(max_attempts=attempts, sleep=sleep))
    credentials = {"cohere": Credentials(api_key=SecretStr(key), api_base=base)}
    return Reranker(transport, credentials), sleep


async def test_wire_server_round_trip_v2(server: CohereServer, client: httpx.AsyncClient) -> None:
    reranker, _ = reranker_for(client, server.base_url)
    docs: list[Document] = ["coffee beans", "solar power plants", {"id": "s", "title": "solar farms"}]
    response = await reranker.rerank("cohere/rerank-v3.5", request(documents=docs, top_n=2))
    (seen,) = server.requests
    assert (seen.method, seen.path, seen.status) == ("POST", "/v2/rerank", 200)
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.body == {
        "model": "rerank-v3.5",
        "query": "solar power",
        "documents": ["coffee beans", "solar power plants", "title: solar farms"],
        "top_n": 2,
    }
    assert response.results == [RankedDocument(1, 1.0), RankedDocument(2, 0.5)]
    assert (response.request_id, response.response_id) == (seen.request_id, seen.response_id)
    assert response.usage == {"billed_units": {"search_units": 1}}


async def test_wire_server_round_trip_v1(server: CohereServer, client: httpx.AsyncClient) -> None:
    reranker, _ = reranker_for(client, f"{server.base_url}/v1")
    docs: list[Document] = [{"title": "coffee", "text": "solar"}, {"title": "solar power", "text": "x"}]
    response = await reranker.rerank("cohere/rerank-v3.5", request(documents=docs, rank_fields=["title"]))
    (seen,) = server.requests
    assert seen.path == "/v1/rerank"
    assert seen.body["documents"] == docs
    assert seen.body["rank_fields"] == ["title"]
    assert response.results == [RankedDocument(1, 1.0), RankedDocument(0, 0.0)]


async def test_wire_server_rejects_what_cohere_rejects(
    server: CohereServer, client: httpx.AsyncClient
) -> None:
    url, auth = f"{server.base_url}/v2/rerank", {"authorization": f"Bearer {KEY}"}
    good = {"model": "rerank-v3.5", "query": "q", "documents": ["a"]}
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "max_chunks_per_doc": 2}, "max_chunks_per_doc"),
        ({**good, "rank_fields": ["a"]}, "rank_fields"),
        ({**good, "documents": [{"text": "a"}]}, "strings"),
        ({"query": "q", "documents": ["a"]}, "model"),
        ({**good, "top_n": 0}, "top_n"),
    ]
    for body, named in cases:
        answer = await client.post(url, json=body, headers=auth)
        assert answer.status_code == 400, body
        assert named in answer.json()["message"]
    v1 = {"query": "q", "documents": [{"text": "a"}] * 2000, "max_chunks_per_doc": 10}
    answer = await client.post(f"{server.base_url}/v1/rerank", json=v1, headers=auth)
    assert (answer.status_code, "10000" in answer.json()["message"]) == (400, True)
    answer = await client.post(url, json=good, headers={"authorization": "Bearer wrong"})
    assert (answer.status_code, answer.json()) == (401, {"message": "invalid api token"})
    assert "x-request-id" in answer.headers
    assert (await client.post(f"{server.base_url}/v3/rerank", json=good, headers=auth)).status_code == 404
    assert [r.status for r in server.requests] == [400] * 6 + [401, 404]


async def test_wire_server_v1_return_documents(server: CohereServer, client: httpx.AsyncClient) -> None:
    body = {"query": "solar", "documents": ["solar", {"text": "moon", "id": 3}], "return_documents": True}
    answer = await client.post(
        f"{server.base_url}/v1/rerank", json=body, headers={"authorization": f"Bearer {KEY}"}
    )
    assert answer.json()["results"] == [
        {"index": 0, "relevance_score": 1.0, "document": {"text": "solar"}},
        {"index": 1, "relevance_score": 0.0, "document": {"text": "moon", "id": 3}},
    ]
    assert answer.json()["meta"] == {"api_version": {"version": "1"}, "billed_units": {"search_units": 1}}


async def test_wire_server_wrong_key_is_authentication_error(
    server: CohereServer, client: httpx.AsyncClient
) -> None:
    reranker, sleep = reranker_for(client, server.base_url, key="wrong", attempts=4)
    with pytest.raises(AuthenticationError) as raised:
        await reranker.rerank("cohere/rerank-v3.5", request())
    assert (raised.value.status, raised.value.message) == (401, "invalid api token")
    assert raised.value.request_id == server.requests[0].request_id
    assert (len(server.requests), sleep.waits) == (1, [])


async def test_wire_server_injected_faults_are_retried(
    server: CohereServer, client: httpx.AsyncClient
) -> None:
    server.fail_next(Fault(429, retry_after_date_in=2), unavailable(), rate_limited("0"))
    reranker, sleep = reranker_for(client, server.base_url, attempts=4)
    response = await reranker.rerank("cohere/rerank-v3.5", request())
    assert [r.status for r in server.requests] == [429, 503, 429, 200]
    assert response.attempts == 4
    assert 0.5 <= sleep.waits[0] <= 2.0  # HTTP date, whole seconds
    assert 0.0 <= sleep.waits[1] <= 1.0  # no Retry-After: backoff
    assert sleep.waits[2] == 0.0
    assert response.request_id == server.requests[-1].request_id


async def test_wire_server_faults_per_query(server: CohereServer, client: httpx.AsyncClient) -> None:
    server.fail_query("solar power", rate_limited("0"), rate_limited("0"))
    reranker, _ = reranker_for(client, server.base_url, attempts=4)
    other = await reranker.rerank("cohere/rerank-v3.5", request(query="coffee"))
    first = await reranker.rerank("cohere/rerank-v3.5", request())
    again = await reranker.rerank("cohere/rerank-v3.5", request())
    assert (other.attempts, first.attempts, again.attempts) == (1, 3, 1)


async def test_wire_server_slow_answer_is_timeout(server: CohereServer) -> None:
    server.fail_next(Fault(delay=0.5))
    async with httpx.AsyncClient(trust_env=False, timeout=0.1) as slow_client:
        reranker, _ = reranker_for(slow_client, server.base_url)
        with pytest.raises(ProviderTimeoutError) as raised:
            await reranker.rerank("cohere/rerank-v3.5", request())
    assert raised.value.retryable


def test_wire_server_scores_are_word_overlap_probabilities() -> None:
    assert score("Solar power", "solar panels make power") == 1.0
    assert score("solar power plants", "Solar!") == pytest.approx(1 / 3)
    assert score("a b c d", "a c") == 0.5
    assert score("solar", "") == 0.0
    assert score("", "x") == 0.0
