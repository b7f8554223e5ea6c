"""azure_ai adapter: URL rules and the Cohere version they select, bodies, parsing and errors; the
local Azure deployment; one batch end to end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from providers.adapters import cohere
from providers.adapters.azure_ai import ADAPTER, rerank_url
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
from tests.servers.azure_ai import AzureAIServer, azure_ai_server
from tests.wire_server import rate_limited

KEY = "test-azure-key"
WIRE_MODEL = "cohere-rerank-v3.5"
SERVERLESS = "https://rerank-x.eastus2.models.ai.azure.com"
FOUNDRY = "https://res.services.ai.azure.com/providers/cohere/v2"
VERSION = "?api-version=2024-05-01-preview"
OBJECTS: list[Document] = [
    {"id": "a", "title": "Solar panels", "text": "Photovoltaic cells turn light into power."},
    {"id": "b", "title": "Coffee", "text": "Espresso is brewed under pressure."},
]
HEAD = {"model": WIRE_MODEL, "query": "solar power"}
STRINGS: list[Document] = ["solar power plants", "coffee"]
LONG = " ".join(f"w{i}" for i in range(10))


def dep(base: str | None = SERVERLESS, key: str | None = KEY) -> Deployment:
    return deployment("azure_ai", WIRE_MODEL, key, base)


def req(**overrides: Any) -> RerankRequest:
    return RerankRequest(**{"query": "solar power", "documents": STRINGS, **overrides})


def ok(results: list[tuple[int, float]], meta: dict[str, Any] | None = None) -> httpx.Response:
    body = {
        "id": "resp-az",
        "results": [{"index": i, "relevance_score": s} for i, s in results],
        "meta": meta
        if meta is not None
        else {"api_version": {"version": "1"}, "billed_units": {"search_units": 1}},
    }
    return httpx.Response(200, json=body, headers={"x-request-id": "req-az"})


# --- what goes on the wire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url", "version"),
    [
        (SERVERLESS, f"{SERVERLESS}/v1/rerank", 1),
        (f"{SERVERLESS}/", f"{SERVERLESS}/v1/rerank", 1),
        (f"{SERVERLESS}/v1", f"{SERVERLESS}/v1/rerank", 1),
        (f"{SERVERLESS}/v1/rerank", f"{SERVERLESS}/v1/rerank", 1),
        (f"{SERVERLESS}/v2", f"{SERVERLESS}/v2/rerank", 2),
        (f"{SERVERLESS}/v2/rerank/", f"{SERVERLESS}/v2/rerank", 2),
        (FOUNDRY, f"{FOUNDRY}/rerank", 2),
        (f"{FOUNDRY}{VERSION}", f"{FOUNDRY}/rerank{VERSION}", 2),
        (f"{FOUNDRY}/rerank{VERSION}", f"{FOUNDRY}/rerank{VERSION}", 2),
        (f"{SERVERLESS}{VERSION}", f"{SERVERLESS}/v1/rerank{VERSION}", 1),
        ("https://gw.example.com/apiv2", "https://gw.example.com/apiv2/v1/rerank", 1),
    ],
)
def test_url_rules_and_the_version_they_select(base: str, url: str, version: int) -> None:
    assert rerank_url(base) == (url, version)
    wire = single(ADAPTER, dep(base), req())
    assert (wire.method, wire.url) == ("POST", url)
    assert ADAPTER.capabilities(dep(base)) == (cohere.V1 if version == 1 else cohere.V2)


@pytest.mark.parametrize(
    ("base", "overrides", "body"),
    [
        pytest.param(
            SERVERLESS, {}, {**HEAD, "documents": STRINGS, "return_documents": False}, id="v1-strings"
        ),
        pytest.param(
            SERVERLESS,
            {"documents": OBJECTS, "rank_fields": ["title"], "top_n": 1, "max_chunks_per_doc": 3,
             "return_documents": True},
            {**HEAD, "documents": OBJECTS, "rank_fields": ["title"], "top_n": 1, "max_chunks_per_doc": 3,
             "return_documents": False},
            id="v1-objects-rank_fields-max_chunks-native",
        ),
        pytest.param(
            SERVERLESS,
            {"documents": [LONG, {"text": LONG}], "max_tokens_per_doc": 3},
            {**HEAD, "documents": ["w0 w1 w2", "w0 w1 w2"], "return_documents": False},
            id="v1-max_tokens_per_doc-truncated-here",
        ),
        pytest.param(
            FOUNDRY,
            {"documents": OBJECTS, "rank_fields": ["title"], "top_n": 1, "max_tokens_per_doc": 512},
            {**HEAD, "documents": ["title: Solar panels", "title: Coffee"], "top_n": 1,
             "max_tokens_per_doc": 512},
            id="v2-objects-rendered-max_tokens-native",
        ),
        pytest.param(
            FOUNDRY,
            {"documents": [LONG, "solar"], "max_chunks_per_doc": 2, "max_tokens_per_doc": 4, "top_n": 1},
            {**HEAD, "documents": ["w0 w1 w2 w3", "w4 w5 w6 w7", "solar"]},
            id="v2-max_chunks_per_doc-chunked-here",
        ),
    ],
)  # fmt: skip
def test_body_follows_the_cohere_version(base: str, overrides: dict[str, Any], body: dict[str, Any]) -> None:
    assert single(ADAPTER, dep(base), req(**overrides)).body == body


def test_more_than_a_thousand_documents_are_split() -> None:
    documents: list[Document] = [f"doc {i}" for i in range(cohere.MAX_DOCUMENTS + 5)]
    parts = wires(ADAPTER, dep(FOUNDRY), req(documents=documents, top_n=2))
    assert [len(w.body["documents"]) for w in parts] == [cohere.MAX_DOCUMENTS, 5]
    assert [w.body["top_n"] for w in parts] == [2, 2]


async def test_sends_bearer_key_and_keeps_the_query_string() -> None:
    mock = Mock(ok([(0, 0.9), (1, 0.1)]))
    await rerank(ADAPTER, dep(f"{FOUNDRY}{VERSION}"), req(), mock)
    (sent,) = mock.requests
    assert str(sent.url) == f"{FOUNDRY}/rerank{VERSION}"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(sent.content) == {**HEAD, "documents": STRINGS}


# --- what comes back --------------------------------------------------------------------------------


async def test_split_results_map_back_and_usage_adds_up() -> None:
    documents: list[Document] = [f"doc {i}" for i in range(cohere.MAX_DOCUMENTS + 3)]
    mock = Mock(ok([(7, 0.4), (1, 0.2)]), ok([(2, 0.9), (0, 0.1)]))
    response, _ = await rerank(ADAPTER, dep(), req(documents=documents, top_n=2), mock)
    assert response.results == [RankedDocument(cohere.MAX_DOCUMENTS + 2, 0.9), RankedDocument(7, 0.4)]
    assert (response.requests, response.response_id, response.request_id) == (2, "resp-az", "req-az")
    assert response.usage == {"billed_units": {"search_units": 2}}


async def test_errors_carry_azures_message_and_retry_after() -> None:
    message = "Rate limit is exceeded. Try again in 7 seconds."
    envelope = {"error": {"code": "429", "message": message}}
    await check_error_mapping(ADAPTER, dep(), req(), envelope, message, ok([(0, 0.9), (1, 0.1)]))


async def test_cohere_messages_and_auth_failures() -> None:
    body = {"message": "invalid request: unknown field: parameter max_chunks_per_doc is not a valid field"}
    exc, _ = await failure(ADAPTER, dep(FOUNDRY), req(), Mock(httpx.Response(400, json=body)))
    assert isinstance(exc, InvalidRequestError) and exc.message == body["message"]
    denied = {"error": {"code": "Unauthorized", "message": "Access denied due to invalid subscription key."}}
    exc, _ = await failure(ADAPTER, dep(), req(), Mock(httpx.Response(401, json=denied)))
    assert (
        isinstance(exc, AuthenticationError)
        and exc.message == "Access denied due to invalid subscription key."
    )


async def test_missing_base_or_key_is_a_configuration_error() -> None:
    await check_missing_setting(ADAPTER, dep(base=None), req(), ("AZURE_AI_API_BASE",))
    await check_missing_setting(ADAPTER, dep(key=None), req(), ("AZURE_AI_API_KEY",))


def test_key_and_base_variables() -> None:
    found = credentials_from({"AZURE_AI_API_KEY": "k", "AZURE_AI_API_BASE": FOUNDRY})["azure_ai"]
    assert found.api_key is not None and found.api_key.get_secret_value() == "k"
    assert found.api_base == FOUNDRY
    assert credentials_from({"AZURE_API_KEY": "openai-key"})["azure_ai"] == Credentials()


# --- against the local Azure deployment -------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[AzureAIServer]:
    with azure_ai_server(KEY) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        yield http


async def test_round_trip_v1_with_objects(server: AzureAIServer, client: httpx.AsyncClient) -> None:
    transport = Dispatcher(client, RetryPolicy(max_attempts=1))
    reranker = Reranker(
        transport, {"azure_ai": Credentials(api_key=SecretStr(KEY), api_base=server.base_url)}
    )
    docs: list[Document] = [{"title": "coffee", "text": "solar"}, {"title": "solar power", "text": "x"}]
    response = await reranker.rerank(f"azure_ai/{WIRE_MODEL}", req(documents=docs, rank_fields=["title"]))
    (seen,) = server.requests
    assert (seen.path, seen.status) == ("/v1/rerank", 200)
    assert seen.body == {**HEAD, "documents": docs, "rank_fields": ["title"], "return_documents": False}
    assert response.results == [RankedDocument(1, 1.0), RankedDocument(0, 0.0)]
    assert response.request_id == seen.request_id


async def test_local_deployment_refuses_what_cohere_refuses(
    server: AzureAIServer, client: httpx.AsyncClient
) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    v2 = f"{server.base_url}/providers/cohere/v2/rerank{VERSION}"
    good = {**HEAD, "documents": ["a"]}
    for url, body, named in [
        (v2, {**good, "max_chunks_per_doc": 2}, "max_chunks_per_doc"),
        (v2, {**good, "documents": [{"text": "a"}]}, "strings"),
        (f"{server.base_url}/v1/rerank", {**good, "max_tokens_per_doc": 5}, "max_tokens_per_doc"),
    ]:
        answer = await client.post(url, json=body, headers=auth)
        assert answer.status_code == 400, body
        assert named in answer.json()["message"]
    answer = await client.post(v2, json=good, headers={"authorization": "Bearer wrong"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "Unauthorized")


# --- end to end -------------------------------------------------------------------------------------


@pytest.mark.integration
def test_batch_against_a_foundry_v2_route(server: AzureAIServer, redis_url: str, tmp_path: Path) -> None:
    model = f"azure_ai/{WIRE_MODEL}"
    lines = lines_for(model, 12)
    capped = {"id": "capped", "model": model, "query": "wind farm", "documents": ["coffee", "wind farm"],
              "max_tokens_per_doc": 256}  # fmt: skip
    chunked = {**CHUNKED, "model": model}
    server.fail_query(lines[0]["query"], rate_limited("0"))
    base = f"{server.base_url}/providers/cohere/v2{VERSION}"
    env = e2e_env(AZURE_AI_API_KEY=KEY, AZURE_AI_API_BASE=base)

    results, errors = run_batch(redis_url, [*lines, capped, chunked], tmp_path, env)

    assert errors == []
    check_records([*lines, capped], results[:-1], rendered)
    assert results[-1]["results"] == CHUNKED_RESULTS
    assert results[0]["attempts"] == 2
    assert all(r["usage"] == {"billed_units": {"search_units": 1}} for r in results)
    paths = {(r.path, r.headers["authorization"]) for r in server.requests}
    assert paths == {(f"/providers/cohere/v2/rerank{VERSION}", f"Bearer {KEY}")}
    bodies = {r.body["query"]: r.body for r in server.requests if r.status == 200}
    for line in lines:
        wanted = {"model": WIRE_MODEL, "query": line["query"], "documents": rendered(line)}
        assert bodies[line["query"]] == wanted | ({"top_n": line["top_n"]} if "top_n" in line else {})
    assert bodies["wind farm"]["max_tokens_per_doc"] == 256
    assert bodies["alpha omega"]["documents"] == CHUNKED_SENT
