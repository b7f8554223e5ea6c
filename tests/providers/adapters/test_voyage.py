"""Voyage AI adapter: URL rules, ``top_k``, the 1,000-document limit, token usage; the local server
refusing what Voyage refuses.  (What every provider does alike: test_contract.py.)"""

from __future__ import annotations

import httpx
import pytest

from providers.adapters.voyage import ADAPTER
from providers.errors import AuthenticationError, InvalidRequestError
from providers.types import Document, RankedDocument
from tests.adapter_kit import Mock, rerank, reranker_for, serving, single, wires
from tests.cases.case import req
from tests.cases.voyage import KEY, MODEL, URL, body, data, dep
from tests.servers.voyage import VoyageServer, check

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
    wire = single(ADAPTER, dep(base, key), req())
    assert (wire.method, wire.url, wire.headers) == ("POST", url, {})


def test_split_parts_are_bodies_voyage_accepts() -> None:
    parts = wires(ADAPTER, dep(), req(documents=[f"doc {i}" for i in range(2001)], top_n=10))
    assert [(len(w.body["documents"]), w.body["top_k"], check(w.body)) for w in parts] == [
        (1000, 10, None), (1000, 10, None), (1, 10, None),
    ]  # fmt: skip


# --- the shared HTTP path over MockTransport ----------------------------------------------------------


async def test_parses_data_and_reports_total_tokens() -> None:
    mock = Mock(data((1, 0.8), (2, 0.5), (0, 0.1)))
    response, _ = await rerank(ADAPTER, dep(), req(documents=["a", "b", "c"], top_n=2), mock)
    (sent,) = mock.requests
    assert (str(sent.url), sent.headers["authorization"]) == (URL, f"Bearer {KEY}")
    assert response.results == [RankedDocument(1, 0.8), RankedDocument(2, 0.5)]
    assert response.usage == {"tokens": {"total_tokens": 33}}


async def test_split_requests_merge_and_usage_adds_up() -> None:
    docs: list[Document] = [f"doc {i}" for i in range(1003)]
    mock = Mock(data((5, 0.4), (0, 0.2)), data((2, 0.9), usage={"total_tokens": 7}))
    response, _ = await rerank(ADAPTER, dep(), req(documents=docs, top_n=2), mock)
    assert [len(b["documents"]) for b in mock.bodies()] == [1000, 3]
    assert response.results == [RankedDocument(1002, 0.9), RankedDocument(5, 0.4)]
    assert (response.requests, response.usage) == (2, {"tokens": {"total_tokens": 40}})


# --- against the local Voyage server ------------------------------------------------------------------


server = serving(lambda: VoyageServer(KEY))


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
        await reranker_for(client, dep(server.base_url, "pa-wrong")).rerank(f"voyage/{MODEL}", req())
    assert denied.value.message == "Provided API key is invalid."
    with pytest.raises(InvalidRequestError):
        await reranker_for(client, dep(server.base_url)).rerank("voyage/rerank-9", req())
