"""Infinity (michaelfeil/infinity) rerank: ``infinity/<served model name>``.

``POST {base}/rerank``; the base is required (``INFINITY_API_BASE``) and includes the
server's ``--url-prefix`` if it has one (``http://host:7997`` or ``http://host:7997/v1``);
a base already ending in ``/rerank`` is used as is.  Auth: ``Authorization: Bearer
$INFINITY_API_KEY`` when a key is set (servers started with ``--api-key``); with no key no
header is sent at all (LiteLLM sends ``Bearer None``).

Infinity's ``RerankInput`` is ``{model, query, documents: [str], top_n?, return_documents,
raw_scores}`` and ignores any other field, so LiteLLM's ``rank_fields`` and
``max_chunks_per_doc`` are silently lost there; here objects are rendered to text and
truncation and chunking are done client-side.  ``return_documents`` and ``raw_scores`` are
left at their defaults (false).  Scores are the model's sigmoid-activated relevance in
[0, 1] (``raw_scores`` false).  Usage is Infinity's ``usage``: ``{"tokens": {"prompt_tokens",
"total_tokens"}}``.
"""

from __future__ import annotations

from typing import Any

from providers.adapter import Capabilities, HttpAdapter, ParsedResponse, WireRequest, static
from providers.adapters.shapes import simple_body, simple_response
from providers.auth import Bearer
from providers.deployment import Deployment
from providers.types import RerankRequest

__all__ = ["ADAPTER", "CAPABILITIES", "MAX_DOCUMENTS", "build_request", "parse_response", "rerank_url"]

MAX_DOCUMENTS = 2048
"""``RerankInput.documents`` is a list of 1 to 2048 strings (infinity_emb's ITEMS_LIMIT)."""
CAPABILITIES = Capabilities(object_documents=False, top_n=True, max_documents=MAX_DOCUMENTS)


def rerank_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/rerank") else f"{base}/rerank"


def build_request(base: str, deployment: Deployment, request: RerankRequest) -> WireRequest:
    return WireRequest(url=rerank_url(base), body=simple_body(deployment.wire_model, request))


def parse_response(body: Any, request: RerankRequest) -> ParsedResponse:
    return simple_response(body, request)


ADAPTER = HttpAdapter(
    provider="infinity",
    independent_scores=True,  # a cross-encoder: each document scored on its own
    build_request=build_request,
    parse_response=parse_response,
    capabilities=static(CAPABILITIES),
    auth=Bearer(required=False),
    key_env=("INFINITY_API_KEY",),
    base_env=("INFINITY_API_BASE",),
    default_base=None,
    score_kind="probability in [0, 1] (sigmoid; raw_scores=false)",
    usage_kind="`tokens` (prompt, total)",
)
