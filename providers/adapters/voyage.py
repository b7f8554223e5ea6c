"""Voyage AI rerank: ``POST https://api.voyageai.com/v1/rerank``.

Keys issued by MongoDB Atlas (``al-…``) go to ``https://ai.mongodb.com/v1/rerank``
instead.  api_base: used as is when it ends in ``/v1/rerank``, ``/rerank`` is added to
one ending in ``/v1``, otherwise ``/v1/rerank``.  Body ``{model, query, documents: [str],
top_k?, return_documents: false}``: ``top_n`` is Voyage's ``top_k``; strings only (objects
are rendered with ``rank_fields``); ``truncation`` is left at Voyage's default (true: an
over-long document is cut to the model's context rather than failing the request);
``max_tokens_per_doc`` and ``max_chunks_per_doc`` are done client-side.  Auth
``Authorization: Bearer <key>``.  Scores are probabilities in [0, 1].  Usage is
Voyage's ``usage.total_tokens``, reported as ``{"tokens": {"total_tokens": N}}``.
"""

from __future__ import annotations

from typing import Any

from providers.adapter import Capabilities, HttpAdapter, ParsedResponse, WireRequest, static
from providers.adapters.shapes import simple_body, simple_response
from providers.deployment import Deployment
from providers.params import Param
from providers.types import RerankRequest

__all__ = [
    "ADAPTER",
    "CAPABILITIES",
    "MONGODB_BASE",
    "VOYAGE_BASE",
    "build_request",
    "default_base",
    "parse_response",
    "rerank_url",
]

VOYAGE_BASE = "https://api.voyageai.com"
MONGODB_BASE = "https://ai.mongodb.com"
CAPABILITIES = Capabilities(object_documents=False, top_n=True, max_documents=1000)
"""Voyage's API reference: at most 1,000 documents per request."""


def default_base(deployment: Deployment) -> str:
    key = deployment.credentials.api_key
    return MONGODB_BASE if key is not None and key.get_secret_value().startswith("al-") else VOYAGE_BASE


def rerank_url(base: str) -> str:
    base = base.rstrip("/")
    if base.endswith("/v1/rerank"):
        return base
    if base.endswith("/v1"):
        return f"{base}/rerank"
    return f"{base}/v1/rerank"


def build_request(base: str, deployment: Deployment, request: RerankRequest) -> WireRequest:
    body = simple_body(deployment.wire_model, request, top_n_key="top_k", return_documents=False)
    return WireRequest(url=rerank_url(base), body=body)


def parse_response(body: Any, request: RerankRequest) -> ParsedResponse:
    return simple_response(body, request, key="data")


ADAPTER = HttpAdapter(
    provider="voyage",
    params=(Param("truncation", "boolean"),),
    independent_scores=True,  # a cross-encoder: each document scored on its own
    build_request=build_request,
    parse_response=parse_response,
    capabilities=static(CAPABILITIES),
    key_env=("VOYAGE_API_KEY", "VOYAGE_AI_API_KEY", "VOYAGE_AI_TOKEN"),
    base_env=("VOYAGE_API_BASE",),
    default_base=default_base,
    score_kind="probability in [0, 1]",
    usage_kind="`tokens.total_tokens`",
)
