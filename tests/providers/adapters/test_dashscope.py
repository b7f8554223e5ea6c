"""dashscope adapter: URL rules, bodies, the 500-document split, parsing and DashScope's error
envelope; the local compatible-api; one batch end to end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from providers.adapters.dashscope import ADAPTER, MAX_DOCUMENTS
from providers.deployment import Credentials, Deployment
from providers.dispatcher import Dispatcher
from providers.errors import AuthenticationError, BadResponseError, InvalidRequestError
from providers.registry import credentials_from
from providers.reranker import Reranker
from providers.retry import RetryPolicy
from providers.types import Document, RankedDocument, RerankRequest
from tests.adapter_kit import (
    Mock,
    check_error_mapping,
    check_missing_setting,
    deployment,
    e2e_env,
    failure,
    rerank,
    single,
    wires,
)
from tests.e2e import run_batch
from tests.ranking_lines import CHUNKED, CHUNKED_RESULTS, CHUNKED_SENT, check_records, lines_for, rendered
from tests.servers.dashscope import DashScopeServer, dashscope_server
from tests.wire_server import Fault, words

KEY = "sk-test-dashscope"
WIRE_MODEL = "qwen3-rerank"
DEFAULT_URL = "https://dashscope.aliyuncs.com/compatible-api/v1/reranks"
INTL = "https://dashscope-intl.aliyuncs.com/compatible-api/v1"
OBJECTS: list[Document] = [
    {"id": "a", "title": "Rerank", "text": "Rerank models sort documents."},
    {"id": "b", "title": "Quantum", "text": "Quantum computing."},
]
HEAD = {"model": WIRE_MODEL, "query": "rerank model"}
STRINGS: list[Document] = ["rerank models sort", "quantum computing"]
LONG = " ".join(f"w{i}" for i in range(10))


def dep(base: str | None = None, key: str | None = KEY) -> Deployment:
    return deployment("dashscope", WIRE_MODEL, key, base)


def req(**overrides: Any) -> RerankRequest:
    return RerankRequest(**{"query": "rerank model", "documents": STRINGS, **overrides})


def ok(results: list[tuple[int, float]], usage: Any = None) -> httpx.Response:
    body = {
        "id": "5f8c1a2e",
        "object": "list",
        "model": WIRE_MODEL,
        "results": [{"index": i, "relevance_score": s} for i, s in results],
        "usage": usage if usage is not None else {"total_tokens": 25},
    }
    return httpx.Response(200, json=body)


def envelope(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message, "request_id": "b3a1c9e0-req"}


# --- what goes on the wire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url"),
    [
        (None, DEFAULT_URL),
        (DEFAULT_URL, DEFAULT_URL),
        (INTL, f"{INTL}/reranks"),
        (f"{INTL}/", f"{INTL}/reranks"),
        ("https://dashscope.aliyuncs.com/compatible-mode/v1", DEFAULT_URL),
        ("https://dashscope-intl.aliyuncs.com/compatible-mode/v1/", f"{INTL}/reranks"),
        ("https://ws1.ap-southeast-1.maas.aliyuncs.com/compatible-api/v1",
         "https://ws1.ap-southeast-1.maas.aliyuncs.com/compatible-api/v1/reranks"),
        ("http://127.0.0.1:9/v1/rerank", "http://127.0.0.1:9/v1/rerank"),
        ("http://127.0.0.1:9", "http://127.0.0.1:9/reranks"),
    ],
)  # fmt: skip
def test_url_rules(base: str | None, url: str) -> None:
    wire = single(ADAPTER, dep(base), req())
    assert (wire.method, wire.url) == ("POST", url)


@pytest.mark.parametrize(
    ("overrides", "body"),
    [
        pytest.param({}, {**HEAD, "documents": STRINGS}, id="strings"),
        pytest.param(
            {"top_n": 1, "return_documents": True},
            {**HEAD, "documents": STRINGS, "top_n": 1},
            id="top_n-sent-return_documents-never",
        ),
        pytest.param(
            {"documents": OBJECTS, "rank_fields": ["title"]},
            {**HEAD, "documents": ["title: Rerank", "title: Quantum"]},
            id="objects-rendered-with-rank_fields",
        ),
        pytest.param(
            {"documents": [LONG, "rerank"], "max_tokens_per_doc": 3},
            {**HEAD, "documents": ["w0 w1 w2", "rerank"]},
            id="max_tokens_per_doc-truncated-here",
        ),
        pytest.param(
            {"documents": [LONG, "rerank"], "max_chunks_per_doc": 2, "max_tokens_per_doc": 4, "top_n": 1},
            {**HEAD, "documents": ["w0 w1 w2 w3", "w4 w5 w6 w7", "rerank"]},
            id="max_chunks_per_doc-chunked-here",
        ),
    ],
)  # fmt: skip
def test_body_takes_strings_only(overrides: dict[str, Any], body: dict[str, Any]) -> None:
    assert single(ADAPTER, dep(), req(**overrides)).body == body


def test_lists_over_500_documents_are_split() -> None:
    parts = wires(ADAPTER, dep(), req(documents=[f"doc {i}" for i in range(2 * MAX_DOCUMENTS + 1)]))
    assert [len(w.body["documents"]) for w in parts] == [MAX_DOCUMENTS, MAX_DOCUMENTS, 1]


async def test_sends_bearer_key() -> None:
    mock = Mock(ok([(0, 0.9), (1, 0.1)]))
    await rerank(ADAPTER, dep(), req(), mock)
    (sent,) = mock.requests
    assert (str(sent.url), sent.headers["authorization"]) == (DEFAULT_URL, f"Bearer {KEY}")
    assert json.loads(sent.content) == {**HEAD, "documents": STRINGS}


# --- what comes back --------------------------------------------------------------------------------


async def test_split_results_map_back_with_usage_summed() -> None:
    documents: list[Document] = [f"doc {i}" for i in range(MAX_DOCUMENTS + 1)]
    mock = Mock(ok([(4, 0.5), (2, 0.3)], {"total_tokens": 900}), ok([(0, 0.93)], {"total_tokens": 3}))
    response, _ = await rerank(ADAPTER, dep(), req(documents=documents, top_n=2), mock)
    assert response.results == [RankedDocument(MAX_DOCUMENTS, 0.93), RankedDocument(4, 0.5)]
    assert response.usage == {"tokens": {"total_tokens": 903}}
    assert response.response_id == "5f8c1a2e"


async def test_error_envelope_on_a_200_is_a_bad_response_with_dashscopes_words() -> None:
    body = envelope("InvalidParameter", "Range of documents should be [1, 500]")
    exc, _ = await failure(ADAPTER, dep(), req(), Mock(httpx.Response(200, json=body)))
    assert isinstance(exc, BadResponseError)
    assert "InvalidParameter" in exc.message and "Range of documents" in exc.message


async def test_errors_carry_dashscopes_message_and_retry_after() -> None:
    body = envelope("Throttling.RateQuota", "Requests rate limit exceeded, please try again later.")
    await check_error_mapping(ADAPTER, dep(), req(), body, body["message"], ok([(0, 0.9), (1, 0.1)]))


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [(401, "InvalidApiKey", AuthenticationError), (400, "InvalidParameter", InvalidRequestError)],
)
async def test_request_id_comes_from_the_envelope(status: int, code: str, kind: type[Exception]) -> None:
    exc, _ = await failure(ADAPTER, dep(), req(), Mock(httpx.Response(status, json=envelope(code, "nope"))))
    assert isinstance(exc, kind)
    assert (exc.message, exc.request_id) == ("nope", "b3a1c9e0-req")


async def test_missing_key_is_a_configuration_error() -> None:
    await check_missing_setting(ADAPTER, dep(key=None), req(), ("DASHSCOPE_API_KEY",))


def test_key_and_rerank_base_variables() -> None:
    found = credentials_from({"DASHSCOPE_API_KEY": "k", "DASHSCOPE_API_BASE_RERANK": INTL})["dashscope"]
    assert found.api_key is not None and found.api_key.get_secret_value() == "k"
    assert found.api_base == INTL
    chat_base = "https://dashscope.aliyuncs.com/compatible-mode/v1"
    assert credentials_from({"DASHSCOPE_API_BASE": chat_base})["dashscope"].api_base is None


# --- against the local compatible-api ---------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[DashScopeServer]:
    with dashscope_server(KEY, [WIRE_MODEL]) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        yield http


async def test_round_trip_with_the_local_api(server: DashScopeServer, client: httpx.AsyncClient) -> None:
    transport = Dispatcher(client, RetryPolicy(max_attempts=1))
    base = f"{server.base_url}/compatible-api/v1"
    reranker = Reranker(transport, {"dashscope": Credentials(api_key=SecretStr(KEY), api_base=base)})
    docs: list[Document] = ["quantum", {"id": "r", "text": "a rerank model"}, "model"]
    response = await reranker.rerank(f"dashscope/{WIRE_MODEL}", req(documents=docs, top_n=2))
    (seen,) = server.requests
    assert (seen.path, seen.status) == ("/compatible-api/v1/reranks", 200)
    assert seen.body == {**HEAD, "documents": ["quantum", "a rerank model", "model"], "top_n": 2}
    assert response.results == [RankedDocument(1, 1.0), RankedDocument(2, 0.5)]
    assert response.usage == {"tokens": {"total_tokens": 11}}
    assert response.response_id == seen.request_id


async def test_local_api_refuses_what_dashscope_refuses(
    server: DashScopeServer, client: httpx.AsyncClient
) -> None:
    url, auth = f"{server.base_url}/compatible-api/v1/reranks", {"authorization": f"Bearer {KEY}"}
    good = {**HEAD, "documents": ["a"]}
    for body, named in [
        ({**good, "documents": ["a"] * 501}, "[1, 500]"),
        ({**good, "documents": [{"text": "a"}]}, "strings"),
        ({**good, "rank_fields": ["text"]}, "rank_fields"),
        ({**good, "model": "gte-nope"}, "Model not exist"),
    ]:
        answer = await client.post(url, json=body, headers=auth)
        assert (answer.status_code, answer.json()["code"]) == (400, "InvalidParameter"), body
        assert named in answer.json()["message"]
    answer = await client.post(url, json=good, headers={"authorization": "Bearer sk-wrong"})
    assert (answer.status_code, answer.json()["code"]) == (401, "InvalidApiKey")
    assert answer.json()["request_id"] == server.requests[-1].request_id


# --- end to end -------------------------------------------------------------------------------------


@pytest.mark.integration
def test_batch_against_dashscope(server: DashScopeServer, redis_url: str, tmp_path: Path) -> None:
    model = f"dashscope/{WIRE_MODEL}"
    lines = lines_for(model, 12)
    chunked = {**CHUNKED, "model": model}
    throttled = {
        "code": "Throttling.RateQuota",
        "message": "Requests rate limit exceeded",
        "request_id": "t-1",
    }
    server.fail_query(lines[7]["query"], Fault(429, retry_after="0", body=throttled))
    env = e2e_env(DASHSCOPE_API_KEY=KEY, DASHSCOPE_API_BASE_RERANK=f"{server.base_url}/compatible-api/v1")

    results, errors = run_batch(redis_url, [*lines, chunked], tmp_path, env)

    assert errors == []
    check_records(lines, results[:-1], rendered)
    assert results[-1]["results"] == CHUNKED_RESULTS
    assert results[7]["attempts"] == 2
    assert {(r.path, r.headers["authorization"]) for r in server.requests} == {
        ("/compatible-api/v1/reranks", f"Bearer {KEY}")
    }
    answered = {r.request_id: r for r in server.requests if r.status == 200}
    for line, record in zip(lines, results, strict=False):
        seen = answered[record["response_id"]]  # DashScope's id is its request id
        wanted = {"model": WIRE_MODEL, "query": line["query"], "documents": rendered(line)}
        assert seen.body == wanted | ({"top_n": line["top_n"]} if "top_n" in line else {})
        tokens = sum(len(words(line["query"])) + len(words(d)) for d in rendered(line))
        assert record["usage"] == {"tokens": {"total_tokens": tokens}}
    assert answered[results[-1]["response_id"]].body["documents"] == CHUNKED_SENT
