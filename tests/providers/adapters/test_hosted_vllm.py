"""Hosted vLLM adapter: URL rules and bodies, the shared HTTP path, errors, the wire server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers.adapters import hosted_vllm
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
from tests.servers.hosted_vllm import VllmServer, check, vllm_server
from tests.wire_server import score

ADAPTER = hosted_vllm.ADAPTER
BASE = "http://vllm:8000"
MODEL = "BAAI/bge-reranker-v2-m3"
TEXTS = ["solar power plants", "coffee"]


def vllm(base: str | None = BASE, key: str | None = None) -> Deployment:
    return deployment("hosted_vllm", MODEL, key=key, base=base)


def request(**overrides: Any) -> RerankRequest:
    return RerankRequest(**{"query": "solar power", "documents": list(TEXTS), **overrides})


def body(documents: list[str], **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "query": "solar power", "documents": documents, **extra}


def results(*pairs: tuple[int, float], usage: dict[str, Any] | None = None) -> httpx.Response:
    payload = {
        "id": "rerank-abc",
        "model": MODEL,
        "usage": usage if usage is not None else {"total_tokens": 12},
        "results": [{"index": i, "document": {"text": "t"}, "relevance_score": s} for i, s in pairs],
    }
    return httpx.Response(200, json=payload, headers={"x-request-id": "req-1"})


# --- URL and body (prepare: no I/O) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://vllm:8000", "http://vllm:8000/rerank"),
        ("http://vllm:8000/", "http://vllm:8000/rerank"),
        ("http://vllm:8000/v1", "http://vllm:8000/v1/rerank"),
        ("http://vllm:8000/v1/rerank", "http://vllm:8000/rerank"),
        ("http://vllm:8000/v1/rerank/", "http://vllm:8000/rerank"),
        ("http://vllm:8000/rerank", "http://vllm:8000/rerank"),
        ("http://vllm:8000/v2/rerank", "http://vllm:8000/v2/rerank"),
        ("https://gw.example.com/vllm/v1/rerank", "https://gw.example.com/vllm/rerank"),
    ],
)
def test_url(base: str, url: str) -> None:
    wire = single(ADAPTER, vllm(base), request())
    assert (wire.method, wire.url, wire.headers) == ("POST", url, {})


OBJECTS: list[Document] = [
    {"id": "a", "title": "Solar panels", "text": "Photovoltaic cells"},
    {"id": "b", "title": "Coffee", "text": "Espresso", "year": 2020},
]
LONG = " ".join(f"w{i}" for i in range(10))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({}, body(TEXTS), id="strings"),
        pytest.param({"top_n": 1, "return_documents": True}, body(TEXTS, top_n=1), id="top_n-native"),
        pytest.param(
            {"documents": OBJECTS, "rank_fields": ["title"]},
            body(["title: Solar panels", "title: Coffee"]),
            id="objects-rendered-with-rank_fields",
        ),
        pytest.param(
            {"documents": [LONG, "x"], "max_tokens_per_doc": 3},
            body(["w0 w1 w2", "x"]),
            id="max_tokens_per_doc-client-side",
        ),
        pytest.param(
            {"documents": [LONG, "x"], "max_tokens_per_doc": 6, "max_chunks_per_doc": 2, "top_n": 1},
            body(["w0 w1 w2 w3 w4 w5", "w6 w7 w8 w9", "x"]),
            id="max_chunks_per_doc-client-side-no-top_n",
        ),
    ],
)
def test_body(overrides: dict[str, Any], expected: dict[str, Any]) -> None:
    wire = single(ADAPTER, vllm(), request(**overrides))
    assert wire.body == expected
    assert check(wire.body) is None


def test_capabilities_and_env_names() -> None:
    caps = ADAPTER.capabilities(vllm())
    assert (caps.object_documents, caps.top_n, caps.max_tokens_per_doc, caps.max_chunks_per_doc) == (
        False,
        True,
        False,
        False,
    )
    assert caps.max_documents is None
    found = credentials_from({"HOSTED_VLLM_API_KEY": "k", "HOSTED_VLLM_API_BASE": "http://v:1"})[
        "hosted_vllm"
    ]
    assert (found.api_base, found.api_key is not None) == ("http://v:1", True)


async def test_no_base_is_configuration_error() -> None:
    await check_missing_setting(ADAPTER, vllm(base=None), request(), ("HOSTED_VLLM_API_BASE",))


# --- the shared HTTP path over MockTransport ----------------------------------------------------------


async def test_no_key_sends_no_authorization() -> None:
    mock = Mock(results((1, 0.9), (0, 0.1)))
    response, _ = await rerank(ADAPTER, vllm(), request(), mock)
    assert "authorization" not in mock.requests[0].headers
    assert response.results == [RankedDocument(1, 0.9), RankedDocument(0, 0.1)]
    assert (response.response_id, response.request_id) == ("rerank-abc", "req-1")
    assert response.usage == {"tokens": {"total_tokens": 12}}


async def test_key_sends_bearer_and_results_are_sorted_and_cut() -> None:
    mock = Mock(results((0, 0.2), (2, 0.8), (1, 0.5), usage={"prompt_tokens": 30, "total_tokens": 30}))
    response, _ = await rerank(
        ADAPTER, vllm(key="sk-vllm"), request(documents=["a", "b", "c"], top_n=2), mock
    )
    assert mock.requests[0].headers["authorization"] == "Bearer sk-vllm"
    assert mock.bodies()[0]["top_n"] == 2
    assert response.results == [RankedDocument(2, 0.8), RankedDocument(1, 0.5)]
    assert response.usage == {"tokens": {"prompt_tokens": 30, "total_tokens": 30}}


async def test_chunks_are_max_pooled() -> None:
    mock = Mock(results((1, 0.9), (2, 0.3), (0, 0.2)))
    req = request(documents=[LONG, "x"], max_tokens_per_doc=6, max_chunks_per_doc=2)
    response, _ = await rerank(ADAPTER, vllm(), req, mock)
    assert response.results == [RankedDocument(0, 0.9), RankedDocument(1, 0.3)]


VLLM_ERROR = {
    "error": {"message": "The model `x` does not exist.", "type": "NotFoundError", "param": None, "code": 404}
}


async def test_error_mapping_in_vllm_envelope() -> None:
    await check_error_mapping(
        ADAPTER, vllm(), request(top_n=1), VLLM_ERROR, "The model `x` does not exist.", results((0, 1.0))
    )


async def test_legacy_flat_envelope_message_is_extracted() -> None:
    flat = {"object": "error", "message": "top_n: Input should be a valid integer", "type": "BadRequestError"}
    exc, _ = await failure(ADAPTER, vllm(), request(), Mock(httpx.Response(400, json=flat)))
    assert isinstance(exc, InvalidRequestError) and exc.message == flat["message"]


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"id": "x", "results": [{"index": 2, "relevance_score": 0.1}]}, id="index-past-end"),
        pytest.param({"id": "x", "data": []}, id="no-results"),
        pytest.param([{"index": 0, "score": 0.1}], id="tei-shape"),
    ],
)
async def test_wrong_shape_is_bad_response(payload: Any) -> None:
    exc, _ = await failure(ADAPTER, vllm(), request(), Mock(httpx.Response(200, json=payload)))
    assert isinstance(exc, BadResponseError)


# --- against the local vLLM server --------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[VllmServer]:
    with vllm_server(MODEL) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        yield http


def reranker(client: httpx.AsyncClient, base: str, key: str | None = None) -> Reranker:
    transport = Dispatcher(client, RetryPolicy(max_attempts=1))
    return Reranker(transport, {"hosted_vllm": vllm(base, key).credentials})


@pytest.mark.parametrize("suffix", ["", "/v1", "/v1/rerank", "/v2/rerank"])
async def test_wire_server_round_trip_sends_nothing_vllm_ignores(
    server: VllmServer, client: httpx.AsyncClient, suffix: str
) -> None:
    docs: list[Document] = ["coffee beans", "solar power plants", {"title": "solar farms"}, LONG]
    req = request(documents=docs, top_n=2, rank_fields=["title"], max_tokens_per_doc=3, return_documents=True)
    response = await reranker(client, server.base_url + suffix).rerank(f"hosted_vllm/{MODEL}", req)
    (seen,) = server.requests
    assert seen.status == 200
    assert seen.body == body(
        ["coffee beans", "solar power plants", "title: solar farms", "w0 w1 w2"], top_n=2
    )
    assert server.ignored == []  # every field sent is one vLLM honours
    assert response.results == [RankedDocument(1, 1.0), RankedDocument(2, 0.5)]
    assert response.response_id == f"rerank-{seen.request_id}"
    assert response.usage == {"tokens": {"prompt_tokens": 19, "total_tokens": 19}}


async def test_wire_server_rejects_and_ignores_like_vllm(
    server: VllmServer, client: httpx.AsyncClient
) -> None:
    url = f"{server.base_url}/v1/rerank"
    answer = await client.post(url, json=body([], max_tokens_per_doc=5, rank_fields=["a"]))
    assert answer.status_code == 200
    assert server.ignored == ["max_tokens_per_doc", "rank_fields"]  # accepted, silently ignored
    answer = await client.post(url, json={"query": "q", "documents": [{"title": "a"}]})
    assert (answer.status_code, answer.json()["error"]["type"]) == (400, "BadRequestError")
    answer = await client.post(url, json={**body(["a"]), "model": "other"})
    assert (answer.status_code, answer.json()["error"]["message"]) == (
        404,
        "The model `other` does not exist.",
    )


async def test_wire_server_wrong_model_and_key(client: httpx.AsyncClient) -> None:
    with vllm_server("other/model", api_key="sk-vllm") as server:
        with pytest.raises(AuthenticationError) as denied:
            await reranker(client, server.base_url).rerank(f"hosted_vllm/{MODEL}", request())
        assert (denied.value.status, denied.value.message) == (401, "Unauthorized")
        with pytest.raises(InvalidRequestError) as missing:
            await reranker(client, server.base_url, key="sk-vllm").rerank(f"hosted_vllm/{MODEL}", request())
        assert (missing.value.status, missing.value.message) == (404, f"The model `{MODEL}` does not exist.")


@pytest.mark.integration
def test_end_to_end_through_worker(redis_url: str, tmp_path: Path) -> None:
    with vllm_server(MODEL, api_key="sk-e2e") as server:
        lines = e2e_lines(f"hosted_vllm/{MODEL}")
        lines.append(
            {"id": "long", "model": f"hosted_vllm/{MODEL}", "query": "alpha omega", "max_tokens_per_doc": 2,
             "documents": ["alpha beta gamma omega", {"text": "omega alpha"}]}
        )  # fmt: skip
        env = e2e_env(HOSTED_VLLM_API_BASE=f"{server.base_url}/v1", HOSTED_VLLM_API_KEY="sk-e2e")
        results, errors = run_batch(redis_url, lines, tmp_path, env)
    assert errors == []
    assert [r["id"] for r in results] == [line["id"] for line in lines]
    for line, record in zip(lines[:-1], results, strict=False):
        assert record["results"] == expected_results(line, score)
        assert record.get("metadata", "absent") == line.get("metadata", "absent")
        assert record["response_id"].startswith("rerank-")
        assert record["usage"]["tokens"]["total_tokens"] > 0
    assert [(r["index"], r["relevance_score"]) for r in results[-1]["results"]] == [(1, 1.0), (0, 0.5)]
    assert {(r.path, r.status, r.headers["authorization"]) for r in server.requests} == {
        ("/v1/rerank", 200, "Bearer sk-e2e")
    }
    assert server.ignored == []
    bodies = {r.body["query"]: r.body for r in server.requests}
    assert bodies["alpha omega"]["documents"] == ["alpha beta", "omega alpha"]
    assert bodies["solar power plants"]["top_n"] == 2
