"""DeepInfra rerank through its native inference API (not the OpenAI-compatible one).

``POST {base without "openai"}/inference/<model>``: the default base
``https://api.deepinfra.com/v1/openai`` gives ``https://api.deepinfra.com/v1/inference/<model>``;
a bare ``http://host:port`` base gives ``http://host:port/inference/<model>``.  Only the
path loses ``openai`` (LiteLLM also rewrites a host containing it).  The model appears
only in the URL.  Body ``{queries: [query] * len(documents), documents: [str]}``: one
query per document, strings only (objects are rendered with ``rank_fields``); there is
no ``top_n``, ``max_tokens_per_doc`` or ``max_chunks_per_doc``, so all three are done
client-side.  Auth ``Authorization: Bearer $DEEPINFRA_API_KEY``.  The response's
``scores`` are in **input order**, one per document; they are mapped to indices here and
sorted and cut to ``top_n`` by the shared path.  Scores are the model's probabilities
in [0, 1].  Usage ``{"tokens": {"input_tokens": N}}`` from the body's ``input_tokens``;
the body's ``request_id`` is the response id.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from providers import contract
from providers.adapter import Capabilities, HttpAdapter, ParsedResponse, WireRequest, static
from providers.deployment import Deployment
from providers.params import Param
from providers.types import RankedDocument, RerankRequest, sort_and_cut

__all__ = ["ADAPTER", "CAPABILITIES", "DEFAULT_BASE", "build_request", "inference_url", "parse_response"]

DEFAULT_BASE = "https://api.deepinfra.com/v1/openai"
CAPABILITIES = Capabilities(object_documents=False, top_n=False)


def inference_url(base: str, model: str) -> str:
    parts = urlsplit(base)
    path = "/".join(s for s in parts.path.replace("openai", "").split("/") if s)
    root = urlunsplit((parts.scheme, parts.netloc, f"/{path}" if path else "", "", ""))
    return f"{root}/inference/{model}"


def build_request(base: str, deployment: Deployment, request: RerankRequest) -> WireRequest:
    documents = list(request.documents)
    body = {"queries": [request.query] * len(documents), "documents": documents}
    return WireRequest(url=inference_url(base, deployment.wire_model), body=body)


def parse_response(body: Any, request: RerankRequest) -> ParsedResponse:
    scores = body["scores"]
    if not isinstance(scores, list) or len(scores) != len(request.documents):
        raise ValueError(f"expected {len(request.documents)} scores, got {scores!r:.80}")
    results = [RankedDocument(index=i, relevance_score=contract.score(s)) for i, s in enumerate(scores)]
    tokens = body.get("input_tokens")
    usage = {"tokens": {"input_tokens": tokens}} if isinstance(tokens, int) else None
    request_id = body.get("request_id")
    return ParsedResponse(
        results=sort_and_cut(results, None),
        response_id=request_id if isinstance(request_id, str) else None,
        usage=usage,
    )


ADAPTER = HttpAdapter(
    provider="deepinfra",
    params=(
        Param("instruction", "string"),
        Param("service_tier", "string", ("default", "priority"), scores=False),
        Param("webhook", "string", scores=False),
    ),
    build_request=build_request,
    parse_response=parse_response,
    capabilities=static(CAPABILITIES),
    key_env=("DEEPINFRA_API_KEY",),
    base_env=("DEEPINFRA_API_BASE",),
    default_base=DEFAULT_BASE,
    score_kind="probability in [0, 1]",
    usage_kind="`tokens.input_tokens`",
)
