"""infinity adapter: URLs, bodies, splitting, parsing and its other error envelopes; the local
Infinity server validating as Infinity does.  (What every provider does alike: test_contract.py.)"""

from __future__ import annotations

import httpx
import pytest

from providers.adapters.infinity import ADAPTER, MAX_DOCUMENTS
from providers.errors import AuthenticationError, InvalidRequestError
from providers.types import Document, RankedDocument
from tests.adapter_kit import Mock, failure, rerank, single
from tests.cases.case import QUERY, req
from tests.cases.infinity import BASE, WIRE_MODEL, dep, ok
from tests.servers.infinity import InfinityServer

HEAD = {"model": WIRE_MODEL, "query": QUERY}

# --- what goes on the wire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url"),
    [
        (BASE, f"{BASE}/rerank"),
        (f"{BASE}/", f"{BASE}/rerank"),
        (f"{BASE}/v1", f"{BASE}/v1/rerank"),
        (f"{BASE}/rerank", f"{BASE}/rerank"),
        (f"{BASE}/v1/rerank/", f"{BASE}/v1/rerank"),
    ],
)
def test_url_is_base_plus_rerank(base: str, url: str) -> None:
    wire = single(ADAPTER, dep(base), req())
    assert (wire.method, wire.url) == ("POST", url)


# --- what comes back --------------------------------------------------------------------------------


async def test_split_results_map_back_sorted_with_usage_summed() -> None:
    documents: list[Document] = [f"doc {i}" for i in range(MAX_DOCUMENTS + 2)]
    mock = Mock(
        ok([(3, 0.7), (0, 0.1)], {"prompt_tokens": 100, "total_tokens": 100}),
        ok([(1, 0.8), (0, 0.6)], {"prompt_tokens": 4, "total_tokens": 4}),
    )
    response, _ = await rerank(ADAPTER, dep(), req(documents=documents, top_n=3), mock)
    assert response.results == [
        RankedDocument(MAX_DOCUMENTS + 1, 0.8),
        RankedDocument(3, 0.7),
        RankedDocument(MAX_DOCUMENTS, 0.6),
    ]
    assert response.usage == {"tokens": {"prompt_tokens": 104, "total_tokens": 104}}
    assert (response.response_id, response.requests) == ("infinity-1", 2)


async def test_validation_and_auth_failures() -> None:
    detail = {"detail": [{"type": "string_type", "loc": ["body", "documents", 0],
                          "msg": "Input should be a valid string", "input": {}}]}  # fmt: skip
    exc, _ = await failure(ADAPTER, dep(), req(), Mock(httpx.Response(422, json=detail)))
    assert isinstance(exc, InvalidRequestError) and exc.message == "Input should be a valid string"
    exc, _ = await failure(ADAPTER, dep(), req(), Mock(httpx.Response(401, json={"detail": "Unauthorized"})))
    assert isinstance(exc, AuthenticationError) and exc.message == "Unauthorized"


# --- against the local Infinity server --------------------------------------------------------------


async def test_local_server_validates_like_infinity(client: httpx.AsyncClient) -> None:
    with InfinityServer("inf-key", [WIRE_MODEL]) as server:
        url, auth = f"{server.base_url}/rerank", {"authorization": "Bearer inf-key"}
        good = {**HEAD, "documents": ["a"]}
        objects = await client.post(url, json={**good, "documents": [{"text": "a"}]}, headers=auth)
        extra = await client.post(url, json={**good, "rank_fields": ["text"]}, headers=auth)
        model = await client.post(url, json={**good, "model": "other"}, headers=auth)
        denied = await client.post(url, json=good, headers={"authorization": "Bearer nope"})
    assert (objects.status_code, objects.json()["detail"][0]["loc"]) == (422, ["body", "documents", 0])
    assert extra.status_code == 200  # pydantic ignores extra fields: LiteLLM's rank_fields are lost silently
    assert (model.status_code, model.json()["error"]["code"]) == (400, 400)
    assert (denied.status_code, denied.json(), denied.headers["www-authenticate"]) == (
        401,
        {"detail": "Unauthorized"},
        "Bearer",
    )
