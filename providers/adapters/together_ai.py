"""Together AI rerank: ``together_ai/<model>``, e.g. ``together_ai/mixedbread-ai/Mxbai-Rerank-Large-V2``.

``POST {base}/rerank``, default base ``https://api.together.ai/v1`` (``TOGETHER_AI_API_BASE``);
as in LiteLLM ``/rerank`` is appended to the base, so a custom base includes ``/v1`` (one
already ending in ``/rerank`` is used as is).  Auth ``Authorization: Bearer <key>`` from
``TOGETHER_API_KEY`` (or ``TOGETHER_AI_API_KEY``, ``TOGETHERAI_API_KEY``, ``TOGETHER_AI_TOKEN``).

Body ``{model, query, documents, top_n?, rank_fields?}``.  Together takes object documents
with ``rank_fields`` natively on Llama-Rank models (``Salesforce/Llama-Rank-V1`` and dedicated
endpoints of it), so they are sent as they are there; "all other rerank endpoints accept
documents only as a list of strings", so for every other model objects are rendered to text
here (the ``serverless`` variant).  ``max_tokens_per_doc`` and ``max_chunks_per_doc`` are not
Together fields and are done
here too (LiteLLM raises on the latter and drops the former).  ``return_documents`` is
never sent: documents are filled in from the line.  Scores are relevance in [0, 1].
Usage is the response's ``usage`` counts: ``{"tokens": {"prompt_tokens", "completion_tokens",
"total_tokens"}}`` (whichever are reported), else none.
"""

from __future__ import annotations

from typing import Any

from providers.adapter import Capabilities, HttpAdapter, ParsedResponse, WireRequest
from providers.adapters.shapes import simple_body, simple_response
from providers.deployment import Deployment
from providers.types import RerankRequest

__all__ = [
    "ADAPTER",
    "CAPABILITIES",
    "DEFAULT_BASE",
    "LLAMA_RANK",
    "build_request",
    "capabilities",
    "parse_response",
    "rerank_url",
]

DEFAULT_BASE = "https://api.together.ai/v1"
# Together documents no per-request document limit.
CAPABILITIES = Capabilities(object_documents=False, top_n=True)
LLAMA_RANK = Capabilities(object_documents=True, top_n=True)
"""Llama-Rank models rank JSON documents by ``rank_fields`` themselves."""


def capabilities(deployment: Deployment) -> Capabilities:
    return LLAMA_RANK if "llama-rank" in deployment.wire_model.lower() else CAPABILITIES


def rerank_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/rerank") else f"{base}/rerank"


def build_request(base: str, deployment: Deployment, request: RerankRequest) -> WireRequest:
    body = simple_body(deployment.wire_model, request)
    if request.rank_fields and any(isinstance(d, dict) for d in request.documents):
        body["rank_fields"] = request.rank_fields
    return WireRequest(url=rerank_url(base), body=body)


def parse_response(body: Any, request: RerankRequest) -> ParsedResponse:
    return simple_response(body, request)


ADAPTER = HttpAdapter(
    provider="together_ai",
    build_request=build_request,
    parse_response=parse_response,
    capabilities=capabilities,
    variants={"serverless": CAPABILITIES, "llama-rank": LLAMA_RANK},
    key_env=("TOGETHER_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHERAI_API_KEY", "TOGETHER_AI_TOKEN"),
    base_env=("TOGETHER_AI_API_BASE",),
    default_base=DEFAULT_BASE,
    score_kind="probability in [0, 1]",
    usage_kind="`tokens` (prompt, completion, total)",
)
