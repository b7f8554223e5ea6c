"""Jina AI rerank: ``jina_ai/<model>``, e.g. ``jina_ai/jina-reranker-v2-base-multilingual``.

``POST https://api.jina.ai/v1/rerank``.  A custom api_base (``JINA_AI_API_BASE``) is used as
given when it already ends in ``/rerank``, gets ``/rerank`` after a path ending in ``/v1``, and
``/v1/rerank`` otherwise, like the other providers' bases (LiteLLM instead replaces the base's
whole path with ``/v1/rerank``, which breaks a gateway serving Jina under a prefix).  Auth
``Authorization: Bearer <key>`` from ``JINA_AI_API_KEY`` (or ``JINA_API_KEY``, ``JINA_AI_TOKEN``).

Body ``{model, query, documents: [str], top_n?, return_documents: false}``.  Jina has no
``rank_fields``, so object documents are rendered to text here using them (LiteLLM sends the
objects and drops ``rank_fields``); ``max_tokens_per_doc`` and ``max_chunks_per_doc`` are not
Jina fields and are done client-side.  ``return_documents: false`` is always sent: Jina echoes
every document back unless told not to, and documents are filled in from the line when asked
for.  Scores are the model's relevance scores (higher is better, roughly [0, 1], not
calibrated across models).  Usage is Jina's ``usage``:
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
    """The base with the endpoint appended unless it is there (a query string is kept)."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    if not path.endswith("/rerank"):
        path += "/rerank" if path.endswith("/v1") else RERANK_PATH
    return urlunsplit(parts._replace(path=path))


def build_request(base: str, deployment: Deployment, request: RerankRequest) -> WireRequest:
    body = simple_body(deployment.wire_model, request, return_documents=False)
    return WireRequest(url=rerank_url(base), body=body)


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
