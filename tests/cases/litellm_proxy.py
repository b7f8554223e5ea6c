"""A LiteLLM proxy: Cohere's v1 route (or the base's own), whatever backend serves the name."""

from __future__ import annotations

from typing import Any

import httpx

from tests.cases.case import Batch, Deployer, ProviderCase, bearer, strings_body
from tests.servers.litellm_proxy import LiteLLMProxyServer

KEY = "sk-proxy-test"
BASE = "http://proxy.internal:4000"
MODEL = "my-reranker"
SEARCH_UNIT = {"billed_units": {"search_units": 1}}


dep = Deployer("litellm_proxy", MODEL, key=KEY, base=BASE)


def ok(results: list[tuple[int, float]], meta: dict[str, Any] | None = None) -> httpx.Response:
    body = {
        "id": "resp-1",
        "results": [{"index": i, "relevance_score": s} for i, s in results],
        "meta": meta if meta is not None else SEARCH_UNIT,
    }
    return httpx.Response(200, json=body, headers={"x-litellm-call-id": "call-1"})


MESSAGE = "litellm.RateLimitError: CohereException - You are past the per minute request limit"
MALFORMED = ({"id": "x", "results": [{"index": 2, "relevance_score": 0.5}]},)
CASE = ProviderCase(
    deployment=dep(),
    answer=ok,
    url=f"{BASE}/v1/rerank",
    authorization=bearer(KEY),
    envelope={"error": {"message": MESSAGE, "type": "throttling_error", "param": "None", "code": "429"}},
    message=MESSAGE,
    missing=(
        (dep(base=None), ("LITELLM_PROXY_API_BASE",)),
        (dep(key=None), ("LITELLM_PROXY_API_KEY",)),
    ),
    key_vars=("LITELLM_PROXY_API_KEY",),
    base_vars=("LITELLM_PROXY_API_BASE",),
    ignored_vars={"COHERE_API_KEY": "c", "COHERE_API_BASE": "https://api.cohere.com"},
    native=frozenset({"top_n"}),
    max_documents=None,
    malformed=MALFORMED,
    batch=Batch(
        server=lambda: LiteLLMProxyServer(KEY, [MODEL]),
        env=lambda server, _: {"LITELLM_PROXY_API_KEY": KEY, "LITELLM_PROXY_API_BASE": server.base_url},
        path="/v1/rerank",
        authorization=lambda _: bearer(KEY),
        body=lambda line: strings_body(MODEL, line),
        usage=lambda _: SEARCH_UNIT,
    ),
)
