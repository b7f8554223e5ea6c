"""Cohere: the reference shape (v2 by default, v1 under a ``/v1`` base)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.cases.case import Batch, Deployer, ProviderCase, bearer, strings_body
from tests.servers.cohere import CohereServer

KEY = "test-cohere-key"
WIRE_MODEL = "rerank-v3.5"
BASE = "https://api.cohere.com"
V2_URL = "https://api.cohere.com/v2/rerank"
SEARCH_UNIT = {"billed_units": {"search_units": 1}}


dep = Deployer("cohere", WIRE_MODEL, key=KEY, base=BASE)


def ok(results: list[tuple[int, float]] | None = None, meta: dict[str, Any] | None = None) -> httpx.Response:
    """Cohere's answer (id ``resp-1``, request id ``req-1``; by default document 0 first)."""
    body = {
        "id": "resp-1",
        "results": [{"index": i, "relevance_score": s} for i, s in (results or [(0, 0.9), (1, 0.1)])],
        "meta": meta if meta is not None else {"api_version": {"version": "2"}, **SEARCH_UNIT},
    }
    return httpx.Response(200, json=body, headers={"x-request-id": "req-1"})


def error(status: int, message: str = "nope", headers: dict[str, str] | None = None) -> httpx.Response:
    """Cohere's error envelope (request id ``req-e``)."""
    return httpx.Response(
        status, json={"message": message}, headers={"x-request-id": "req-e", **(headers or {})}
    )


MALFORMED = ({"id": "x", "results": [{"index": 2, "relevance_score": 0.5}]},)
CASE = ProviderCase(
    deployment=dep(),
    answer=ok,
    url=V2_URL,
    authorization=bearer(KEY),
    envelope={"message": "invalid request: query must be a non-empty string"},
    message="invalid request: query must be a non-empty string",
    missing=((dep(key=None), ("COHERE_API_KEY", "CO_API_KEY")),),
    key_vars=("COHERE_API_KEY", "CO_API_KEY"),
    base_vars=("COHERE_API_BASE",),
    native=frozenset({"top_n", "max_tokens_per_doc"}),
    max_documents=1000,
    malformed=MALFORMED,
    batch=Batch(
        server=lambda: CohereServer(KEY),
        env=lambda server, _: {"COHERE_API_KEY": KEY, "COHERE_API_BASE": server.base_url},
        path="/v2/rerank",
        authorization=lambda _: bearer(KEY),
        body=lambda line: strings_body(WIRE_MODEL, line),
        usage=lambda _: SEARCH_UNIT,
    ),
)
