"""DeepInfra adapter: the inference URL, bodies, input-order scores, errors, the wire server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers.adapters import deepinfra
from providers.deployment import Deployment
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
    e2e_lines,
    expected_results,
    failure,
    rerank,
    single,
)
from tests.e2e import run_batch
from tests.servers.deepinfra import DeepInfraServer, check, deepinfra_server
from tests.wire_server import score

ADAPTER = deepinfra.ADAPTER
KEY = "di-test"
MODEL = "Qwen/Qwen3-Reranker-4B"
URL = f"https://api.deepinfra.com/v1/inference/{MODEL}"
TEXTS = ["solar power plants", "coffee"]


def di(base: str | None = None, key: str | None = KEY) -> Deployment:
    return deployment("deepinfra", MODEL, key=key, base=base)


def request(**overrides: Any) -> RerankRequest:
    return RerankRequest(**{"query": "solar power", "documents": list(TEXTS), **overrides})


def body(documents: list[str]) -> dict[str, Any]:
    return {"queries": ["solar power"] * len(documents), "documents": documents}


def scores(*values: float, tokens: int = 21) -> httpx.Response:
    payload = {
        "scores": list(values),
        "input_tokens": tokens,
        "request_id": "di-req-1",
        "inference_status": {"status": "succeeded", "runtime_ms": 5, "cost": 0.0001, "tokens_input": tokens},
    }
    return httpx.Response(200, json=payload)


# --- URL and body (prepare: no I/O) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url"),
    [
        (None, URL),
        ("https://api.deepinfra.com/v1/openai", URL),
        ("https://api.deepinfra.com/v1/openai/", URL),
        ("https://api.deepinfra.com/v1", URL),
        ("http://127.0.0.1:9000", f"http://127.0.0.1:9000/inference/{MODEL}"),
        ("http://127.0.0.1:9000/openai", f"http://127.0.0.1:9000/inference/{MODEL}"),
        # only the path loses "openai" (LiteLLM would also rewrite this host)
        ("https://openai-gw.example.com/v1/openai", f"https://openai-gw.example.com/v1/inference/{MODEL}"),
    ],
)
def test_url_has_the_model_and_no_openai(base: str | None, url: str) -> None:
    wire = single(ADAPTER, di(base), request())
    assert (wire.method, wire.url, wire.headers) == ("POST", url, {})


OBJECTS: list[Document] = [
    {"id": "a", "title": "Solar panels", "text": "Photovoltaic cells"},
    {"id": "b", "title": "Coffee", "text": "Espresso", "year": 2020},
]
LONG = " ".join(f"w{i}" for i in range(10))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({}, body(TEXTS), id="one-query-per-document-no-model"),
        pytest.param({"top_n": 1, "return_documents": True}, body(TEXTS), id="no-top_n-no-return_documents"),
        pytest.param(
            {"documents": OBJECTS, "rank_fields": ["text", "title"]},
            body(["text: Photovoltaic cells\ntitle: Solar panels", "text: Espresso\ntitle: Coffee"]),
            id="objects-rank_fields",
        ),
        pytest.param(
            {"documents": [LONG, "x"], "max_tokens_per_doc": 4}, body(["w0 w1 w2 w3", "x"]), id="max_tokens"
        ),
        pytest.param(
            {"documents": [LONG], "max_tokens_per_doc": 4, "max_chunks_per_doc": 2},
            body(["w0 w1 w2 w3", "w4 w5 w6 w7"]),
            id="max_chunks",
        ),
    ],
)
def test_body(overrides: dict[str, Any], expected: dict[str, Any]) -> None:
    wire = single(ADAPTER, di(), request(**overrides))
    assert wire.body == expected
    assert check(wire.body) is None


def test_capabilities_and_env_names() -> None:
    caps = ADAPTER.capabilities(di())
    assert (caps.object_documents, caps.top_n, caps.max_tokens_per_doc, caps.max_chunks_per_doc) == (
        False,
        False,
        False,
        False,
    )
    found = credentials_from({"DEEPINFRA_API_KEY": "k", "DEEPINFRA_API_BASE": "http://d/v1/openai"})[
        "deepinfra"
    ]
    assert (found.api_base, found.api_key is not None) == ("http://d/v1/openai", True)


async def test_missing_key_is_configuration_error() -> None:
    await check_missing_setting(ADAPTER, di(key=None), request(), ("DEEPINFRA_API_KEY",))


# --- the shared HTTP path over MockTransport ----------------------------------------------------------


async def test_input_order_scores_are_mapped_sorted_and_cut() -> None:
    mock = Mock(scores(0.1, 0.9, 0.4, 0.9))
    response, _ = await rerank(ADAPTER, di(), request(documents=["a", "b", "c", "d"], top_n=3), mock)
    (sent,) = mock.requests
    assert (str(sent.url), sent.headers["authorization"]) == (URL, f"Bearer {KEY}")
    assert response.results == [RankedDocument(1, 0.9), RankedDocument(3, 0.9), RankedDocument(2, 0.4)]
    assert (response.response_id, response.usage) == ("di-req-1", {"tokens": {"input_tokens": 21}})


async def test_without_top_n_every_document_comes_back() -> None:
    response, _ = await rerank(ADAPTER, di(), request(), Mock(scores(0.2, 0.7)))
    assert response.results == [RankedDocument(1, 0.7), RankedDocument(0, 0.2)]


async def test_chunk_scores_are_max_pooled() -> None:
    req = request(documents=[LONG, "x"], max_tokens_per_doc=4, max_chunks_per_doc=2)
    response, _ = await rerank(ADAPTER, di(), req, Mock(scores(0.1, 0.8, 0.5)))
    assert response.results == [RankedDocument(0, 0.8), RankedDocument(1, 0.5)]


DETAIL_ERROR = {"detail": {"error": "Model is not available"}}


async def test_error_mapping_in_deepinfra_envelope() -> None:
    await check_error_mapping(
        ADAPTER, di(), request(), DETAIL_ERROR, "Model is not available", scores(0.1, 0.2)
    )


@pytest.mark.parametrize(
    ("envelope", "message"),
    [
        ({"detail": "Not authenticated"}, "Not authenticated"),
        (
            {"detail": [{"loc": ["body", "queries"], "msg": "field required", "type": "value_error"}]},
            "field required",
        ),
    ],
)
async def test_other_detail_envelopes(envelope: Any, message: str) -> None:
    exc, _ = await failure(ADAPTER, di(), request(), Mock(httpx.Response(422, json=envelope)))
    assert isinstance(exc, InvalidRequestError) and exc.message == message


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"scores": [0.5], "input_tokens": 3}, id="fewer-scores-than-documents"),
        pytest.param({"scores": [0.5, 0.1, 0.2]}, id="more-scores-than-documents"),
        pytest.param({"scores": [0.5, None]}, id="null-score"),
        pytest.param({"scores": [0.5, "NaN"]}, id="nan-score"),
        pytest.param({"results": [{"index": 0, "relevance_score": 0.5}]}, id="cohere-shape"),
    ],
)
async def test_wrong_shape_is_bad_response(payload: Any) -> None:
    exc, _ = await failure(ADAPTER, di(), request(), Mock(httpx.Response(200, json=payload)))
    assert isinstance(exc, BadResponseError)


# --- against the local DeepInfra server ---------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[DeepInfraServer]:
    with deepinfra_server(KEY, frozenset({MODEL})) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        yield http


def reranker(client: httpx.AsyncClient, base: str, key: str = KEY) -> Reranker:
    transport = Dispatcher(client, RetryPolicy(max_attempts=1))
    return Reranker(transport, {"deepinfra": di(base, key).credentials})


async def test_wire_server_round_trip(server: DeepInfraServer, client: httpx.AsyncClient) -> None:
    docs: list[Document] = ["coffee beans", "solar power plants", {"title": "solar farms"}]
    response = await reranker(client, f"{server.base_url}/v1/openai").rerank(
        f"deepinfra/{MODEL}", request(documents=docs, top_n=2)
    )
    (seen,) = server.requests
    assert (seen.path, seen.status) == (f"/v1/inference/{MODEL}", 200)
    assert seen.body == body(["coffee beans", "solar power plants", "title: solar farms"])
    assert response.results == [RankedDocument(1, 1.0), RankedDocument(2, 0.5)]
    assert (response.response_id, response.usage) == (seen.request_id, {"tokens": {"input_tokens": 14}})


async def test_wire_server_rejects_what_deepinfra_rejects(
    server: DeepInfraServer, client: httpx.AsyncClient
) -> None:
    url, auth = f"{server.base_url}/v1/inference/{MODEL}", {"authorization": f"Bearer {KEY}"}
    for bad in [
        {"queries": ["q"], "documents": ["a", "b"]},
        {**body(["a"]), "top_n": 1},
        {"queries": ["q"], "documents": [{"text": "a"}]},
    ]:
        assert (await client.post(url, json=bad, headers=auth)).status_code == 422, bad
    answer = await client.post(f"{server.base_url}/v1/inference/other/model", json=body(["a"]), headers=auth)
    assert (answer.status_code, answer.json()) == (
        404,
        {"detail": {"error": "Model is not available: other/model"}},
    )
    with pytest.raises(AuthenticationError) as denied:
        await reranker(client, f"{server.base_url}/v1", key="wrong").rerank(f"deepinfra/{MODEL}", request())
    assert denied.value.message == "Authentication failed: invalid API key"


@pytest.mark.integration
def test_end_to_end_through_worker(redis_url: str, tmp_path: Path) -> None:
    with deepinfra_server(KEY, frozenset({MODEL})) as server:
        lines = e2e_lines(f"deepinfra/{MODEL}")
        env = e2e_env(DEEPINFRA_API_KEY=KEY, DEEPINFRA_API_BASE=f"{server.base_url}/v1/openai")
        results, errors = run_batch(redis_url, lines, tmp_path, env)
    assert errors == []
    assert [r["id"] for r in results] == [line["id"] for line in lines]
    by_query = {r.body["queries"][0]: r for r in server.requests}
    for line, record in zip(lines, results, strict=True):
        assert record["results"] == expected_results(line, score)
        assert record.get("metadata", "absent") == line.get("metadata", "absent")
        seen = by_query[line["query"]]
        assert record["response_id"] == seen.request_id
        assert record["usage"]["tokens"]["input_tokens"] > 0
        assert seen.body["queries"] == [line["query"]] * len(line["documents"])
    assert {(r.path, r.status) for r in server.requests} == {(f"/v1/inference/{MODEL}", 200)}
    assert all(set(r.body) == {"queries", "documents"} for r in server.requests)
