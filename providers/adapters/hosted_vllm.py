"""A vLLM server's rerank API (``vllm serve <reranker>``): ``POST {base}/rerank``.

There is no default: the base must be given (``HOSTED_VLLM_API_BASE`` or ``api_base``).
``/rerank`` is added unless the base ends with it, and a trailing ``/v1/rerank`` is
rewritten to ``/rerank`` (vLLM serves ``/rerank``, ``/v1/rerank`` and ``/v2/rerank``
alike).  Body ``{model, query, documents: [str], top_n?}``.  vLLM's ``RerankRequest``
has no ``rank_fields``, ``return_documents``, ``max_tokens_per_doc`` or
``max_chunks_per_doc`` and *ignores* unknown fields with only a server-side log line, so
none of them is sent: objects are rendered with ``rank_fields``, and per-document token
limits and chunking are done client-side.  Auth ``Authorization: Bearer
$HOSTED_VLLM_API_KEY`` when a key is set; none otherwise (a server started without
``--api-key`` ignores the header, one started with it rejects any made-up key).
Scores are probabilities in [0, 1] (vLLM applies the model's activation by default).
Usage is vLLM's ``usage`` token counts as ``{"tokens": {"total_tokens", ...}}``.
"""

from __future__ import annotations

from typing import Any

from providers.adapter import Capabilities, HttpAdapter, ParsedResponse, WireRequest, static
from providers.adapters.shapes import simple_body, simple_response
from providers.auth import Bearer
from providers.deployment import Deployment
from providers.params import Param
from providers.types import RerankRequest

__all__ = ["ADAPTER", "CAPABILITIES", "build_request", "parse_response", "rerank_url"]

CAPABILITIES = Capabilities(object_documents=False, top_n=True)


def rerank_url(base: str) -> str:
    base = base.rstrip("/")
    if base.endswith("/v1/rerank"):
        return base.removesuffix("/v1/rerank") + "/rerank"
    return base if base.endswith("/rerank") else f"{base}/rerank"


def build_request(base: str, deployment: Deployment, request: RerankRequest) -> WireRequest:
    return WireRequest(url=rerank_url(base), body=simple_body(deployment.wire_model, request))


def parse_response(body: Any, request: RerankRequest) -> ParsedResponse:
    return simple_response(body, request)


ADAPTER = HttpAdapter(
    provider="hosted_vllm",
    params=(
        Param("instruction", "string"),
        Param("truncate_prompt_tokens", "integer", minimum=-1),
        Param("truncation_side", "string", ("left", "right")),
        Param("max_tokens_per_query", "integer", minimum=1),
        Param("priority", "integer", scores=False),
    ),
    independent_scores=True,  # a cross-encoder: each document scored on its own
    build_request=build_request,
    parse_response=parse_response,
    capabilities=static(CAPABILITIES),
    auth=Bearer(required=False),
    key_env=("HOSTED_VLLM_API_KEY",),
    base_env=("HOSTED_VLLM_API_BASE",),
    default_base=None,
    score_kind="probability in [0, 1] (the model's activation, vLLM's default)",
    usage_kind="`tokens` (total, prompt)",
)
