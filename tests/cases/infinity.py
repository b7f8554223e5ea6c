"""Infinity (self-hosted): ``{base}/rerank``, a key only when the server wants one."""

from __future__ import annotations

from typing import Any

import httpx

from tests.cases.case import Batch, Deployer, Line, ProviderCase, bearer, strings_body, word_count
from tests.servers.infinity import InfinityServer

BASE = "http://infinity.internal:7997"
WIRE_MODEL = "mixedbread-ai/mxbai-rerank-xsmall-v1"


dep = Deployer("infinity", WIRE_MODEL, base=BASE)


def ok(results: list[tuple[int, float]], usage: Any = None) -> httpx.Response:
    body = {
        "object": "rerank",
        "results": [{"relevance_score": s, "index": i, "document": None} for i, s in results],
        "model": WIRE_MODEL,
        "usage": usage if usage is not None else {"prompt_tokens": 12, "total_tokens": 12},
        "id": "infinity-1",
        "created": 1_700_000_000,
    }
    return httpx.Response(200, json=body)


def tokens(line: Line) -> dict[str, Any]:
    count = word_count(line)
    return {"tokens": {"prompt_tokens": count, "total_tokens": count}}


MESSAGE = "model mixedbread-ai/mxbai-rerank-xsmall-v1 is currently overloaded"
MALFORMED = ({"results": [{"index": 2, "relevance_score": 0.5}]},)
CASE = ProviderCase(
    deployment=dep(key="inf-key"),
    answer=ok,
    url=f"{BASE}/rerank",
    authorization=bearer("inf-key"),
    keyless=dep(),
    envelope={"error": {"message": MESSAGE, "type": None, "param": None, "code": 429}},
    message=MESSAGE,
    missing=((dep(base=None), ("INFINITY_API_BASE",)),),
    key_vars=("INFINITY_API_KEY",),
    base_vars=("INFINITY_API_BASE",),
    native=frozenset({"top_n"}),
    max_documents=2048,
    malformed=MALFORMED,
    batch=Batch(  # a server without a key: no header at all
        server=lambda: InfinityServer(None, [WIRE_MODEL], url_prefix="/v1"),
        env=lambda server, _: {"INFINITY_API_BASE": f"{server.base_url}/v1"},
        path="/v1/rerank",
        authorization=lambda _: None,
        body=lambda line: strings_body(WIRE_MODEL, line),
        usage=tokens,
    ),
)
