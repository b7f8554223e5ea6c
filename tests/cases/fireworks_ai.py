"""Fireworks AI: ``/inference/v1/rerank``, the model always sent as ``fireworks/<name>``."""

from __future__ import annotations

from typing import Any

import httpx

from tests.cases.case import Batch, Deployer, Line, ProviderCase, bearer, split_count, strings_body
from tests.servers.fireworks_ai import FireworksServer

KEY = "fw-test"
URL = "https://api.fireworks.ai/inference/v1/rerank"
WIRE_MODEL = "qwen3-reranker-8b"
SENT_MODEL = "fireworks/qwen3-reranker-8b"


dep = Deployer("fireworks_ai", WIRE_MODEL, key=KEY)


def body(documents: list[str], **extra: Any) -> dict[str, Any]:
    return {"model": SENT_MODEL, "query": "solar power", "documents": documents, "return_documents": False,
            **extra}  # fmt: skip


def data(*pairs: tuple[int, float], usage: Any = None, key: str = "data") -> httpx.Response:
    payload = {
        "object": "list",
        "model": SENT_MODEL,
        key: [{"index": i, "relevance_score": s, "document": "t"} for i, s in pairs],
        "usage": usage if usage is not None else {"prompt_tokens": 40, "total_tokens": 40},
    }
    return httpx.Response(200, json=payload, headers={"x-request-id": "fw-req"})


def tokens(line: Line) -> dict[str, Any]:
    count = split_count(line)
    return {"tokens": {"prompt_tokens": count, "total_tokens": count}}  # never search units


MESSAGE = "top_n must be positive"
MALFORMED = (
    {"data": [{"index": 2, "relevance_score": 0.1}]},
    {"object": "list"},  # no results
    {"data": [{"index": 0, "score": 0.1}]},  # the wrong score name
)
CASE = ProviderCase(
    deployment=dep(),
    answer=lambda pairs: data(*pairs),
    url=URL,
    authorization=bearer(KEY),
    envelope={"error": {"object": "error", "type": "invalid_request_error", "message": MESSAGE}},
    message=MESSAGE,
    missing=(
        (
            dep(key=None),
            ("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY", "FIREWORKS_AI_TOKEN"),
        ),
    ),
    key_vars=("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY", "FIREWORKS_AI_TOKEN"),
    base_vars=("FIREWORKS_API_BASE",),
    native=frozenset({"top_n"}),
    max_documents=None,
    malformed=MALFORMED,
    batch=Batch(
        server=lambda: FireworksServer(KEY),
        env=lambda server, _: {  # an empty first variable does not hide the second
            "FIREWORKS_API_KEY": "",
            "FIREWORKS_AI_API_KEY": KEY,
            "FIREWORKS_API_BASE": f"{server.base_url}/inference/v1",
        },
        path="/inference/v1/rerank",
        authorization=lambda _: bearer(KEY),
        body=lambda line: strings_body(SENT_MODEL, line, return_documents=False),
        usage=tokens,
    ),
)
