"""Fireworks AI adapter: URL rules, the forced ``fireworks/`` model, bodies, token usage; the local
server refusing what Fireworks refuses.  (What every provider does alike: test_contract.py.)"""

from __future__ import annotations

import httpx
import pytest

from providers.adapters.fireworks_ai import ADAPTER
from providers.errors import AuthenticationError, InvalidRequestError
from providers.types import Document, RankedDocument
from tests.adapter_kit import Mock, rerank, reranker_for, serving, single
from tests.cases.case import req
from tests.cases.fireworks_ai import KEY, URL, body, data, dep
from tests.servers.fireworks_ai import FireworksServer

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
    wire = single(ADAPTER, dep(base), req())
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
    assert single(ADAPTER, dep(model=wire_model), req()).body["model"] == sent


# --- the shared HTTP path over MockTransport ----------------------------------------------------------


async def test_parses_data_and_reports_tokens_not_search_units() -> None:
    mock = Mock(data((2, 0.9), (0, 0.3), (1, 0.1)))
    response, _ = await rerank(ADAPTER, dep(), req(documents=["a", "b", "c"], top_n=2), mock)
    (sent,) = mock.requests
    assert (str(sent.url), sent.headers["authorization"]) == (URL, f"Bearer {KEY}")
    assert response.results == [RankedDocument(2, 0.9), RankedDocument(0, 0.3)]
    assert response.usage == {"tokens": {"prompt_tokens": 40, "total_tokens": 40}}
    assert response.request_id == "fw-req"


async def test_results_key_and_completion_tokens_are_accepted() -> None:
    usage = {"prompt_tokens": 9, "completion_tokens": 0, "total_tokens": 9}
    response, _ = await rerank(
        ADAPTER, dep(), req(), Mock(data((1, 0.6), (0, 0.2), usage=usage, key="results"))
    )
    assert response.results == [RankedDocument(1, 0.6), RankedDocument(0, 0.2)]
    assert response.usage == {"tokens": usage}


# --- against the local Fireworks server ---------------------------------------------------------------


server = serving(lambda: FireworksServer(KEY))


@pytest.mark.parametrize("model", ["qwen3-reranker-8b", "accounts/fireworks/models/qwen3-reranker-8b"])
async def test_wire_server_round_trip(server: FireworksServer, client: httpx.AsyncClient, model: str) -> None:
    docs: list[Document] = ["coffee beans", "solar power plants", {"title": "solar farms"}]
    response = await reranker_for(client, dep(server.base_url)).rerank(
        f"fireworks_ai/{model}", req(documents=docs, top_n=2)
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
        await reranker_for(client, dep(server.base_url, "wrong")).rerank(
            "fireworks_ai/qwen3-reranker-8b", req()
        )
    assert denied.value.message == "The API key you provided is invalid."
    with pytest.raises(InvalidRequestError) as unknown:
        await reranker_for(client, dep(server.base_url)).rerank("fireworks_ai/other-reranker", req())
    assert unknown.value.status == 404
