"""Cohere rerank, v2 (``/v2/rerank``) and v1 (``/v1/rerank``).

v2 takes string documents only and ``max_tokens_per_doc``; v1 takes objects with
``rank_fields`` and ``max_chunks_per_doc``.  v1 is used when the base URL says so
(its path ends in ``/v1`` or ``/v1/rerank``); otherwise v2.  What an endpoint
lacks is done client-side (:mod:`providers.planner`).  Scores are probabilities in
[0, 1]; usage is Cohere's ``meta.billed_units`` (search units) and ``meta.tokens``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from providers.adapter import Capabilities, HttpAdapter, ParsedResponse, WireRequest
from providers.adapters.shapes import parse_results
from providers.deployment import Deployment
from providers.types import RerankRequest

__all__ = [
    "ADAPTER",
    "DEFAULT_BASE",
    "MAX_DOCUMENTS",
    "V1",
    "V2",
    "build_request",
    "capabilities",
    "cohere_body",
    "parse_response",
    "rerank_url",
]

DEFAULT_BASE = "https://api.cohere.com"
MAX_DOCUMENTS = 1000
"""Cohere's recommended per-request maximum (the API accepts up to 10,000)."""
V2 = Capabilities(object_documents=False, max_tokens_per_doc=True, max_documents=MAX_DOCUMENTS)
V1 = Capabilities(object_documents=True, max_chunks_per_doc=True, max_documents=MAX_DOCUMENTS)


def rerank_url(base: str, default_version: int = 2) -> tuple[str, int]:
    """The endpoint URL for a base, and the API version it speaks."""
    base = base.rstrip("/")
    path = urlsplit(base).path.rstrip("/")
    for version in (1, 2):
        if path.endswith(f"/v{version}/rerank"):
            return base, version
        if path.endswith(f"/v{version}"):
            return f"{base}/rerank", version
    return f"{base}/v{default_version}/rerank", default_version


def capabilities(deployment: Deployment) -> Capabilities:
    _, version = rerank_url(deployment.credentials.api_base or DEFAULT_BASE)
    return V1 if version == 1 else V2


def cohere_body(deployment: Deployment, request: RerankRequest, version: int) -> dict[str, Any]:
    body: dict[str, Any] = {"model": deployment.wire_model, "query": request.query}
    body["documents"] = list(request.documents)
    if request.top_n is not None:
        body["top_n"] = request.top_n
    if version == 1:
        body["return_documents"] = False
        if request.rank_fields:
            body["rank_fields"] = request.rank_fields
        if request.max_chunks_per_doc is not None:
            body["max_chunks_per_doc"] = request.max_chunks_per_doc
    elif request.max_tokens_per_doc is not None:
        body["max_tokens_per_doc"] = request.max_tokens_per_doc
    return body


def build_request(base: str, deployment: Deployment, request: RerankRequest) -> WireRequest:
    url, version = rerank_url(base)
    return WireRequest(url=url, body=cohere_body(deployment, request, version))


def parse_response(body: Any, request: RerankRequest) -> ParsedResponse:
    meta = body.get("meta") or {}
    usage = {k: meta[k] for k in ("billed_units", "tokens") if meta.get(k)}
    return ParsedResponse(results=parse_results(body), response_id=body.get("id"), usage=usage or None)


ADAPTER = HttpAdapter(
    provider="cohere",
    independent_scores=True,  # a cross-encoder: each document scored on its own
    build_request=build_request,
    parse_response=parse_response,
    capabilities=capabilities,
    variants={"v2": V2, "v1": V1},
    key_env=("COHERE_API_KEY", "CO_API_KEY"),
    base_env=("COHERE_API_BASE",),
    default_base=DEFAULT_BASE,
    score_kind="probability in [0, 1]",
    usage_kind="`billed_units.search_units`, `tokens` (Cohere's `meta`)",
)
