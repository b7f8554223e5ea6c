"""DeepInfra adapter: the inference URL, bodies, input-order scores, its other envelopes; the local
server refusing what DeepInfra refuses.  (What every provider does alike: test_contract.py.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from providers.adapters.deepinfra import ADAPTER
from providers.errors import AuthenticationError, InvalidRequestError
from providers.types import RankedDocument
from tests.adapter_kit import Mock, failure, rerank, reranker_for, serving, single
from tests.cases.case import req
from tests.cases.deepinfra import KEY, MODEL, URL, body, dep, scores
from tests.servers.deepinfra import DeepInfraServer

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
    wire = single(ADAPTER, dep(base), req())
    assert (wire.method, wire.url, wire.headers) == ("POST", url, {})


LONG = " ".join(f"w{i}" for i in range(10))


# --- the shared HTTP path over MockTransport ----------------------------------------------------------


async def test_input_order_scores_are_mapped_sorted_and_cut() -> None:
    mock = Mock(scores(0.1, 0.9, 0.4, 0.9))
    response, _ = await rerank(ADAPTER, dep(), req(documents=["a", "b", "c", "d"], top_n=3), mock)
    (sent,) = mock.requests
    assert (str(sent.url), sent.headers["authorization"]) == (URL, f"Bearer {KEY}")
    assert response.results == [RankedDocument(1, 0.9), RankedDocument(3, 0.9), RankedDocument(2, 0.4)]
    assert (response.response_id, response.usage) == ("di-req-1", {"tokens": {"input_tokens": 21}})


async def test_without_top_n_every_document_comes_back() -> None:
    response, _ = await rerank(ADAPTER, dep(), req(), Mock(scores(0.2, 0.7)))
    assert response.results == [RankedDocument(1, 0.7), RankedDocument(0, 0.2)]


async def test_chunk_scores_are_max_pooled() -> None:
    line_request = req(documents=[LONG, "x"], max_tokens_per_doc=4, max_chunks_per_doc=2)
    response, _ = await rerank(ADAPTER, dep(), line_request, Mock(scores(0.1, 0.8, 0.5)))
    assert response.results == [RankedDocument(0, 0.8), RankedDocument(1, 0.5)]


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
    exc, _ = await failure(ADAPTER, dep(), req(), Mock(httpx.Response(422, json=envelope)))
    assert isinstance(exc, InvalidRequestError) and exc.message == message


# --- against the local DeepInfra server ---------------------------------------------------------------


server = serving(lambda: DeepInfraServer(KEY, frozenset({MODEL})))


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
        await reranker_for(client, dep(f"{server.base_url}/v1", "wrong")).rerank(f"deepinfra/{MODEL}", req())
    assert denied.value.message == "Authentication failed: invalid API key"
