"""Cohere rerank, v2 (``/v2/rerank``) and v1 (``/v1/rerank``).

v2 takes string documents only and ``max_tokens_per_doc``; v1 takes objects with
``rank_fields`` and ``max_chunks_per_doc``.  v1 is used when the base URL says so
(its path ends in ``/v1`` or ``/v1/rerank``); otherwise v2.  Object documents are
rendered to text for v2 using ``rank_fields``.  Scores are probabilities in [0, 1].
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

from providers.adapter import HttpAdapter, ParsedResponse, WireRequest
from providers.deployment import Deployment
from providers.errors import UnsupportedParameterError
from providers.render import document_text
from providers.types import RankedDocument, RerankRequest


def rerank_url(base: str) -> tuple[str, int]:
    """The endpoint URL for a base, and the API version it speaks."""
    base = base.rstrip("/")
    path = urlsplit(base).path.rstrip("/")
    for version in (1, 2):
        if path.endswith(f"/v{version}/rerank"):
            return base, version
        if path.endswith(f"/v{version}"):
            return f"{base}/rerank", version
    return f"{base}/v2/rerank", 2


def parse_results(body: dict[str, Any], request: RerankRequest) -> list[RankedDocument]:
    """``results[{index, relevance_score}]``, checked against the request's documents."""
    results = []
    seen: set[int] = set()
    for item in body["results"]:
        index, score = int(item["index"]), float(item["relevance_score"])
        if not 0 <= index < len(request.documents) or index in seen:
            raise ValueError(
                f"result index {index} is repeated or outside the {len(request.documents)} documents"
            )
        if math.isnan(score):
            raise ValueError(f"result {index} has a NaN score")
        seen.add(index)
        results.append(RankedDocument(index=index, relevance_score=score))
    return results


DEFAULT_BASE = "https://api.cohere.com"


def build_request(deployment: Deployment, request: RerankRequest) -> WireRequest:
    url, version = rerank_url(deployment.credentials.api_base or DEFAULT_BASE)
    body: dict[str, Any] = {"model": deployment.wire_model, "query": request.query}
    if version == 2:
        if request.max_chunks_per_doc is not None:
            raise UnsupportedParameterError(
                "Cohere v2 has no max_chunks_per_doc; use max_tokens_per_doc, "
                "or set the base URL to a /v1 endpoint",
                provider="cohere",
            )
        body["documents"] = [document_text(d, request.rank_fields) for d in request.documents]
        if request.max_tokens_per_doc is not None:
            body["max_tokens_per_doc"] = request.max_tokens_per_doc
    else:
        if request.max_tokens_per_doc is not None:
            raise UnsupportedParameterError(
                "Cohere v1 has no max_tokens_per_doc; use max_chunks_per_doc or the v2 endpoint",
                provider="cohere",
            )
        body["documents"] = list(request.documents)
        body["return_documents"] = False
        if request.rank_fields:
            body["rank_fields"] = request.rank_fields
        if request.max_chunks_per_doc is not None:
            body["max_chunks_per_doc"] = request.max_chunks_per_doc
    if request.top_n is not None:
        body["top_n"] = request.top_n
    return WireRequest(url=url, body=body)


def parse_response(body: Any, request: RerankRequest) -> ParsedResponse:
    meta = body.get("meta") or {}
    usage = {k: meta[k] for k in ("billed_units", "tokens") if meta.get(k)}
    return ParsedResponse(
        results=parse_results(body, request),
        response_id=body.get("id"),
        usage=usage or None,
    )


ADAPTER = HttpAdapter(
    provider="cohere",
    build_request=build_request,
    parse_response=parse_response,
    key_env=("COHERE_API_KEY", "CO_API_KEY"),
    base_env=("COHERE_API_BASE",),
    default_base=DEFAULT_BASE,
    score_kind="probability in [0, 1]",
)
