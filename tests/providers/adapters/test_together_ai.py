"""together_ai adapter: URLs, bodies and parsing; the local Together API refuses what Together refuses.
(What every provider does alike: test_contract.py.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from providers.adapters.together_ai import ADAPTER, DEFAULT_BASE
from providers.types import RankedDocument
from tests.adapter_kit import Mock, rerank, reranker_for, serving, single
from tests.cases.case import QUERY, req
from tests.cases.together_ai import KEY, WIRE_MODEL, dep, ok
from tests.servers.together_ai import TogetherServer, check

HEAD = {"model": WIRE_MODEL, "query": QUERY}

# --- what goes on the wire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url"),
    [
        (None, "https://api.together.ai/v1/rerank"),
        ("https://api.together.xyz/v1", "https://api.together.xyz/v1/rerank"),
        ("https://api.together.xyz/v1/", "https://api.together.xyz/v1/rerank"),
        ("https://api.together.xyz/v1/rerank", "https://api.together.xyz/v1/rerank"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/rerank"),  # as LiteLLM: the base carries /v1
    ],
)
def test_url_is_base_plus_rerank(base: str | None, url: str) -> None:
    wire = single(ADAPTER, dep(base), req())
    assert (wire.method, wire.url, wire.headers) == ("POST", url, {})
    assert DEFAULT_BASE == "https://api.together.ai/v1"


LLAMA_RANK = "Salesforce/Llama-Rank-V1"
OBJECTS = [{"title": "Solar", "text": "solar power plants"}, {"title": "Coffee", "text": "beans"}]


@pytest.mark.parametrize(
    ("wire_model", "documents", "rank_fields", "expected"),
    [
        pytest.param(LLAMA_RANK, OBJECTS, ["text"], {"documents": OBJECTS, "rank_fields": ["text"]},
                     id="llama-rank-objects-and-rank-fields-native"),
        pytest.param(LLAMA_RANK, OBJECTS, None, {"documents": OBJECTS}, id="llama-rank-every-field"),
        pytest.param(LLAMA_RANK, ["a", "b"], ["text"], {"documents": ["a", "b"]}, id="llama-rank-strings"),
        pytest.param(WIRE_MODEL, OBJECTS, ["text"], {"documents": ["solar power plants", "beans"]},
                     id="serverless-renders-objects"),
    ],
)  # fmt: skip
def test_objects_and_rank_fields_go_natively_to_llama_rank_only(
    wire_model: str, documents: Any, rank_fields: list[str] | None, expected: dict[str, Any]
) -> None:
    wire = single(ADAPTER, dep(model=wire_model), req(documents=documents, rank_fields=rank_fields))
    assert wire.body == {"model": wire_model, "query": QUERY, **expected}
    assert check(wire.body) is None  # the local Together API takes it


async def test_llama_rank_ranks_objects_by_their_rank_fields_at_the_local_api(
    client: httpx.AsyncClient,
) -> None:
    with TogetherServer(KEY, [LLAMA_RANK]) as server:
        reranker = reranker_for(client, dep(base=f"{server.base_url}/v1"))
        response = await reranker.rerank(
            f"together_ai/{LLAMA_RANK}", req(documents=OBJECTS, rank_fields=["title"], top_n=1)
        )
    (seen,) = server.requests
    assert (seen.status, seen.body["documents"], seen.body["rank_fields"]) == (200, OBJECTS, ["title"])
    assert [r.index for r in response.results] == [0]


# --- what comes back --------------------------------------------------------------------------------


async def test_results_sorted_cut_and_usage_as_reported() -> None:
    usage = {"prompt_tokens": 31, "completion_tokens": 0, "total_tokens": 31}
    mock = Mock(ok([(2, 0.3), (0, 0.8), (1, 0.5)], usage))
    response, _ = await rerank(ADAPTER, dep(), req(documents=["a", "b", "c"], top_n=2), mock)
    assert response.results == [RankedDocument(0, 0.8), RankedDocument(1, 0.5)]
    assert response.response_id == "9dfa1a09"
    assert response.usage == {"tokens": usage}


@pytest.mark.parametrize("usage", [None, {}, {"total_tokens": None}])
async def test_no_usage_when_none_reported(usage: Any) -> None:
    response, _ = await rerank(ADAPTER, dep(), req(), Mock(ok([(0, 0.9), (1, 0.1)], usage)))
    assert response.usage is None


# --- against the local Together API -----------------------------------------------------------------


server = serving(lambda: TogetherServer(KEY, [WIRE_MODEL]))


async def test_local_api_refuses_what_together_refuses(
    server: TogetherServer, client: httpx.AsyncClient
) -> None:
    url, auth = f"{server.base_url}/v1/rerank", {"authorization": f"Bearer {KEY}"}
    good = {**HEAD, "documents": ["a"]}
    for body, status, named in [
        ({**good, "documents": [{"text": "a"}]}, 400, "dedicated"),
        ({**good, "rank_fields": ["text"]}, 400, "dedicated"),
        ({**good, "max_chunks_per_doc": 2}, 400, "max_chunks_per_doc"),
        ({**good, "model": "nope/nope"}, 404, "Unable to access model"),
    ]:
        answer = await client.post(url, json=body, headers=auth)
        assert answer.status_code == status, body
        assert named in answer.json()["error"]["message"]
    answer = await client.post(url, json=good, headers={"authorization": "Bearer wrong"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "invalid_api_key")
