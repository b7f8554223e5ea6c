"""Hugging Face text-embeddings-inference (TEI) ``/rerank``: a self-hosted server or an
Inference Endpoint running TEI.

``POST {base}/rerank`` (``/rerank`` is added unless the base ends with it).  There is no
usable default: the endpoint *is* the model (the model name is sent nowhere), so the
base must be given (``HF_API_BASE`` / ``HUGGINGFACE_API_BASE`` or ``api_base``).  Auth
``Authorization: Bearer $HUGGINGFACE_API_KEY`` when a key is set, no header otherwise
(a local TEI needs none).  Body ``{query, texts: [str], raw_scores: false,
return_text: false, truncate: true}``: TEI takes strings only (objects are rendered with
``rank_fields``), ignores ``top_n`` (it is applied client-side) and has no per-document
token limit, so ``max_tokens_per_doc`` and ``max_chunks_per_doc`` are done client-side;
``truncate: true`` cuts a pair longer than the model's context instead of failing.
TEI answers at most ``--max-client-batch-size`` texts per request (default 32), so
longer lists are split.  Response: a bare list ``[{index, score}]``.  Scores are
probabilities in [0, 1] (``raw_scores: false`` applies the model's activation).
TEI reports no usage in the body; its ``x-compute-tokens`` response header (the tokens it ran,
after truncation) is the usage, ``{"tokens": {"compute_tokens": N}}``, summed over a line's
requests; without the header there is none (nothing is estimated).  The provider parameters
``truncate`` (false: an over-long pair is an error) and ``truncation_direction``
(``Left``/``Right``) replace the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from providers.adapter import Capabilities, HttpAdapter, ParsedResponse, WireRequest, static
from providers.adapters.shapes import parse_results
from providers.auth import Bearer
from providers.deployment import Deployment
from providers.params import Param
from providers.types import RerankRequest

__all__ = [
    "ADAPTER",
    "CAPABILITIES",
    "MAX_CLIENT_BATCH_SIZE",
    "build_request",
    "parse_headers",
    "parse_response",
    "rerank_url",
]

MAX_CLIENT_BATCH_SIZE = 32
"""TEI's default ``--max-client-batch-size``; a server started with a lower one answers 413."""
CAPABILITIES = Capabilities(object_documents=False, top_n=False, max_documents=MAX_CLIENT_BATCH_SIZE)


def rerank_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/rerank") else f"{base}/rerank"


def build_request(base: str, deployment: Deployment, request: RerankRequest) -> WireRequest:
    body: dict[str, Any] = {
        "query": request.query,
        "texts": list(request.documents),
        "raw_scores": False,
        "return_text": False,
        "truncate": True,
    }
    return WireRequest(url=rerank_url(base), body=body)


def parse_headers(headers: Mapping[str, str], parsed: ParsedResponse) -> ParsedResponse:
    count = headers.get("x-compute-tokens", "")
    if not count.isascii() or not count.isdigit():
        return parsed  # absent or not a count: no usage rather than a guess
    return replace(parsed, usage={"tokens": {"compute_tokens": int(count)}})


def parse_response(body: Any, request: RerankRequest) -> ParsedResponse:
    if not isinstance(body, list):
        raise TypeError(f"expected a JSON list of ranks, got {type(body).__name__}")
    return ParsedResponse(results=parse_results({"ranks": body}, key="ranks", score="score"))


ADAPTER = HttpAdapter(
    provider="huggingface",
    params=(Param("truncate", "boolean"), Param("truncation_direction", "string", ("Left", "Right"))),
    independent_scores=True,  # a cross-encoder: each document scored on its own
    build_request=build_request,
    parse_response=parse_response,
    parse_headers=parse_headers,
    capabilities=static(CAPABILITIES),
    auth=Bearer(required=False),
    key_env=("HUGGINGFACE_API_KEY",),
    base_env=("HF_API_BASE", "HUGGINGFACE_API_BASE"),
    default_base=None,
    score_kind="probability in [0, 1] (raw_scores=false)",
    usage_kind="`tokens.compute_tokens` (the `x-compute-tokens` header)",
)
