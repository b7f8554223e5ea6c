"""dashscope adapter: URL rules, bodies, the 500-document split, parsing and an error envelope on a
200; the local compatible-api refusing what DashScope refuses.  (What every provider does alike:
test_contract.py.)"""

from __future__ import annotations

import httpx
import pytest

from providers.adapters.dashscope import ADAPTER, MAX_DOCUMENTS
from providers.errors import BadResponseError
from providers.types import Document, RankedDocument
from tests.adapter_kit import Mock, failure, rerank, serving, single
from tests.cases.case import QUERY, req
from tests.cases.dashscope import DEFAULT_URL, KEY, WIRE_MODEL, dep, envelope, ok
from tests.servers.dashscope import DashScopeServer

HEAD = {"model": WIRE_MODEL, "query": QUERY}

INTL = "https://dashscope-intl.aliyuncs.com/compatible-api/v1"


# --- what goes on the wire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url"),
    [
        (None, DEFAULT_URL),
        (DEFAULT_URL, DEFAULT_URL),
        (INTL, f"{INTL}/reranks"),
        (f"{INTL}/", f"{INTL}/reranks"),
        ("https://dashscope.aliyuncs.com/compatible-mode/v1", DEFAULT_URL),
        ("https://dashscope-intl.aliyuncs.com/compatible-mode/v1/", f"{INTL}/reranks"),
        ("https://ws1.ap-southeast-1.maas.aliyuncs.com/compatible-api/v1",
         "https://ws1.ap-southeast-1.maas.aliyuncs.com/compatible-api/v1/reranks"),
        ("http://127.0.0.1:9/v1/rerank", "http://127.0.0.1:9/v1/rerank"),
        ("http://127.0.0.1:9", "http://127.0.0.1:9/reranks"),
    ],
)  # fmt: skip
def test_url_rules(base: str | None, url: str) -> None:
    wire = single(ADAPTER, dep(base), req())
    assert (wire.method, wire.url) == ("POST", url)


# --- what comes back --------------------------------------------------------------------------------


async def test_split_results_map_back_with_usage_summed() -> None:
    documents: list[Document] = [f"doc {i}" for i in range(MAX_DOCUMENTS + 1)]
    mock = Mock(ok([(4, 0.5), (2, 0.3)], {"total_tokens": 900}), ok([(0, 0.93)], {"total_tokens": 3}))
    response, _ = await rerank(ADAPTER, dep(), req(documents=documents, top_n=2), mock)
    assert response.results == [RankedDocument(MAX_DOCUMENTS, 0.93), RankedDocument(4, 0.5)]
    assert response.usage == {"tokens": {"total_tokens": 903}}
    assert response.response_id == "5f8c1a2e"


async def test_error_envelope_on_a_200_is_a_bad_response_with_dashscopes_words() -> None:
    body = envelope("InvalidParameter", "Range of documents should be [1, 500]")
    exc, _ = await failure(ADAPTER, dep(), req(), Mock(httpx.Response(200, json=body)))
    assert isinstance(exc, BadResponseError)
    assert "InvalidParameter" in exc.message and "Range of documents" in exc.message


# --- against the local compatible-api ---------------------------------------------------------------


server = serving(lambda: DashScopeServer(KEY, [WIRE_MODEL]))


async def test_local_api_refuses_what_dashscope_refuses(
    server: DashScopeServer, client: httpx.AsyncClient
) -> None:
    url, auth = f"{server.base_url}/compatible-api/v1/reranks", {"authorization": f"Bearer {KEY}"}
    good = {**HEAD, "documents": ["a"]}
    for body, named in [
        ({**good, "documents": ["a"] * 501}, "[1, 500]"),
        ({**good, "documents": [{"text": "a"}]}, "strings"),
        ({**good, "rank_fields": ["text"]}, "rank_fields"),
        ({**good, "model": "gte-nope"}, "Model not exist"),
    ]:
        answer = await client.post(url, json=body, headers=auth)
        assert (answer.status_code, answer.json()["code"]) == (400, "InvalidParameter"), body
        assert named in answer.json()["message"]
    answer = await client.post(url, json=good, headers={"authorization": "Bearer sk-wrong"})
    assert (answer.status_code, answer.json()["code"]) == (401, "InvalidApiKey")
    assert answer.json()["request_id"] == server.requests[-1].request_id
