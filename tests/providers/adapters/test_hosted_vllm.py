"""Hosted vLLM adapter: URL rules and bodies, parsing, its legacy envelope; the local server refusing
and ignoring what vLLM does.  (What every provider does alike: test_contract.py.)"""

from __future__ import annotations

import httpx
import pytest

from providers.adapters.hosted_vllm import ADAPTER
from providers.errors import AuthenticationError, InvalidRequestError
from providers.types import Document, RankedDocument
from tests.adapter_kit import Mock, failure, rerank, reranker_for, serving, single
from tests.cases.case import req
from tests.cases.hosted_vllm import MODEL, body, dep, results
from tests.servers.hosted_vllm import VllmServer

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
    wire = single(ADAPTER, dep(base), req())
    assert (wire.method, wire.url, wire.headers) == ("POST", url, {})


LONG = " ".join(f"w{i}" for i in range(10))


# --- the shared HTTP path over MockTransport ----------------------------------------------------------


async def test_results_ids_and_usage_are_parsed() -> None:
    mock = Mock(results((1, 0.9), (0, 0.1)))
    response, _ = await rerank(ADAPTER, dep(), req(), mock)
    assert response.results == [RankedDocument(1, 0.9), RankedDocument(0, 0.1)]
    assert (response.response_id, response.request_id) == ("rerank-abc", "req-1")
    assert response.usage == {"tokens": {"total_tokens": 12}}


async def test_top_n_is_sent_and_results_are_sorted_and_cut() -> None:
    mock = Mock(results((0, 0.2), (2, 0.8), (1, 0.5), usage={"prompt_tokens": 30, "total_tokens": 30}))
    response, _ = await rerank(ADAPTER, dep(), req(documents=["a", "b", "c"], top_n=2), mock)
    assert mock.bodies()[0]["top_n"] == 2
    assert response.results == [RankedDocument(2, 0.8), RankedDocument(1, 0.5)]
    assert response.usage == {"tokens": {"prompt_tokens": 30, "total_tokens": 30}}


async def test_chunks_are_max_pooled() -> None:
    mock = Mock(results((1, 0.9), (2, 0.3), (0, 0.2)))
    line_request = req(documents=[LONG, "x"], max_tokens_per_doc=6, max_chunks_per_doc=2)
    response, _ = await rerank(ADAPTER, dep(), line_request, mock)
    assert response.results == [RankedDocument(0, 0.9), RankedDocument(1, 0.3)]


async def test_legacy_flat_envelope_message_is_extracted() -> None:
    flat = {"object": "error", "message": "top_n: Input should be a valid integer", "type": "BadRequestError"}
    exc, _ = await failure(ADAPTER, dep(), req(), Mock(httpx.Response(400, json=flat)))
    assert isinstance(exc, InvalidRequestError) and exc.message == flat["message"]


# --- against the local vLLM server --------------------------------------------------------------------


server = serving(lambda: VllmServer(MODEL))


@pytest.mark.parametrize("suffix", ["", "/v1", "/v1/rerank", "/v2/rerank"])
async def test_wire_server_round_trip_sends_nothing_vllm_ignores(
    server: VllmServer, client: httpx.AsyncClient, suffix: str
) -> None:
    docs: list[Document] = ["coffee beans", "solar power plants", {"title": "solar farms"}, LONG]
    line_request = req(
        documents=docs, top_n=2, rank_fields=["title"], max_tokens_per_doc=3, return_documents=True
    )
    response = await reranker_for(client, dep(server.base_url + suffix)).rerank(
        f"hosted_vllm/{MODEL}", line_request
    )
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
    with VllmServer("other/model", api_key="sk-vllm") as server:
        with pytest.raises(AuthenticationError) as denied:
            await reranker_for(client, dep(server.base_url)).rerank(f"hosted_vllm/{MODEL}", req())
        assert (denied.value.status, denied.value.message) == (401, "Unauthorized")
        with pytest.raises(InvalidRequestError) as missing:
            await reranker_for(client, dep(server.base_url, "sk-vllm")).rerank(f"hosted_vllm/{MODEL}", req())
        assert (missing.value.status, missing.value.message) == (404, f"The model `{MODEL}` does not exist.")
