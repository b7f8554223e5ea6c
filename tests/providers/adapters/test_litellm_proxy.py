"""litellm_proxy adapter: URLs, bodies, parsing; the local proxy refusing what its backend refuses.
(What every provider does alike: test_contract.py.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from providers.adapters.litellm_proxy import ADAPTER, rerank_url
from providers.types import RankedDocument
from tests.adapter_kit import Mock, rerank, serving, single
from tests.cases.case import QUERY, req
from tests.cases.litellm_proxy import BASE, KEY, MODEL, dep, ok
from tests.servers.litellm_proxy import LiteLLMProxyServer

HEAD = {"model": MODEL, "query": QUERY}

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


server = serving(lambda: LiteLLMProxyServer(KEY, [MODEL]))


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
