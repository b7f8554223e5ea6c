"""Fireworks AI rerank: ``POST https://api.fireworks.ai/inference/v1/rerank``.

The wire model is ``fireworks/<name>`` (``fireworks_ai/qwen3-reranker-8b`` sends
``fireworks/qwen3-reranker-8b``); a full ``accounts/<account>/models/<name>`` id is
sent as given.  api_base: used as is when it ends in ``/rerank``, ``/rerank`` is added
to one ending in ``/v1`` (or ``/inference/v1``), otherwise ``/inference/v1/rerank``.
Body ``{model, query, documents: [str], top_n?, return_documents: false}``: strings only
(objects are rendered with ``rank_fields``); ``max_tokens_per_doc`` and
``max_chunks_per_doc`` are done client-side.  Auth ``Authorization: Bearer <key>``.
Scores are probabilities in [0, 1].  Usage is Fireworks' token counts, reported as
``{"tokens": {"prompt_tokens", "total_tokens", ...}}`` (tokens, not search units).
"""

from __future__ import annotations

from typing import Any

from providers.adapter import Capabilities, HttpAdapter, ParsedResponse, WireRequest, static
from providers.adapters.shapes import simple_body, simple_response
from providers.deployment import Deployment
from providers.types import RerankRequest

__all__ = [
    "ADAPTER",
    "CAPABILITIES",
    "DEFAULT_BASE",
    "build_request",
    "parse_response",
    "rerank_url",
    "wire_model",
]

DEFAULT_BASE = "https://api.fireworks.ai/inference/v1"
CAPABILITIES = Capabilities(object_documents=False, top_n=True)


def rerank_url(base: str) -> str:
    base = base.rstrip("/")
    if base.endswith("/rerank"):
        return base
    if base.endswith("/v1"):
        return f"{base}/rerank"
    return f"{base}/inference/v1/rerank"


def wire_model(deployment: Deployment) -> str:
    name = deployment.wire_model.removeprefix("fireworks_ai/")
    return name if name.startswith(("fireworks/", "accounts/")) else f"fireworks/{name}"


def build_request(base: str, deployment: Deployment, request: RerankRequest) -> WireRequest:
    body = simple_body(wire_model(deployment), request, return_documents=False)
    return WireRequest(url=rerank_url(base), body=body)


def parse_response(body: Any, request: RerankRequest) -> ParsedResponse:
    return simple_response(body, request, key="data" if "data" in body else "results")


ADAPTER = HttpAdapter(
    provider="fireworks_ai",
    build_request=build_request,
    parse_response=parse_response,
    capabilities=static(CAPABILITIES),
    key_env=("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY", "FIREWORKS_AI_TOKEN"),
    base_env=("FIREWORKS_API_BASE",),
    default_base=DEFAULT_BASE,
    score_kind="probability in [0, 1]",
    usage_kind="`tokens` (prompt, total; never as search units)",
)
