"""Voyage AI adapter: URL rules, ``top_k``, the 1,000-document limit, token usage, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers.adapters import voyage
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
    wires,
)
from tests.e2e import run_batch
from tests.servers.voyage import VoyageServer, check, voyage_server
from tests.wire_server import score

ADAPTER = voyage.ADAPTER
KEY = "pa-test"
MODEL = "rerank-2.5"
URL = "https://api.voyageai.com/v1/rerank"
TEXTS = ["solar power plants", "coffee"]


def vo(base: str | None = None, key: str | None = KEY) -> Deployment:
    return deployment("voyage", MODEL, key=key, base=base)


def request(**overrides: Any) -> RerankRequest:
    return RerankRequest(**{"query": "solar power", "documents": list(TEXTS), **overrides})


def body(documents: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "query": "solar power",
        "documents": documents,
        "return_documents": False,
        **extra,
    }


def data(*pairs: tuple[int, float], usage: Any = None) -> httpx.Response:
    payload = {
        "object": "list",
        "data": [{"relevance_score": s, "index": i} for i, s in pairs],
        "model": MODEL,
        "usage": usage if usage is not None else {"total_tokens": 33},
    }
    return httpx.Response(200, json=payload)


# --- URL and body (prepare: no I/O) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "key", "url"),
    [
        (None, KEY, URL),
        (None, "al-atlas-key", "https://ai.mongodb.com/v1/rerank"),
        ("https://api.voyageai.com", KEY, URL),
        ("https://api.voyageai.com/v1", KEY, URL),
        ("https://api.voyageai.com/v1/", KEY, URL),
        ("https://api.voyageai.com/v1/rerank", KEY, URL),
        ("http://gw:1/voyage", "al-atlas-key", "http://gw:1/voyage/v1/rerank"),
    ],
)
def test_url(base: str | None, key: str, url: str) -> None:
    wire = single(ADAPTER, vo(base, key), request())
    assert (wire.method, wire.url, wire.headers) == ("POST", url, {})


OBJECTS: list[Document] = [
    {"id": "a", "title": "Solar panels", "text": "Photovoltaic cells"},
    {"id": "b", "title": "Coffee", "text": "Espresso", "year": 2020},
]
LONG = " ".join(f"w{i}" for i in range(10))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({}, body(TEXTS), id="strings-no-truncation-field"),
        pytest.param({"top_n": 1, "return_documents": True}, body(TEXTS, top_k=1), id="top_n-as-top_k"),
        pytest.param(
            {"documents": OBJECTS},
            body(
                ["title: Solar panels\ntext: Photovoltaic cells", "title: Coffee\ntext: Espresso\nyear: 2020"]
            ),
            id="objects-rendered",
        ),
        pytest.param(
            {"documents": [LONG], "max_tokens_per_doc": 3}, body(["w0 w1 w2"]), id="max_tokens-client-side"
        ),
        pytest.param(
            {"documents": [LONG, "x"], "max_tokens_per_doc": 5, "max_chunks_per_doc": 1, "top_n": 1},
            body(["w0 w1 w2 w3 w4", "x"]),
            id="max_chunks-client-side-no-top_k",
        ),
    ],
)
def test_body(overrides: dict[str, Any], expected: dict[str, Any]) -> None:
    wire = single(ADAPTER, vo(), request(**overrides))
    assert wire.body == expected
    assert check(wire.body) is None


def test_more_than_1000_documents_are_split() -> None:
    docs: list[Document] = [f"doc {i}" for i in range(2001)]
    parts = wires(ADAPTER, vo(), request(documents=docs, top_n=10))
    assert [len(w.body["documents"]) for w in parts] == [1000, 1000, 1]
    assert all(w.body["top_k"] == 10 for w in parts)
    assert all(check(w.body) is None for w in parts)


@pytest.mark.parametrize("name", ["VOYAGE_API_KEY", "VOYAGE_AI_API_KEY", "VOYAGE_AI_TOKEN"])
def test_every_litellm_key_name(name: str) -> None:
    found = credentials_from({name: "k", "VOYAGE_API_BASE": "http://v"})["voyage"]
    assert found.api_key is not None and found.api_key.get_secret_value() == "k"
    assert found.api_base == "http://v"


async def test_missing_key_is_configuration_error() -> None:
    await check_missing_setting(ADAPTER, vo(key=None), request(), ("VOYAGE_API_KEY",))


# --- the shared HTTP path over MockTransport ----------------------------------------------------------


async def test_parses_data_and_reports_total_tokens() -> None:
    mock = Mock(data((1, 0.8), (2, 0.5), (0, 0.1)))
    response, _ = await rerank(ADAPTER, vo(), request(documents=["a", "b", "c"], top_n=2), mock)
    (sent,) = mock.requests
    assert (str(sent.url), sent.headers["authorization"]) == (URL, f"Bearer {KEY}")
    assert response.results == [RankedDocument(1, 0.8), RankedDocument(2, 0.5)]
    assert response.usage == {"tokens": {"total_tokens": 33}}


async def test_split_requests_merge_and_usage_adds_up() -> None:
    docs: list[Document] = [f"doc {i}" for i in range(1003)]
    mock = Mock(data((5, 0.4), (0, 0.2)), data((2, 0.9), usage={"total_tokens": 7}))
    response, _ = await rerank(ADAPTER, vo(), request(documents=docs, top_n=2), mock)
    assert [len(b["documents"]) for b in mock.bodies()] == [1000, 3]
    assert response.results == [RankedDocument(1002, 0.9), RankedDocument(5, 0.4)]
    assert (response.requests, response.usage) == (2, {"tokens": {"total_tokens": 40}})


async def test_error_mapping_in_voyage_envelope() -> None:
    envelope = {"detail": "The number of documents must be between 1 and 1000, got 1001."}
    await check_error_mapping(ADAPTER, vo(), request(top_n=1), envelope, envelope["detail"], data((0, 0.5)))


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"data": [{"index": 2, "relevance_score": 0.1}]}, id="index-past-end"),
        pytest.param({"results": [{"index": 0, "relevance_score": 0.1}]}, id="cohere-key"),
        pytest.param({"data": [{"index": 0}]}, id="no-score"),
    ],
)
async def test_wrong_shape_is_bad_response(payload: Any) -> None:
    exc, _ = await failure(ADAPTER, vo(), request(), Mock(httpx.Response(200, json=payload)))
    assert isinstance(exc, BadResponseError)


# --- against the local Voyage server ------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[VoyageServer]:
    with voyage_server(KEY) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        yield http


def reranker(client: httpx.AsyncClient, base: str, key: str = KEY) -> Reranker:
    transport = Dispatcher(client, RetryPolicy(max_attempts=1))
    return Reranker(transport, {"voyage": vo(base, key).credentials})


async def test_wire_server_round_trip(server: VoyageServer, client: httpx.AsyncClient) -> None:
    docs: list[Document] = ["coffee beans", "solar power plants", {"title": "solar farms"}]
    response = await reranker(client, server.base_url).rerank(
        f"voyage/{MODEL}", request(documents=docs, top_n=2)
    )
    (seen,) = server.requests
    assert (seen.path, seen.status) == ("/v1/rerank", 200)
    assert seen.body == body(["coffee beans", "solar power plants", "title: solar farms"], top_k=2)
    assert response.results == [RankedDocument(1, 1.0), RankedDocument(2, 0.5)]
    assert response.usage == {"tokens": {"total_tokens": 14}}


async def test_wire_server_rejects_what_voyage_rejects(
    server: VoyageServer, client: httpx.AsyncClient
) -> None:
    url, auth = f"{server.base_url}/v1/rerank", {"authorization": f"Bearer {KEY}"}
    for bad, named in [
        ({**body(["a"]), "top_n": 1}, "top_n"),
        ({**body(["a"]), "documents": ["a"] * 1001}, "1000"),
        ({**body(["a"]), "documents": [{"text": "a"}]}, "strings"),
        ({**body(["a"]), "model": "rerank-9"}, "rerank-9"),
    ]:
        answer = await client.post(url, json=bad, headers=auth)
        assert (answer.status_code, named in answer.json()["detail"]) == (400, True), bad
    long = " ".join(f"w{i}" for i in range(9000))
    assert (
        await client.post(url, json={**body([long]), "truncation": False}, headers=auth)
    ).status_code == 400
    assert (
        await client.post(url, json=body([long]), headers=auth)
    ).status_code == 200  # truncation defaults on
    with pytest.raises(AuthenticationError) as denied:
        await reranker(client, server.base_url, key="pa-wrong").rerank(f"voyage/{MODEL}", request())
    assert denied.value.message == "Provided API key is invalid."
    with pytest.raises(InvalidRequestError):
        await reranker(client, server.base_url).rerank("voyage/rerank-9", request())


@pytest.mark.integration
def test_end_to_end_through_worker(redis_url: str, tmp_path: Path) -> None:
    with voyage_server(KEY) as server:
        lines = e2e_lines(f"voyage/{MODEL}")
        env = e2e_env(VOYAGE_API_KEY=KEY, VOYAGE_API_BASE=f"{server.base_url}/v1")
        results, errors = run_batch(redis_url, lines, tmp_path, env)
    assert errors == []
    assert [r["id"] for r in results] == [line["id"] for line in lines]
    for line, record in zip(lines, results, strict=True):
        assert record["results"] == expected_results(line, score)
        assert record.get("metadata", "absent") == line.get("metadata", "absent")
        assert record["usage"]["tokens"]["total_tokens"] > 0
    assert {(r.path, r.status) for r in server.requests} == {("/v1/rerank", 200)}
    bodies = {r.body["query"]: r.body for r in server.requests}
    assert bodies["solar power plants"]["top_k"] == 2
    assert all("top_n" not in b and "truncation" not in b for b in bodies.values())
