"""Jina AI rerank: ``jina_ai/<model>``, e.g. ``jina_ai/jina-reranker-v2-base-multilingual``.

``POST https://api.jina.ai/v1/rerank``.  As in LiteLLM, an api_base (``JINA_AI_API_BASE``)
only chooses scheme, host and port: its path is **replaced** by ``/v1/rerank``.  Auth
``Authorization: Bearer <key>`` from ``JINA_AI_API_KEY`` (or ``JINA_API_KEY``, ``JINA_AI_TOKEN``).

Body ``{model, query, documents: [str], top_n?}``.  Jina has no ``rank_fields``, so object
documents are rendered to text here using them (LiteLLM sends the objects and drops
``rank_fields``); ``max_tokens_per_doc`` and ``max_chunks_per_doc`` are not Jina fields and are
done client-side.  ``return_documents`` is not sent (its default is false; documents are
filled in from the line).  Scores are the model's relevance scores (higher is better,
roughly [0, 1], not calibrated across models).  Usage is Jina's ``usage``:
``{"tokens": {"total_tokens", "prompt_tokens"}}`` (whichever are reported).  Throttling is
429; an exhausted balance is 402 (``quota_exceeded``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from providers.adapter import Capabilities, HttpAdapter, ParsedResponse, WireRequest, static
from providers.adapters.shapes import simple_body, simple_response
from providers.deployment import Deployment
from providers.types import RerankRequest

__all__ = [
    "ADAPTER",
    "CAPABILITIES",
    "DEFAULT_BASE",
    "RERANK_PATH",
    "build_request",
    "parse_response",
    "rerank_url",
]

DEFAULT_BASE = "https://api.jina.ai/v1"
RERANK_PATH = "/v1/rerank"
# Jina documents no per-request document limit.
CAPABILITIES = Capabilities(object_documents=False, top_n=True)


def rerank_url(base: str) -> str:
    return urlunsplit(urlsplit(base)._replace(path=RERANK_PATH))


def build_request(base: str, deployment: Deployment, request: RerankRequest) -> WireRequest:
    return WireRequest(url=rerank_url(base), body=simple_body(deployment.wire_model, request))


def parse_response(body: Any, request: RerankRequest) -> ParsedResponse:
    return simple_response(body, request)


ADAPTER = HttpAdapter(
    provider="jina_ai",
    independent_scores=True,  # a cross-encoder: each document scored on its own
    build_request=build_request,
    parse_response=parse_response,
    capabilities=static(CAPABILITIES),
    key_env=("JINA_AI_API_KEY", "JINA_API_KEY", "JINA_AI_TOKEN"),
    base_env=("JINA_AI_API_BASE",),
    default_base=DEFAULT_BASE,
    score_kind="model relevance score (higher is better; roughly [0, 1], not calibrated)",
    usage_kind="`tokens` (total, prompt)",
)
