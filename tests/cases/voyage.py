"""Voyage AI: ``/v1/rerank`` with ``top_k``; MongoDB Atlas keys go to Atlas's host."""

from __future__ import annotations

from typing import Any

import httpx

from providers.deployment import Deployment
from providers.types import RankedDocument, RerankRequest
from tests.adapter_kit import deployment
from tests.cases.case import Batch, Line, ProviderCase, bearer, split_count, strings_body
from tests.servers.voyage import voyage_server

KEY = "pa-test"
MODEL = "rerank-2.5"
URL = "https://api.voyageai.com/v1/rerank"
TEXTS = ["solar power plants", "coffee"]


def dep(base: str | None = None, key: str | None = KEY) -> Deployment:
    return deployment("voyage", MODEL, key=key, base=base)


def req(**overrides: Any) -> RerankRequest:
    return RerankRequest(**{"query": "solar power", "documents": list(TEXTS), **overrides})


def body(documents: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "query": "solar power",
        "documents": documents,
        "return_documents": False,
        **extra,
    }


def data(*pairs: tuple[int, float], usage: Any = None) -> httpx.Response:
    payload = {
        "object": "list",
        "data": [{"relevance_score": s, "index": i} for i, s in pairs],
        "model": MODEL,
        "usage": usage if usage is not None else {"total_tokens": 33},
    }
    return httpx.Response(200, json=payload)


def line_body(line: Line) -> dict[str, Any]:
    return strings_body(MODEL, line, top_n="top_k", return_documents=False)


ENVELOPE = {"detail": "The number of documents must be between 1 and 1000, got 1001."}
CASE = ProviderCase(
    provider="voyage",
    wire_model=MODEL,
    deployment=dep(),
    request=req(),
    ok=lambda: data((1, 0.9), (0, 0.1)),
    ranked=[RankedDocument(1, 0.9), RankedDocument(0, 0.1)],
    url=URL,
    authorization=bearer(KEY),
    envelope=ENVELOPE,
    message=ENVELOPE["detail"],
    missing=((dep(key=None), ("VOYAGE_API_KEY",)),),
    key_vars=("VOYAGE_API_KEY", "VOYAGE_AI_API_KEY", "VOYAGE_AI_TOKEN"),
    base_vars=("VOYAGE_API_BASE",),
    batch=Batch(
        server=lambda: voyage_server(KEY),
        env=lambda server, _: {"VOYAGE_API_KEY": KEY, "VOYAGE_API_BASE": f"{server.base_url}/v1"},
        path="/v1/rerank",
        authorization=lambda _: bearer(KEY),
        body=line_body,
        usage=lambda line: {"tokens": {"total_tokens": split_count(line)}},
    ),
)
