"""Voyage AI: ``/v1/rerank`` with ``top_k``; MongoDB Atlas keys go to Atlas's host."""

from __future__ import annotations

from typing import Any

import httpx

from tests.cases.case import Batch, Deployer, Forwarded, Line, ProviderCase, bearer, split_count, strings_body
from tests.servers.voyage import VoyageServer, check

KEY = "pa-test"
MODEL = "rerank-2.5"
URL = "https://api.voyageai.com/v1/rerank"


dep = Deployer("voyage", MODEL, key=KEY)


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
MALFORMED = (
    {"data": [{"index": 2, "relevance_score": 0.1}]},
    {"results": [{"index": 0, "relevance_score": 0.1}]},  # Cohere's key
    {"data": [{"index": 0}]},  # no score
)
CASE = ProviderCase(
    deployment=dep(),
    answer=lambda pairs: data(*pairs),
    url=URL,
    authorization=bearer(KEY),
    envelope=ENVELOPE,
    message=ENVELOPE["detail"],
    missing=((dep(key=None), ("VOYAGE_API_KEY",)),),
    key_vars=("VOYAGE_API_KEY", "VOYAGE_AI_API_KEY", "VOYAGE_AI_TOKEN"),
    base_vars=("VOYAGE_API_BASE",),
    native=frozenset({"top_n"}),
    max_documents=1000,
    malformed=MALFORMED,
    forwarded=(Forwarded({"truncation": False}, {"truncation": False}),),
    schema=check,
    refused_params=({"truncation": "false"},),
    batch=Batch(
        server=lambda: VoyageServer(KEY),
        env=lambda server, _: {"VOYAGE_API_KEY": KEY, "VOYAGE_API_BASE": f"{server.base_url}/v1"},
        path="/v1/rerank",
        authorization=lambda _: bearer(KEY),
        body=line_body,
        usage=lambda line: {"tokens": {"total_tokens": split_count(line)}},
    ),
)
