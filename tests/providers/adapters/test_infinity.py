"""infinity adapter: URLs, optional auth, bodies, splitting, parsing and errors; the local Infinity
server; one batch end to end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from providers.adapters.infinity import ADAPTER, MAX_DOCUMENTS
from providers.deployment import Credentials, Deployment
from providers.dispatcher import Dispatcher
from providers.errors import AuthenticationError, InvalidRequestError
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
from tests.servers.infinity import InfinityServer, infinity_server
from tests.wire_server import unavailable, words

BASE = "http://infinity.internal:7997"
WIRE_MODEL = "mixedbread-ai/mxbai-rerank-xsmall-v1"
OBJECTS: list[Document] = [
    {"id": "a", "title": "Munich", "text": "Munich is in Germany."},
    {"text": "The sky."},
]
HEAD = {"model": WIRE_MODEL, "query": "Where is Munich?"}
STRINGS: list[Document] = ["Munich is in Germany.", "The sky is blue."]
LONG = " ".join(f"w{i}" for i in range(10))


def dep(base: str | None = BASE, key: str | None = None) -> Deployment:
    return deployment("infinity", WIRE_MODEL, key, base)


def req(**overrides: Any) -> RerankRequest:
    return RerankRequest(**{"query": "Where is Munich?", "documents": STRINGS, **overrides})


def ok(results: list[tuple[int, float]], usage: Any = None) -> httpx.Response:
    body = {
        "object": "rerank",
        "results": [{"relevance_score": s, "index": i, "document": None} for i, s in results],
        "model": WIRE_MODEL,
        "usage": usage if usage is not None else {"prompt_tokens": 12, "total_tokens": 12},
        "id": "infinity-1",
        "created": 1_700_000_000,
    }
    return httpx.Response(200, json=body)


# --- what goes on the wire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url"),
    [
        (BASE, f"{BASE}/rerank"),
        (f"{BASE}/", f"{BASE}/rerank"),
        (f"{BASE}/v1", f"{BASE}/v1/rerank"),
        (f"{BASE}/rerank", f"{BASE}/rerank"),
        (f"{BASE}/v1/rerank/", f"{BASE}/v1/rerank"),
    ],
)
def test_url_is_base_plus_rerank(base: str, url: str) -> None:
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
            {"documents": OBJECTS, "rank_fields": ["title", "text"]},
            {**HEAD, "documents": ["title: Munich\ntext: Munich is in Germany.", "text: The sky."]},
            id="objects-rendered-with-rank_fields",
        ),
        pytest.param(
            {"documents": OBJECTS},
            {**HEAD, "documents": ["title: Munich\ntext: Munich is in Germany.", "The sky."]},
            id="objects-rendered-all-fields-but-id",
        ),
        pytest.param(
            {"documents": [LONG, "munich"], "max_tokens_per_doc": 3},
            {**HEAD, "documents": ["w0 w1 w2", "munich"]},
            id="max_tokens_per_doc-truncated-here",
        ),
        pytest.param(
            {"documents": [LONG, "munich"], "max_chunks_per_doc": 2, "max_tokens_per_doc": 4, "top_n": 1},
            {**HEAD, "documents": ["w0 w1 w2 w3", "w4 w5 w6 w7", "munich"]},
            id="max_chunks_per_doc-chunked-here",
        ),
    ],
)  # fmt: skip
def test_body_is_infinitys_rerank_input(overrides: dict[str, Any], body: dict[str, Any]) -> None:
    assert single(ADAPTER, dep(), req(**overrides)).body == body


def test_lists_over_2048_documents_are_split() -> None:
    parts = wires(ADAPTER, dep(), req(documents=[f"doc {i}" for i in range(MAX_DOCUMENTS + 10)], top_n=5))
    assert [len(w.body["documents"]) for w in parts] == [MAX_DOCUMENTS, 10]
    assert [w.body["top_n"] for w in parts] == [5, 5]


async def test_no_key_sends_no_authorization_header() -> None:
    mock = Mock(ok([(0, 0.9), (1, 0.1)]))
    await rerank(ADAPTER, dep(key=None), req(), mock)
    (sent,) = mock.requests
    assert "authorization" not in sent.headers
    assert (str(sent.url), json.loads(sent.content)) == (f"{BASE}/rerank", {**HEAD, "documents": STRINGS})


async def test_a_key_is_sent_as_bearer() -> None:
    mock = Mock(ok([(0, 0.9), (1, 0.1)]))
    await rerank(ADAPTER, dep(key="inf-key"), req(), mock)
    assert mock.requests[0].headers["authorization"] == "Bearer inf-key"


# --- what comes back --------------------------------------------------------------------------------


async def test_split_results_map_back_sorted_with_usage_summed() -> None:
    documents: list[Document] = [f"doc {i}" for i in range(MAX_DOCUMENTS + 2)]
    mock = Mock(
        ok([(3, 0.7), (0, 0.1)], {"prompt_tokens": 100, "total_tokens": 100}),
        ok([(1, 0.8), (0, 0.6)], {"prompt_tokens": 4, "total_tokens": 4}),
    )
    response, _ = await rerank(ADAPTER, dep(), req(documents=documents, top_n=3), mock)
    assert response.results == [
        RankedDocument(MAX_DOCUMENTS + 1, 0.8),
        RankedDocument(3, 0.7),
        RankedDocument(MAX_DOCUMENTS, 0.6),
    ]
    assert response.usage == {"tokens": {"prompt_tokens": 104, "total_tokens": 104}}
    assert (response.response_id, response.requests) == ("infinity-1", 2)


async def test_errors_carry_infinitys_message_and_retry_after() -> None:
    message = "model mixedbread-ai/mxbai-rerank-xsmall-v1 is currently overloaded"
    envelope = {"error": {"message": message, "type": None, "param": None, "code": 429}}
    await check_error_mapping(ADAPTER, dep(), req(), envelope, message, ok([(0, 0.9), (1, 0.1)]))


async def test_validation_and_auth_failures() -> None:
    detail = {"detail": [{"type": "string_type", "loc": ["body", "documents", 0],
                          "msg": "Input should be a valid string", "input": {}}]}  # fmt: skip
    exc, _ = await failure(ADAPTER, dep(), req(), Mock(httpx.Response(422, json=detail)))
    assert isinstance(exc, InvalidRequestError) and exc.message == "Input should be a valid string"
    exc, _ = await failure(ADAPTER, dep(), req(), Mock(httpx.Response(401, json={"detail": "Unauthorized"})))
    assert isinstance(exc, AuthenticationError) and exc.message == "Unauthorized"


async def test_missing_base_is_a_configuration_error() -> None:
    await check_missing_setting(ADAPTER, dep(base=None), req(), ("INFINITY_API_BASE",))


def test_key_and_base_variables() -> None:
    found = credentials_from({"INFINITY_API_BASE": BASE, "INFINITY_API_KEY": "k"})["infinity"]
    assert found.api_key is not None and found.api_key.get_secret_value() == "k"
    assert found.api_base == BASE
    assert credentials_from({"INFINITY_API_BASE": BASE})["infinity"].api_key is None


# --- against the local Infinity server --------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        yield http


async def test_round_trip_with_an_api_key(client: httpx.AsyncClient) -> None:
    with infinity_server("inf-key", [WIRE_MODEL]) as server:
        transport = Dispatcher(client, RetryPolicy(max_attempts=1))
        reranker = Reranker(
            transport, {"infinity": Credentials(api_key=SecretStr("inf-key"), api_base=server.base_url)}
        )
        docs: list[Document] = ["sky", {"id": "m", "text": "Munich is where?"}, "Where is it"]
        response = await reranker.rerank(f"infinity/{WIRE_MODEL}", req(documents=docs, top_n=2))
    (seen,) = server.requests
    assert (seen.path, seen.status, seen.headers["authorization"]) == ("/rerank", 200, "Bearer inf-key")
    assert seen.body == {**HEAD, "documents": ["sky", "Munich is where?", "Where is it"], "top_n": 2}
    assert response.results == [RankedDocument(1, 1.0), RankedDocument(2, 2 / 3)]
    assert response.usage == {"tokens": {"prompt_tokens": 16, "total_tokens": 16}}


async def test_local_server_validates_like_infinity(client: httpx.AsyncClient) -> None:
    with infinity_server("inf-key", [WIRE_MODEL]) as server:
        url, auth = f"{server.base_url}/rerank", {"authorization": "Bearer inf-key"}
        good = {**HEAD, "documents": ["a"]}
        objects = await client.post(url, json={**good, "documents": [{"text": "a"}]}, headers=auth)
        extra = await client.post(url, json={**good, "rank_fields": ["text"]}, headers=auth)
        model = await client.post(url, json={**good, "model": "other"}, headers=auth)
        denied = await client.post(url, json=good, headers={"authorization": "Bearer nope"})
    assert (objects.status_code, objects.json()["detail"][0]["loc"]) == (422, ["body", "documents", 0])
    assert extra.status_code == 200  # pydantic ignores extra fields: LiteLLM's rank_fields are lost silently
    assert (model.status_code, model.json()["error"]["code"]) == (400, 400)
    assert (denied.status_code, denied.json(), denied.headers["www-authenticate"]) == (
        401,
        {"detail": "Unauthorized"},
        "Bearer",
    )


# --- end to end -------------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[InfinityServer]:
    with infinity_server(None, [WIRE_MODEL], url_prefix="/v1") as running:
        yield running


@pytest.mark.integration
def test_batch_against_infinity_without_a_key(server: InfinityServer, redis_url: str, tmp_path: Path) -> None:
    model = f"infinity/{WIRE_MODEL}"
    lines = lines_for(model, 12)
    chunked = {**CHUNKED, "model": model}
    server.fail_query(lines[1]["query"], unavailable("0"), unavailable("0"))
    env = e2e_env(INFINITY_API_BASE=f"{server.base_url}/v1")

    results, errors = run_batch(redis_url, [*lines, chunked], tmp_path, env)

    assert errors == []
    check_records(lines, results[:-1], rendered)
    assert results[-1]["results"] == CHUNKED_RESULTS
    assert [r["attempts"] for r in results[:3]] == [1, 3, 1]
    assert {r.path for r in server.requests} == {"/v1/rerank"}
    assert not any("authorization" in r.headers for r in server.requests)
    answered = {r.request_id: r for r in server.requests if r.status == 200}
    for line, record in zip(lines, results, strict=False):
        seen = answered[record["request_id"]]
        wanted = {"model": WIRE_MODEL, "query": line["query"], "documents": rendered(line)}
        assert seen.body == wanted | ({"top_n": line["top_n"]} if "top_n" in line else {})
        tokens = sum(len(words(line["query"])) + len(words(d)) for d in rendered(line))
        assert record["usage"] == {"tokens": {"prompt_tokens": tokens, "total_tokens": tokens}}
        assert record["response_id"].startswith("infinity-")
    assert answered[results[-1]["request_id"]].body["documents"] == CHUNKED_SENT
