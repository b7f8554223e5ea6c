"""Jina AI: the API's own path (a base's path is replaced), strings or ``{text}`` objects."""

from __future__ import annotations

from typing import Any

import httpx

from tests.cases.case import Batch, Deployer, ProviderCase, bearer, strings_body, word_count
from tests.servers.jina_ai import JinaServer

KEY = "jina_test_key"
WIRE_MODEL = "jina-reranker-v2-base-multilingual"


dep = Deployer("jina_ai", WIRE_MODEL, key=KEY)


def ok(results: list[tuple[int, float]], usage: Any = None, document: Any = None) -> httpx.Response:
    body = {
        "model": WIRE_MODEL,
        "usage": usage if usage is not None else {"total_tokens": 20},
        "results": [{"index": i, "relevance_score": s, "document": document} for i, s in results],
    }
    return httpx.Response(200, json=body)


MESSAGE = "[RID: 51853d71] Too many requests, please slow down"
MALFORMED = ({"results": [{"index": 2, "relevance_score": 0.5}]},)
CASE = ProviderCase(
    deployment=dep(),
    answer=ok,
    url="https://api.jina.ai/v1/rerank",
    authorization=bearer(KEY),
    envelope={"detail": MESSAGE},
    message=MESSAGE,
    missing=((dep(key=None), ("JINA_AI_API_KEY", "JINA_API_KEY", "JINA_AI_TOKEN")),),
    key_vars=("JINA_AI_API_KEY", "JINA_API_KEY", "JINA_AI_TOKEN"),
    base_vars=("JINA_AI_API_BASE",),
    native=frozenset({"top_n"}),
    max_documents=None,
    malformed=MALFORMED,
    batch=Batch(
        server=lambda: JinaServer(KEY, [WIRE_MODEL]),
        env=lambda server, _: {"JINA_API_KEY": KEY, "JINA_AI_API_BASE": f"{server.base_url}/v1"},
        path="/v1/rerank",
        authorization=lambda _: bearer(KEY),
        body=lambda line: strings_body(WIRE_MODEL, line, return_documents=False),
        usage=lambda line: {"tokens": {"total_tokens": word_count(line)}},
    ),
)
