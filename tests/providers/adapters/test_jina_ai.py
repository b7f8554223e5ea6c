"""jina_ai adapter: the URL rule (the endpoint appended to a base), bodies without rank_fields and
with return_documents false, parsing; the local Jina API refusing what Jina refuses.  (What every
provider does alike: test_contract.py.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from providers.adapters.jina_ai import ADAPTER
from providers.types import RankedDocument
from tests.adapter_kit import Mock, rerank, serving, single
from tests.cases.case import QUERY, req
from tests.cases.jina_ai import KEY, WIRE_MODEL, dep, ok
from tests.servers.jina_ai import JinaServer

HEAD = {"model": WIRE_MODEL, "query": QUERY}

# --- what goes on the wire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url"),
    [
        (None, "https://api.jina.ai/v1/rerank"),
        ("https://api.jina.ai", "https://api.jina.ai/v1/rerank"),
        ("https://api.jina.ai/v1", "https://api.jina.ai/v1/rerank"),
        ("https://api.jina.ai/v1/", "https://api.jina.ai/v1/rerank"),
        ("https://api.jina.ai/v1/rerank", "https://api.jina.ai/v1/rerank"),
        # a gateway's prefix is kept (LiteLLM replaced the whole path with /v1/rerank)
        ("http://127.0.0.1:8080/some/path/", "http://127.0.0.1:8080/some/path/v1/rerank"),
        ("https://gw.example.com/jina/v1", "https://gw.example.com/jina/v1/rerank"),
        ("https://gw.example.com/jina/v2/rerank", "https://gw.example.com/jina/v2/rerank"),
        ("http://h:9/x?tenant=a", "http://h:9/x/v1/rerank?tenant=a"),
    ],
)
def test_endpoint_is_appended_to_the_base(base: str | None, url: str) -> None:
    wire = single(ADAPTER, dep(base), req())
    assert (wire.method, wire.url) == ("POST", url)


def test_documents_are_never_echoed_back() -> None:
    wire = single(ADAPTER, dep(), req(return_documents=True, top_n=1))
    assert wire.body == {**HEAD, "documents": ["solar power plants", "coffee"], "top_n": 1,
                         "return_documents": False}  # fmt: skip


# --- what comes back --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document", [None, "organic skincare products", {"text": "organic skincare products"}]
)
async def test_results_sorted_cut_and_usage_as_reported(document: Any) -> None:
    usage = {"total_tokens": 815, "prompt_tokens": 815}
    mock = Mock(ok([(1, 0.2), (2, 0.76), (0, 0.88)], usage, document))
    response, _ = await rerank(ADAPTER, dep(), req(documents=["a", "b", "c"], top_n=2), mock)
    assert response.results == [RankedDocument(0, 0.88), RankedDocument(2, 0.76)]
    assert response.usage == {"tokens": usage}
    assert response.response_id is None


# --- against the local Jina API ---------------------------------------------------------------------


server = serving(lambda: JinaServer(KEY, [WIRE_MODEL]))


async def test_local_api_refuses_what_jina_refuses(server: JinaServer, client: httpx.AsyncClient) -> None:
    url, auth = f"{server.base_url}/v1/rerank", {"authorization": f"Bearer {KEY}"}
    good = {**HEAD, "documents": ["a"]}
    for body, named in [
        ({**good, "rank_fields": ["text"]}, "rank_fields"),
        ({**good, "documents": [{"title": "a", "text": "b"}]}, "documents"),
        ({**good, "top_n": 0}, "top_n"),
    ]:
        answer = await client.post(url, json=body, headers=auth)
        assert answer.status_code == 422, body
        assert named in answer.json()["detail"] and answer.json()["detail"].startswith("[RID: ")
    answer = await client.post(url, json={**good, "documents": [{"text": "a"}]}, headers=auth)
    assert answer.status_code == 200
    answer = await client.post(url, json=good, headers={"authorization": "Bearer jina_wrong"})
    assert answer.status_code == 401
