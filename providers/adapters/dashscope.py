"""Alibaba Cloud Model Studio (DashScope) rerank: ``dashscope/<model>``, e.g. ``dashscope/qwen3-rerank``.

``POST https://dashscope.aliyuncs.com/compatible-api/v1/reranks`` (the OpenAI-compatible
route).  api_base (``DASHSCOPE_API_BASE_RERANK``): used as is when it ends in ``/reranks`` or
``/rerank``; a chat-style ``…/compatible-mode/v1`` base is moved to the rerank route
``…/compatible-api/v1/reranks``; otherwise ``/reranks`` is appended (e.g. to
``https://dashscope-intl.aliyuncs.com/compatible-api/v1``).  Auth ``Authorization: Bearer
$DASHSCOPE_API_KEY``.

Body ``{model, query, documents: [str], top_n?}``: strings only, so objects are rendered
with ``rank_fields``, and ``max_tokens_per_doc``/``max_chunks_per_doc`` are done client-side
(LiteLLM drops all three).  ``return_documents`` is not sent.  Scores are relevance in
[0, 1].  Usage is ``{"tokens": {"total_tokens": N}}`` from the response's ``usage``.  Errors
come as ``{code, message, request_id}``; that envelope on a 200 is a bad response carrying
DashScope's code and message.

Two aliases of the same API, as in LiteLLM: ``qwencloud/<model>`` (Qwen Cloud, the
international endpoint ``https://dashscope-intl.aliyuncs.com/compatible-api/v1``; key
``QWENCLOUD_API_KEY``, base ``QWENCLOUD_API_BASE_RERANK``) and ``qwen_ai_platform/<model>`` (the
mainland endpoint; key ``QWEN_AI_PLATFORM_API_KEY``, base ``QWEN_AI_PLATFORM_API_BASE_RERANK``).
Each reads only its own variables: a key of one region does not open the other.
"""

from __future__ import annotations

from dataclasses import replace
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
    "INTL_BASE",
    "MAX_DOCUMENTS",
    "QWENCLOUD",
    "QWEN_AI_PLATFORM",
    "build_request",
    "parse_response",
    "rerank_url",
]

DEFAULT_BASE = "https://dashscope.aliyuncs.com/compatible-api/v1"
INTL_BASE = "https://dashscope-intl.aliyuncs.com/compatible-api/v1"
CHAT_ROUTE, RERANK_ROUTE = "/compatible-mode/v1", "/compatible-api/v1"
MAX_DOCUMENTS = 500
"""Model Studio's "max number of documents" per request for qwen3-rerank and gte-rerank-v2."""
CAPABILITIES = Capabilities(object_documents=False, top_n=True, max_documents=MAX_DOCUMENTS)


def rerank_url(base: str) -> str:
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    if path.endswith(CHAT_ROUTE):
        path = path.removesuffix(CHAT_ROUTE) + RERANK_ROUTE
    if not path.endswith(("/reranks", "/rerank")):
        path += "/reranks"
    return urlunsplit(parts._replace(path=path))


def build_request(base: str, deployment: Deployment, request: RerankRequest) -> WireRequest:
    return WireRequest(url=rerank_url(base), body=simple_body(deployment.wire_model, request))


def parse_response(body: Any, request: RerankRequest) -> ParsedResponse:
    if isinstance(body, dict) and "code" in body and "results" not in body:
        raise ValueError(f"DashScope error {body['code']}: {body.get('message')}")
    return simple_response(body, request)


ADAPTER = HttpAdapter(
    provider="dashscope",
    independent_scores=True,  # a cross-encoder: each document scored on its own
    build_request=build_request,
    parse_response=parse_response,
    capabilities=static(CAPABILITIES),
    key_env=("DASHSCOPE_API_KEY",),
    base_env=("DASHSCOPE_API_BASE_RERANK",),
    default_base=DEFAULT_BASE,
    score_kind="probability in [0, 1]",
    usage_kind="`tokens.total_tokens`",
)
QWENCLOUD = replace(
    ADAPTER,
    provider="qwencloud",
    key_env=("QWENCLOUD_API_KEY",),
    base_env=("QWENCLOUD_API_BASE_RERANK",),
    default_base=INTL_BASE,
)
QWEN_AI_PLATFORM = replace(
    ADAPTER,
    provider="qwen_ai_platform",
    key_env=("QWEN_AI_PLATFORM_API_KEY",),
    base_env=("QWEN_AI_PLATFORM_API_BASE_RERANK",),
)
