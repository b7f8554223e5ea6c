"""Hugging Face TEI adapter: URL and body, splitting to the client batch size, parsing a bare list,
its 413; the local TEI server refusing what TEI refuses.  (What every provider does alike:
test_contract.py.)"""

from __future__ import annotations

import httpx
import pytest

from providers.adapters.huggingface import ADAPTER
from providers.errors import AuthenticationError, InvalidRequestError
from providers.types import Document, RankedDocument
from tests.adapter_kit import Mock, failure, rerank, reranker_for, serving, single
from tests.cases.case import req
from tests.cases.huggingface import MODEL, dep, ranks
from tests.servers.huggingface import TeiServer

# --- URL and body (prepare: no I/O) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://tei:8080", "http://tei:8080/rerank"),
        ("http://tei:8080/", "http://tei:8080/rerank"),
        ("http://tei:8080/rerank", "http://tei:8080/rerank"),
        ("https://xyz.endpoints.huggingface.cloud", "https://xyz.endpoints.huggingface.cloud/rerank"),
        ("https://gw.example.com/tei/", "https://gw.example.com/tei/rerank"),
    ],
)
def test_url(base: str, url: str) -> None:
    wire = single(ADAPTER, dep(base), req())
    assert (wire.method, wire.url, wire.headers) == ("POST", url, {})


# --- the shared HTTP path over MockTransport ----------------------------------------------------------


async def test_bare_list_parsed_top_n_cut_client_side_usage_from_the_header() -> None:
    mock = Mock(ranks((1, 0.97), (2, 0.4), (0, 0.01)))
    response, _ = await rerank(ADAPTER, dep(), req(documents=["a", "b", "c"], top_n=2), mock)
    assert "top_n" not in mock.bodies()[0]
    assert response.results == [RankedDocument(1, 0.97), RankedDocument(2, 0.4)]
    assert (response.usage, response.response_id) == ({"tokens": {"compute_tokens": 9}}, None)


@pytest.mark.parametrize("header", [None, "", "many", "-3", "9.5"])
async def test_no_usable_token_header_is_no_usage(header: str | None) -> None:
    headers = {} if header is None else {"x-compute-tokens": header}
    answer = httpx.Response(200, json=[{"index": 0, "score": 0.5}], headers=headers)
    response, _ = await rerank(ADAPTER, dep(), req(documents=["a"]), Mock(answer))
    assert response.usage is None  # nothing fabricated


async def test_split_requests_merge_onto_the_callers_indices() -> None:
    docs: list[Document] = [f"doc {i}" for i in range(40)]
    mock = Mock(ranks(*[(i, 0.1) for i in range(32)]), ranks((7, 0.9), *[(i, 0.0) for i in range(7)]))
    response, _ = await rerank(ADAPTER, dep(), req(documents=docs, top_n=2), mock)
    assert [len(b["texts"]) for b in mock.bodies()] == [32, 8]
    assert response.results == [RankedDocument(39, 0.9), RankedDocument(0, 0.1)]
    assert response.requests == 2


async def test_batch_too_large_413_is_invalid_request() -> None:
    envelope = {"error": "batch size 40 > maximum allowed batch size 32", "error_type": "validation"}
    exc, _ = await failure(ADAPTER, dep(), req(), Mock(httpx.Response(413, json=envelope)))
    assert isinstance(exc, InvalidRequestError)
    assert (exc.status, exc.message) == (413, envelope["error"])


# --- against the local TEI server ---------------------------------------------------------------------


server = serving(lambda: TeiServer(max_client_batch_size=4))


async def test_wire_server_rejects_what_tei_rejects(server: TeiServer, client: httpx.AsyncClient) -> None:
    url = f"{server.base_url}/rerank"
    answer = await client.post(url, json={"query": "q", "texts": [{"text": "a"}]})
    assert (answer.status_code, "texts[0]" in answer.json()) == (422, True)
    answer = await client.post(url, json={"query": "q", "texts": []})
    assert (answer.status_code, answer.json()["error_type"]) == (400, "empty")
    answer = await client.post(url, json={"query": "q", "texts": ["a"] * 5})
    assert answer.json() == {
        "error": "batch size 5 > maximum allowed batch size 4",
        "error_type": "validation",
    }
    long = " ".join(f"w{i}" for i in range(600))
    assert (await client.post(url, json={"query": "q", "texts": [long]})).status_code == 413
    answer = await client.post(url, json={"query": "q", "texts": [long], "truncate": True, "top_n": 0})
    assert answer.status_code == 200  # top_n is not a TEI field: ignored
    answer = await client.post(
        url, json={"query": "a", "texts": ["b", "a"], "raw_scores": True, "return_text": True}
    )
    assert [(r["index"], r["text"]) for r in answer.json()] == [(1, "a"), (0, "b")]
    assert answer.json()[0]["score"] > 5 > 0 > answer.json()[1]["score"]  # raw logits


async def test_wire_server_splits_and_key(client: httpx.AsyncClient) -> None:
    with TeiServer(api_key="hf_key", max_client_batch_size=32) as server:
        docs: list[Document] = [*(f"filler {i}" for i in range(40)), "solar power"]
        response = await reranker_for(client, dep(server.base_url, "hf_key")).rerank(
            f"huggingface/{MODEL}", req(documents=docs, top_n=1)
        )
        assert [len(r.body["texts"]) for r in server.requests] == [32, 9]
        assert response.results == [RankedDocument(40, 1.0)]
        with pytest.raises(AuthenticationError) as denied:
            await reranker_for(client, dep(server.base_url)).rerank(f"huggingface/{MODEL}", req())
        assert denied.value.status == 401
