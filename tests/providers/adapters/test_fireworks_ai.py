"""Fireworks AI adapter: URL rules, the forced ``fireworks/`` model, bodies, token usage, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers.adapters import fireworks_ai
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
from tests.servers.fireworks_ai import FireworksServer, check, fireworks_server
from tests.wire_server import score

ADAPTER = fireworks_ai.ADAPTER
KEY = "fw-test"
URL = "https://api.fireworks.ai/inference/v1/rerank"
TEXTS = ["solar power plants", "coffee"]


def fw(base: str | None = None, key: str | None = KEY, model: str = "qwen3-reranker-8b") -> Deployment:
    return deployment("fireworks_ai", model, key=key, base=base)


def request(**overrides: Any) -> RerankRequest:
    return RerankRequest(**{"query": "solar power", "documents": list(TEXTS), **overrides})


def body(documents: list[str], **extra: Any) -> dict[str, Any]:
    head = {"model": "fireworks/qwen3-reranker-8b", "query": "solar power"}
    return {**head, "documents": documents, "return_documents": False, **extra}


def data(*pairs: tuple[int, float], usage: Any = None, key: str = "data") -> httpx.Response:
    payload = {
        "object": "list",
        "model": "fireworks/qwen3-reranker-8b",
        key: [{"index": i, "relevance_score": s, "document": "t"} for i, s in pairs],
        "usage": usage if usage is not None else {"prompt_tokens": 40, "total_tokens": 40},
    }
    return httpx.Response(200, json=payload, headers={"x-request-id": "fw-req"})


# --- URL, model and body (prepare: no I/O) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url"),
    [
        (None, URL),
        ("https://api.fireworks.ai/inference/v1", URL),
        ("https://api.fireworks.ai/inference/v1/", URL),
        ("https://api.fireworks.ai/inference/v1/rerank", URL),
        ("https://api.fireworks.ai", URL),
        ("http://gw:1/v1", "http://gw:1/v1/rerank"),
        ("http://gw:1/custom/rerank", "http://gw:1/custom/rerank"),
    ],
)
def test_url(base: str | None, url: str) -> None:
    wire = single(ADAPTER, fw(base), request())
    assert (wire.method, wire.url, wire.headers) == ("POST", url, {})


@pytest.mark.parametrize(
    ("wire_model", "sent"),
    [
        ("qwen3-reranker-8b", "fireworks/qwen3-reranker-8b"),
        ("fireworks/qwen3-reranker-8b", "fireworks/qwen3-reranker-8b"),
        ("fireworks_ai/qwen3-reranker-8b", "fireworks/qwen3-reranker-8b"),
        # a full resource name is kept (LiteLLM would send fireworks/accounts/...)
        ("accounts/fireworks/models/qwen3-reranker-8b", "accounts/fireworks/models/qwen3-reranker-8b"),
    ],
)
def test_wire_model(wire_model: str, sent: str) -> None:
    assert single(ADAPTER, fw(model=wire_model), request()).body["model"] == sent


OBJECTS: list[Document] = [
    {"id": "a", "title": "Solar panels", "text": "Photovoltaic cells"},
    {"id": "b", "title": "Coffee", "text": "Espresso", "year": 2020},
]
LONG = " ".join(f"w{i}" for i in range(10))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({}, body(TEXTS), id="strings-return_documents-false"),
        pytest.param({"top_n": 1, "return_documents": True}, body(TEXTS, top_n=1), id="top_n-native"),
        pytest.param(
            {"documents": OBJECTS, "rank_fields": ["title"]},
            body(["title: Solar panels", "title: Coffee"]),
            id="objects-rank_fields",
        ),
        pytest.param(
            {"documents": [LONG], "max_tokens_per_doc": 2}, body(["w0 w1"]), id="max_tokens-client-side"
        ),
        pytest.param(
            {"documents": [LONG], "max_tokens_per_doc": 5, "max_chunks_per_doc": 2, "top_n": 1},
            body(["w0 w1 w2 w3 w4", "w5 w6 w7 w8 w9"]),
            id="max_chunks-client-side-no-top_n",
        ),
    ],
)
def test_body(overrides: dict[str, Any], expected: dict[str, Any]) -> None:
    wire = single(ADAPTER, fw(), request(**overrides))
    assert wire.body == expected
    assert check(wire.body) is None


@pytest.mark.parametrize(
    "name", ["FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY", "FIREWORKS_AI_TOKEN"]
)
def test_every_litellm_key_name(name: str) -> None:
    found = credentials_from({name: "k", "FIREWORKS_API_BASE": "http://f/v1"})["fireworks_ai"]
    assert found.api_key is not None and found.api_key.get_secret_value() == "k"
    assert found.api_base == "http://f/v1"


async def test_missing_key_names_every_variable() -> None:
    await check_missing_setting(ADAPTER, fw(key=None), request(), ADAPTER.key_env)


# --- the shared HTTP path over MockTransport ----------------------------------------------------------


async def test_parses_data_and_reports_tokens_not_search_units() -> None:
    mock = Mock(data((2, 0.9), (0, 0.3), (1, 0.1)))
    response, _ = await rerank(ADAPTER, fw(), request(documents=["a", "b", "c"], top_n=2), mock)
    (sent,) = mock.requests
    assert (str(sent.url), sent.headers["authorization"]) == (URL, f"Bearer {KEY}")
    assert response.results == [RankedDocument(2, 0.9), RankedDocument(0, 0.3)]
    assert response.usage == {"tokens": {"prompt_tokens": 40, "total_tokens": 40}}
    assert response.request_id == "fw-req"


async def test_results_key_and_completion_tokens_are_accepted() -> None:
    usage = {"prompt_tokens": 9, "completion_tokens": 0, "total_tokens": 9}
    response, _ = await rerank(
        ADAPTER, fw(), request(), Mock(data((1, 0.6), (0, 0.2), usage=usage, key="results"))
    )
    assert response.results == [RankedDocument(1, 0.6), RankedDocument(0, 0.2)]
    assert response.usage == {"tokens": usage}


FW_ERROR = {
    "error": {"object": "error", "type": "invalid_request_error", "message": "top_n must be positive"}
}


async def test_error_mapping_in_fireworks_envelope() -> None:
    ok = data((0, 0.5), (1, 0.2))
    await check_error_mapping(ADAPTER, fw(), request(), FW_ERROR, "top_n must be positive", ok)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"data": [{"index": 2, "relevance_score": 0.1}]}, id="index-past-end"),
        pytest.param({"object": "list"}, id="no-results"),
        pytest.param({"data": [{"index": 0, "score": 0.1}]}, id="wrong-score-name"),
    ],
)
async def test_wrong_shape_is_bad_response(payload: Any) -> None:
    exc, _ = await failure(ADAPTER, fw(), request(), Mock(httpx.Response(200, json=payload)))
    assert isinstance(exc, BadResponseError)


# --- against the local Fireworks server ---------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FireworksServer]:
    with fireworks_server(KEY) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        yield http


def reranker(client: httpx.AsyncClient, base: str, key: str = KEY) -> Reranker:
    transport = Dispatcher(client, RetryPolicy(max_attempts=1))
    return Reranker(transport, {"fireworks_ai": fw(base, key).credentials})


@pytest.mark.parametrize("model", ["qwen3-reranker-8b", "accounts/fireworks/models/qwen3-reranker-8b"])
async def test_wire_server_round_trip(server: FireworksServer, client: httpx.AsyncClient, model: str) -> None:
    docs: list[Document] = ["coffee beans", "solar power plants", {"title": "solar farms"}]
    response = await reranker(client, server.base_url).rerank(
        f"fireworks_ai/{model}", request(documents=docs, top_n=2)
    )
    (seen,) = server.requests
    assert (seen.path, seen.status) == ("/inference/v1/rerank", 200)
    assert seen.body["documents"] == ["coffee beans", "solar power plants", "title: solar farms"]
    assert response.results == [RankedDocument(1, 1.0), RankedDocument(2, 0.5)]
    assert response.usage == {"tokens": {"prompt_tokens": 14, "total_tokens": 14}}


async def test_wire_server_rejects_what_fireworks_rejects(
    server: FireworksServer, client: httpx.AsyncClient
) -> None:
    url, auth = f"{server.base_url}/inference/v1/rerank", {"authorization": f"Bearer {KEY}"}
    for bad, status in [
        ({**body(["a"]), "rank_fields": ["a"]}, 400),
        ({**body(["a"]), "top_k": 1}, 400),
        ({**body(["a"]), "documents": [{"text": "a"}]}, 400),
        ({**body(["a"]), "model": "qwen3-reranker-8b"}, 404),
    ]:
        answer = await client.post(url, json=bad, headers=auth)
        assert (answer.status_code, "message" in answer.json()["error"]) == (status, True), bad
    with pytest.raises(AuthenticationError) as denied:
        await reranker(client, server.base_url, key="wrong").rerank(
            "fireworks_ai/qwen3-reranker-8b", request()
        )
    assert denied.value.message == "The API key you provided is invalid."
    with pytest.raises(InvalidRequestError) as unknown:
        await reranker(client, server.base_url).rerank("fireworks_ai/other-reranker", request())
    assert unknown.value.status == 404


@pytest.mark.integration
def test_end_to_end_through_worker(redis_url: str, tmp_path: Path) -> None:
    with fireworks_server(KEY) as server:
        lines = e2e_lines("fireworks_ai/qwen3-reranker-8b")
        env = e2e_env(
            FIREWORKS_AI_API_KEY=KEY,
            FIREWORKS_API_KEY="",
            FIREWORKS_API_BASE=f"{server.base_url}/inference/v1",
        )
        results, errors = run_batch(redis_url, lines, tmp_path, env)
    assert errors == []
    assert [r["id"] for r in results] == [line["id"] for line in lines]
    for line, record in zip(lines, results, strict=True):
        assert record["results"] == expected_results(line, score)
        assert record.get("metadata", "absent") == line.get("metadata", "absent")
        assert set(record["usage"]) == {"tokens"}  # never search units
    assert {(r.path, r.status, r.headers["authorization"]) for r in server.requests} == {
        ("/inference/v1/rerank", 200, f"Bearer {KEY}")
    }
    bodies = {r.body["query"]: r.body for r in server.requests}
    assert bodies["solar power plants"]["top_n"] == 2
    assert all(
        b["model"] == "fireworks/qwen3-reranker-8b" and not b["return_documents"] for b in bodies.values()
    )
