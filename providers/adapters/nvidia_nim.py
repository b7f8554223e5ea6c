"""NVIDIA NIM reranking: the hosted "retrieval" route and the NIM-native ``/v1/ranking``.

``nvidia_nim/<model>``: ``POST {base}/v1/retrieval/<model>/reranking`` (NVIDIA's hosted
API, default base ``https://ai.api.nvidia.com``); the model goes into the URL as given
and into the body with the one known URL form mapped back: an ``_`` between two digits is a
version's dot (``llama-3_2-…`` -> ``llama-3.2-…``); every other ``_`` is kept (LiteLLM turns
every ``_`` into ``.``, breaking names that really hold one).
``nvidia_nim/ranking/<model>``: ``POST {base}/v1/ranking``, what a self-hosted NIM
container serves; the body model is the name after ``ranking/``, unchanged.

Body ``{model, query: {text}, passages: [{text}], truncate: "END"}``: a passage longer than the
model's context is cut at its end rather than failing the line, unless the provider parameter
``truncate`` says ``NONE`` (NVIDIA's enum is ``NONE``/``END``).  On the hosted route passages
are text only (objects are rendered with ``rank_fields``); ``/v1/ranking`` also takes image
passages, so an image document (``{"image": "data:image/...;base64,..."}``, optionally with a
``text``) goes as ``{image}`` / ``{text, image}``.  ``top_k`` is never
sent: ``/v1/ranking`` rejects it and the hosted API does not document it, so ``top_n``
is applied client-side after sorting.  Auth ``Authorization: Bearer $NVIDIA_NIM_API_KEY``,
required for NVIDIA's hosted API, optional for a self-hosted base.  Scores are **raw
logits** (unbounded, often negative).  Usage: the response's ``usage`` token counts as
``{"tokens": {...}}`` when present, else none.  End-of-life models answer HTTP 410
(an ``invalid_request`` error carrying NVIDIA's message).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from providers.adapter import Capabilities, HttpAdapter, ParsedResponse, WireRequest
from providers.adapters.shapes import parse_results
from providers.adapters.usage import token_usage
from providers.auth import Bearer
from providers.deployment import Deployment
from providers.params import Param
from providers.render import document_text, is_image
from providers.types import Document, RerankRequest

__all__ = [
    "ADAPTER",
    "CAPABILITIES",
    "DEFAULT_BASE",
    "RANKING",
    "RANKING_PREFIX",
    "VERSION_UNDERSCORE",
    "build_request",
    "capabilities",
    "is_ranking",
    "parse_response",
    "rerank_url",
    "wire_model",
]

DEFAULT_BASE = "https://ai.api.nvidia.com"
RANKING_PREFIX = "ranking/"
CAPABILITIES = Capabilities(object_documents=False, top_n=False, max_documents=512)
"""512 passages per request: NVIDIA's API reference for the rerankqa models and the NIM docs."""
RANKING = Capabilities(object_documents=False, top_n=False, max_documents=512, image_documents=True)
"""``/v1/ranking`` takes image passages too."""
VERSION_UNDERSCORE = re.compile(r"(?<=\d)_(?=\d)")


def is_ranking(deployment: Deployment) -> bool:
    return deployment.wire_model.startswith(RANKING_PREFIX)


def _without_v1(base: str) -> str:
    return base.removesuffix("/v1")


def rerank_url(base: str, deployment: Deployment) -> str:
    base = base.rstrip("/")
    if is_ranking(deployment):
        return base if base.endswith("/ranking") else f"{_without_v1(base)}/v1/ranking"
    if "/retrieval/" in base:
        return base
    return f"{_without_v1(base)}/v1/retrieval/{deployment.wire_model}/reranking"


def wire_model(deployment: Deployment) -> str:
    if is_ranking(deployment):
        return deployment.wire_model.removeprefix(RANKING_PREFIX)
    return VERSION_UNDERSCORE.sub(".", deployment.wire_model)


def capabilities(deployment: Deployment) -> Capabilities:
    return RANKING if is_ranking(deployment) else CAPABILITIES


def _passage(document: Document, rank_fields: list[str] | None) -> dict[str, Any]:
    if isinstance(document, dict) and is_image(document):
        text = document.get("text")
        return (
            {"text": text, "image": document["image"]}
            if isinstance(text, str)
            else {"image": document["image"]}
        )
    return {"text": document_text(document, rank_fields)}


def build_request(base: str, deployment: Deployment, request: RerankRequest) -> WireRequest:
    body: dict[str, Any] = {
        "model": wire_model(deployment),
        "query": {"text": request.query},
        "passages": [_passage(d, request.rank_fields) for d in request.documents],
        "truncate": "END",
    }
    return WireRequest(url=rerank_url(base, deployment), body=body)


def parse_response(body: Any, request: RerankRequest) -> ParsedResponse:
    return ParsedResponse(
        results=parse_results(body, key="rankings", score="logit"),
        usage=token_usage(body.get("usage")),
    )


def _hosted(deployment: Deployment) -> bool:
    """NVIDIA's hosted API is the target: a key is required there (self-hosted NIM containers
    take requests without one)."""
    base = deployment.credentials.api_base
    host = (urlsplit(base).hostname or "") if base else "ai.api.nvidia.com"
    return host == "nvidia.com" or host.endswith(".nvidia.com")


ADAPTER = HttpAdapter(
    provider="nvidia_nim",
    params=(Param("truncate", "string", ("NONE", "END")),),
    independent_scores=True,  # a cross-encoder: each document scored on its own
    build_request=build_request,
    parse_response=parse_response,
    capabilities=capabilities,
    variants={"retrieval": CAPABILITIES, "ranking": RANKING},
    auth=Bearer(required=_hosted),
    auth_kind="Bearer (optional for a self-hosted base)",
    key_env=("NVIDIA_NIM_API_KEY",),
    base_env=("NVIDIA_NIM_API_BASE",),
    default_base=DEFAULT_BASE,
    score_kind="raw logit (unbounded, can be negative)",
    usage_kind="`tokens` (the response's `usage`), when reported",
)
