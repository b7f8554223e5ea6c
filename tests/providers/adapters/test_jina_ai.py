"""jina_ai adapter: the path-replacing URL rule, bodies without rank_fields, parsing and errors; the
local Jina API; one batch end to end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from providers.adapters.jina_ai import ADAPTER
from providers.deployment import Credentials, Deployment
from providers.dispatcher import Dispatcher
from providers.errors import AuthenticationError, InvalidRequestError, QuotaExceededError
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
from tests.servers.jina_ai import JinaServer, jina_server
from tests.wire_server import rate_limited, words

KEY = "jina_test_key"
WIRE_MODEL = "jina-reranker-v2-base-multilingual"
OBJECTS: list[Document] = [
    {"id": "a", "title": "Skincare", "text": "Organic skincare for sensitive skin."},
    {"id": "b", "title": "Makeup", "text": "Bold colors.", "year": 2024},
]
HEAD = {"model": WIRE_MODEL, "query": "organic skincare"}
STRINGS: list[Document] = ["organic skincare products", "makeup trends"]
LONG = " ".join(f"w{i}" for i in range(10))


def dep(base: str | None = None, key: str | None = KEY) -> Deployment:
    return deployment("jina_ai", WIRE_MODEL, key, base)


def req(**overrides: Any) -> RerankRequest:
    return RerankRequest(**{"query": "organic skincare", "documents": STRINGS, **overrides})


def ok(results: list[tuple[int, float]], usage: Any = None, document: Any = None) -> httpx.Response:
    body = {
        "model": WIRE_MODEL,
        "usage": usage if usage is not None else {"total_tokens": 20},
        "results": [{"index": i, "relevance_score": s, "document": document} for i, s in results],
    }
    return httpx.Response(200, json=body)


# --- what goes on the wire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url"),
    [
        (None, "https://api.jina.ai/v1/rerank"),
        ("https://api.jina.ai", "https://api.jina.ai/v1/rerank"),
        ("https://api.jina.ai/v1", "https://api.jina.ai/v1/rerank"),
        ("http://127.0.0.1:8080/some/path/", "http://127.0.0.1:8080/v1/rerank"),
        ("https://gw.example.com/jina/v2/rerank", "https://gw.example.com/v1/rerank"),
        ("http://h:9/x?tenant=a", "http://h:9/v1/rerank?tenant=a"),
    ],
)
def test_base_path_is_replaced(base: str | None, url: str) -> None:
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
            {"documents": OBJECTS, "rank_fields": ["text", "year"]},
            {**HEAD, "documents": [
                "text: Organic skincare for sensitive skin.", "text: Bold colors.\nyear: 2024",
            ]},
            id="rank_fields-used-to-render-never-sent",
        ),
        pytest.param(
            {"documents": [{"text": "plain"}, "s"]},
            {**HEAD, "documents": ["plain", "s"]},
            id="text-only-objects-are-their-text",
        ),
        pytest.param(
            {"documents": [LONG, "skincare"], "max_tokens_per_doc": 3},
            {**HEAD, "documents": ["w0 w1 w2", "skincare"]},
            id="max_tokens_per_doc-truncated-here",
        ),
        pytest.param(
            {"documents": [LONG, "skincare"], "max_chunks_per_doc": 2, "max_tokens_per_doc": 4, "top_n": 1},
            {**HEAD, "documents": ["w0 w1 w2 w3", "w4 w5 w6 w7", "skincare"]},
            id="max_chunks_per_doc-chunked-here",
        ),
    ],
)  # fmt: skip
def test_body_has_only_jinas_fields(overrides: dict[str, Any], body: dict[str, Any]) -> None:
    assert single(ADAPTER, dep(), req(**overrides)).body == body


def test_long_lists_go_in_one_request() -> None:
    (wire,) = wires(ADAPTER, dep(), req(documents=[f"doc {i}" for i in range(3000)]))
    assert len(wire.body["documents"]) == 3000


async def test_sends_bearer_key() -> None:
    mock = Mock(ok([(0, 0.9), (1, 0.1)]))
    await rerank(ADAPTER, dep(), req(), mock)
    (sent,) = mock.requests
    assert (str(sent.url), sent.headers["authorization"]) == (
        "https://api.jina.ai/v1/rerank",
        f"Bearer {KEY}",
    )
    assert json.loads(sent.content) == {**HEAD, "documents": STRINGS}


# --- what comes back --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document", [None, "organic skincare products", {"text": "organic skincare products"}]
)
async def test_results_sorted_cut_and_usage_as_reported(document: Any) -> None:
    usage = {"total_tokens": 815, "prompt_tokens": 815}
    mock = Mock(ok([(1, 0.2), (2, 0.76), (0, 0.88)], usage, document))
    response, _ = await rerank(ADAPTER, dep(), req(documents=["a", "b", "c"], top_n=2), mock)
    assert response.results == [RankedDocument(0, 0.88), RankedDocument(2, 0.76)]
    assert response.usage == {"tokens": usage}
    assert response.response_id is None


async def test_errors_carry_jinas_detail_and_retry_after() -> None:
    message = "[RID: 51853d71] Too many requests, please slow down"
    await check_error_mapping(ADAPTER, dep(), req(), {"detail": message}, message, ok([(0, 0.9), (1, 0.1)]))


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, AuthenticationError), (402, QuotaExceededError), (422, InvalidRequestError)],
)
async def test_auth_balance_and_validation_failures(status: int, kind: type[Exception]) -> None:
    detail = f"[RID: 06b5f7bd] failure {status}"
    exc, _ = await failure(ADAPTER, dep(), req(), Mock(httpx.Response(status, json={"detail": detail})))
    assert isinstance(exc, kind)
    assert (exc.status, exc.message, exc.retryable) == (status, detail, False)


async def test_missing_key_names_every_variable() -> None:
    await check_missing_setting(
        ADAPTER, dep(key=None), req(), ("JINA_AI_API_KEY", "JINA_API_KEY", "JINA_AI_TOKEN")
    )


def test_key_and_base_variables() -> None:
    found = credentials_from({"JINA_AI_TOKEN": "t", "JINA_API_KEY": "k"})["jina_ai"]
    assert found.api_key is not None and found.api_key.get_secret_value() == "k"
    based = credentials_from({"JINA_AI_API_KEY": "a", "JINA_AI_API_BASE": "http://h:1"})["jina_ai"]
    assert based.api_key is not None and based.api_key.get_secret_value() == "a"
    assert based.api_base == "http://h:1"


# --- against the local Jina API ---------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[JinaServer]:
    with jina_server(KEY, [WIRE_MODEL]) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        yield http


async def test_round_trip_with_the_local_api(server: JinaServer, client: httpx.AsyncClient) -> None:
    transport = Dispatcher(client, RetryPolicy(max_attempts=1))
    base = f"{server.base_url}/ignored/path"
    reranker = Reranker(transport, {"jina_ai": Credentials(api_key=SecretStr(KEY), api_base=base)})
    docs: list[Document] = [{"id": "x", "title": "skincare", "body": "organic"}, "makeup", "organic soap"]
    response = await reranker.rerank(f"jina_ai/{WIRE_MODEL}", req(documents=docs, rank_fields=["body"]))
    (seen,) = server.requests
    assert (seen.path, seen.status) == ("/v1/rerank", 200)
    assert seen.body == {**HEAD, "documents": ["body: organic", "makeup", "organic soap"]}
    assert response.results == [RankedDocument(0, 0.5), RankedDocument(2, 0.5), RankedDocument(1, 0.0)]
    assert response.usage == {"tokens": {"total_tokens": 11}}


async def test_local_api_refuses_what_jina_refuses(server: JinaServer, client: httpx.AsyncClient) -> None:
    url, auth = f"{server.base_url}/v1/rerank", {"authorization": f"Bearer {KEY}"}
    good = {**HEAD, "documents": ["a"]}
    for body, named in [
        ({**good, "rank_fields": ["text"]}, "rank_fields"),
        ({**good, "documents": [{"title": "a", "text": "b"}]}, "documents"),
        ({**good, "top_n": 0}, "top_n"),
    ]:
        answer = await client.post(url, json=body, headers=auth)
        assert answer.status_code == 422, body
        assert named in answer.json()["detail"] and answer.json()["detail"].startswith("[RID: ")
    answer = await client.post(url, json={**good, "documents": [{"text": "a"}]}, headers=auth)
    assert answer.status_code == 200
    answer = await client.post(url, json=good, headers={"authorization": "Bearer jina_wrong"})
    assert answer.status_code == 401


# --- end to end -------------------------------------------------------------------------------------


@pytest.mark.integration
def test_batch_against_jina(server: JinaServer, redis_url: str, tmp_path: Path) -> None:
    model = f"jina_ai/{WIRE_MODEL}"
    lines = lines_for(model, 12)
    chunked = {**CHUNKED, "model": model}
    server.fail_query(lines[5]["query"], rate_limited("0"))
    env = e2e_env(JINA_API_KEY=KEY, JINA_AI_API_BASE=f"{server.base_url}/v1/anything")

    results, errors = run_batch(redis_url, [*lines, chunked], tmp_path, env)

    assert errors == []
    check_records(lines, results[:-1], rendered)
    assert results[-1]["results"] == CHUNKED_RESULTS
    assert results[5]["attempts"] == 2
    assert {(r.path, r.headers["authorization"]) for r in server.requests} == {
        ("/v1/rerank", f"Bearer {KEY}")
    }
    bodies = {r.body["query"]: r.body for r in server.requests if r.status == 200}
    for line, record in zip(lines, results, strict=False):
        wanted = {"model": WIRE_MODEL, "query": line["query"], "documents": rendered(line)}
        assert bodies[line["query"]] == wanted | ({"top_n": line["top_n"]} if "top_n" in line else {})
        tokens = sum(len(words(line["query"])) + len(words(d)) for d in rendered(line))
        assert record["usage"] == {"tokens": {"total_tokens": tokens}}
    assert bodies["alpha omega"]["documents"] == CHUNKED_SENT
