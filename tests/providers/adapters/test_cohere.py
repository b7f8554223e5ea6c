"""Cohere adapter: URL rules and the version they select, bodies (v2 strings, v1 objects), Cohere's
usage; the local Cohere API refusing what Cohere refuses.  (What every provider does alike:
test_contract.py; the shared HTTP path itself: ../test_dispatcher.py.)"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from providers.adapters import cohere
from providers.dispatcher import Dispatcher
from providers.errors import AuthenticationError
from providers.retry import RetryPolicy
from providers.types import Document, RankedDocument
from tests.adapter_kit import FakeSleep, Mock, rerank, reranker_for, serving, single
from tests.cases.case import req
from tests.cases.cohere import BASE, KEY, V2_URL, dep, ok
from tests.servers.cohere import CohereServer

V1_BASE = "https://api.cohere.com/v1"
OBJECTS: list[Document] = [
    {"id": "a", "title": "Solar panels", "text": "Photovoltaic cells turn light into power."},
    {"id": "b", "title": "Coffee", "text": "Espresso is brewed under pressure.", "year": 2020},
]


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
    wire = single(cohere.ADAPTER, dep(base), req())
    assert (wire.method, wire.url) == ("POST", url)


def test_default_base_is_cohere_v2() -> None:
    assert single(cohere.ADAPTER, dep(base=None), req()).url == V2_URL
    assert cohere.ADAPTER.default_base == BASE


# --- bodies -----------------------------------------------------------------------------------------


HEAD = {"model": "rerank-v3.5", "query": "solar power"}
TEXTS = ["solar power plants", "coffee"]


@pytest.mark.parametrize(
    ("base", "overrides", "body"),
    [
        pytest.param(
            BASE,
            {"top_n": 1, "max_tokens_per_doc": 512, "return_documents": True},
            {**HEAD, "documents": TEXTS, "top_n": 1, "max_tokens_per_doc": 512},
            id="v2-top_n-max_tokens",
        ),
        pytest.param(
            BASE,
            {"documents": [{"tags": ["x", "y"], "n": 1.5, "ok": True}]},
            {**HEAD, "documents": ['tags: ["x","y"]\nn: 1.5\nok: true']},
            id="v2-non-string-values-as-json",
        ),
        pytest.param(
            V1_BASE, {}, {**HEAD, "documents": TEXTS, "return_documents": False}, id="v1-strings"
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
    wire = single(cohere.ADAPTER, dep(base), req(**overrides))
    assert wire.body == body
    assert wire.headers == {}


LONG = " ".join(f"w{i}" for i in range(10))


@pytest.mark.parametrize("base", [V1_BASE, "https://api.cohere.com/v1/rerank"])
def test_v1_truncates_client_side_for_max_tokens_per_doc(base: str) -> None:
    wire = single(cohere.ADAPTER, dep(base), req(documents=[LONG, {"text": LONG}], max_tokens_per_doc=3))
    assert wire.body == {**HEAD, "documents": ["w0 w1 w2", "w0 w1 w2"], "return_documents": False}


async def test_v1_base_sends_objects_and_rank_fields() -> None:
    mock = Mock(ok())
    await rerank(
        cohere.ADAPTER, dep("http://10.0.0.1:9/v1/"), req(documents=OBJECTS, rank_fields=["text"]), mock
    )
    (sent,) = mock.requests
    assert str(sent.url) == "http://10.0.0.1:9/v1/rerank"
    assert json.loads(sent.content)["documents"] == OBJECTS
    assert json.loads(sent.content)["rank_fields"] == ["text"]


async def test_parses_cohere_response_sorted_and_cut() -> None:
    mock = Mock(ok([(0, 0.2), (3, 0.95), (1, 0.6), (2, 0.6)]))
    docs: list[Document] = ["a", "b", "c", "d"]
    response, _ = await rerank(cohere.ADAPTER, dep(), req(documents=docs, top_n=3), mock)
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
    response, _ = await rerank(cohere.ADAPTER, dep(), req(), Mock(ok(meta=meta)))
    assert response.usage == usage


# --- against the local Cohere API -------------------------------------------------------------------


server = serving(lambda: CohereServer(KEY))


async def test_local_api_round_trip_v1(server: CohereServer, client: httpx.AsyncClient) -> None:
    reranker = reranker_for(client, dep(f"{server.base_url}/v1"))
    docs: list[Document] = [{"title": "coffee", "text": "solar"}, {"title": "solar power", "text": "x"}]
    response = await reranker.rerank("cohere/rerank-v3.5", req(documents=docs, rank_fields=["title"]))
    (seen,) = server.requests
    assert seen.path == "/v1/rerank"
    assert seen.body["documents"] == docs
    assert seen.body["rank_fields"] == ["title"]
    assert response.results == [RankedDocument(1, 1.0), RankedDocument(0, 0.0)]


async def test_local_api_refuses_what_cohere_refuses(server: CohereServer, client: httpx.AsyncClient) -> None:
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


async def test_local_api_v1_return_documents(server: CohereServer, client: httpx.AsyncClient) -> None:
    body = {"query": "solar", "documents": ["solar", {"text": "moon", "id": 3}], "return_documents": True}
    answer = await client.post(
        f"{server.base_url}/v1/rerank", json=body, headers={"authorization": f"Bearer {KEY}"}
    )
    assert answer.json()["results"] == [
        {"index": 0, "relevance_score": 1.0, "document": {"text": "solar"}},
        {"index": 1, "relevance_score": 0.0, "document": {"text": "moon", "id": 3}},
    ]
    assert answer.json()["meta"] == {"api_version": {"version": "1"}, "billed_units": {"search_units": 1}}


async def test_local_api_wrong_key_is_authentication_error(
    server: CohereServer, client: httpx.AsyncClient
) -> None:
    sleep = FakeSleep()
    dispatcher = Dispatcher(client, RetryPolicy(max_attempts=4, sleep=sleep))
    with pytest.raises(AuthenticationError) as raised:
        await dispatcher.rerank(cohere.ADAPTER, dep(server.base_url, key="wrong"), req())
    assert (raised.value.status, raised.value.message) == (401, "invalid api token")
    assert raised.value.request_id == server.requests[0].request_id
    assert (len(server.requests), sleep.waits) == (1, [])
