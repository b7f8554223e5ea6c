"""litellm_proxy adapter: URLs, bodies, parsing; the local proxy refusing what its backend refuses.
(What every provider does alike: test_contract.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from providers.adapters.litellm_proxy import ADAPTER, rerank_url
from providers.types import Document, RankedDocument
from tests.adapter_kit import Mock, rerank, single, wires
from tests.cases.litellm_proxy import BASE, HEAD, KEY, MODEL, STRINGS, dep, ok, req
from tests.servers.litellm_proxy import LiteLLMProxyServer, litellm_proxy_server

OBJECTS: list[Document] = [
    {"id": "a", "title": "Solar panels", "text": "Photovoltaic cells turn light into power."},
    {"id": "b", "title": "Coffee", "text": "Espresso is brewed under pressure.", "year": 2020},
]
LONG = " ".join(f"w{i}" for i in range(10))


# --- what goes on the wire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url"),
    [
        (BASE, f"{BASE}/v1/rerank"),
        (f"{BASE}/", f"{BASE}/v1/rerank"),
        (f"{BASE}/v1", f"{BASE}/v1/rerank"),
        (f"{BASE}/v1/", f"{BASE}/v1/rerank"),
        (f"{BASE}/v1/rerank", f"{BASE}/v1/rerank"),
        (f"{BASE}/rerank", f"{BASE}/rerank"),
        (f"{BASE}/v2/rerank", f"{BASE}/v2/rerank"),
        ("https://gw.example.com/litellm", "https://gw.example.com/litellm/v1/rerank"),
        ("https://gw.example.com/apiv1", "https://gw.example.com/apiv1/v1/rerank"),
    ],
)
def test_url_follows_the_base(base: str, url: str) -> None:
    assert rerank_url(base) == url
    wire = single(ADAPTER, dep(base), req())
    assert (wire.method, wire.url, wire.headers) == ("POST", url, {})


@pytest.mark.parametrize(
    ("overrides", "body"),
    [
        pytest.param({}, {**HEAD, "documents": STRINGS}, id="strings"),
        pytest.param(
            {"top_n": 1, "return_documents": True},
            {**HEAD, "documents": STRINGS, "top_n": 1},
            id="top_n-sent-return_documents-never",
        ),
        pytest.param(
            {"documents": OBJECTS},
            {**HEAD, "documents": [
                "title: Solar panels\ntext: Photovoltaic cells turn light into power.",
                "title: Coffee\ntext: Espresso is brewed under pressure.\nyear: 2020",
            ]},
            id="objects-rendered",
        ),
        pytest.param(
            {"documents": OBJECTS, "rank_fields": ["year", "title"]},
            {**HEAD, "documents": ["title: Solar panels", "year: 2020\ntitle: Coffee"]},
            id="objects-rendered-with-rank_fields",
        ),
        pytest.param(
            {"documents": [LONG, {"text": LONG}], "max_tokens_per_doc": 3},
            {**HEAD, "documents": ["w0 w1 w2", "w0 w1 w2"]},
            id="max_tokens_per_doc-truncated-here",
        ),
        pytest.param(
            {"documents": [LONG, "solar"], "max_chunks_per_doc": 2, "max_tokens_per_doc": 4, "top_n": 1},
            {**HEAD, "documents": ["w0 w1 w2 w3", "w4 w5 w6 w7", "solar"]},
            id="max_chunks_per_doc-chunked-here-top_n-after-pooling",
        ),
    ],
)  # fmt: skip
def test_body_is_what_any_backend_takes(overrides: dict[str, Any], body: dict[str, Any]) -> None:
    assert single(ADAPTER, dep(), req(**overrides)).body == body


def test_long_lists_go_in_one_request() -> None:
    documents: list[Document] = [f"doc {i}" for i in range(3000)]
    (wire,) = wires(ADAPTER, dep(), req(documents=documents))
    assert len(wire.body["documents"]) == 3000


# --- what comes back --------------------------------------------------------------------------------


async def test_results_are_sorted_and_cut_here_with_the_proxys_meta() -> None:
    # a backend such as DeepInfra ignores top_n and answers in input order
    meta = {"billed_units": {"total_tokens": 40}, "tokens": {"input_tokens": 40, "output_tokens": 0}}
    mock = Mock(ok([(0, 0.2), (1, 0.6), (2, 0.95), (3, 0.6)], meta))
    response, _ = await rerank(ADAPTER, dep(), req(documents=["a", "b", "c", "d"], top_n=3), mock)
    assert response.results == [RankedDocument(2, 0.95), RankedDocument(1, 0.6), RankedDocument(3, 0.6)]
    assert response.response_id == "resp-1"
    assert response.usage == meta


@pytest.mark.parametrize("meta", [{}, {"api_version": {"version": "2"}}])
async def test_no_usage_when_the_proxy_reports_none(meta: dict[str, Any]) -> None:
    response, _ = await rerank(ADAPTER, dep(), req(), Mock(ok([(0, 0.5), (1, 0.4)], meta)))
    assert response.usage is None


# --- against the local proxy ------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[LiteLLMProxyServer]:
    with litellm_proxy_server(KEY, [MODEL]) as running:
        yield running


async def test_local_proxy_refuses_what_its_backend_refuses(
    server: LiteLLMProxyServer, client: httpx.AsyncClient
) -> None:
    url, auth = f"{server.base_url}/v1/rerank", {"authorization": f"Bearer {KEY}"}
    good = {**HEAD, "documents": ["a"]}
    for body, named in [
        ({**good, "documents": [{"text": "a"}]}, "strings"),
        ({**good, "rank_fields": ["text"]}, "rank_fields"),
        ({**good, "model": "unknown"}, "Invalid model name"),
    ]:
        answer = await client.post(url, json=body, headers=auth)
        assert answer.status_code == 400, body
        assert named in answer.json()["error"]["message"]
    answer = await client.post(url, json=good, headers={"authorization": "Bearer sk-wrong"})
    assert (answer.status_code, answer.json()["error"]["type"]) == (401, "auth_error")
