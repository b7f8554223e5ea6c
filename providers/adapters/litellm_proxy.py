"""A LiteLLM proxy as a provider: ``litellm_proxy/<the proxy's public model_name>``.

``POST {base}/v1/rerank`` with a Cohere v1-shaped body whose ``model`` is the proxy's
public model name.  The base (``LITELLM_PROXY_API_BASE``) is required: unlike LiteLLM we
never fall back to api.cohere.com, nor to ``COHERE_API_KEY`` for the key.  A base whose
path already ends in ``/rerank`` (the proxy serves ``/rerank``, ``/v1/rerank`` and
``/v2/rerank``) is used as is and one ending in ``/v1`` gets ``/rerank``; anything else gets
``/v1/rerank`` (LiteLLM's rule).  Auth ``Authorization: Bearer $LITELLM_PROXY_API_KEY``
(the proxy's master key or a virtual key).

What becomes of a field depends on the deployment behind the public name, and LiteLLM drops
several there without a word (``max_chunks_per_doc`` on Cohere v2, ``rank_fields`` on Jina,
``top_n`` on DeepInfra), so only ``model``, ``query``, string ``documents`` and ``top_n`` are
sent: objects are rendered with ``rank_fields``, truncation and chunking are done here, and
results are sorted and cut to ``top_n`` here too.  Scores are the backend's (probabilities
for Cohere-like backends, raw logits for NVIDIA NIM or watsonx).  Usage is the response's
Cohere-style ``meta`` as the proxy reports it: ``{"billed_units": {...}, "tokens": {...}}``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from providers.adapter import Capabilities, HttpAdapter, ParsedResponse, WireRequest, static
from providers.adapters import cohere
from providers.adapters.shapes import simple_body
from providers.deployment import Deployment
from providers.types import RerankRequest

__all__ = ["ADAPTER", "CAPABILITIES", "build_request", "parse_response", "rerank_url"]

# No per-request limit of the proxy's own; the backend's applies and is unknown here.
CAPABILITIES = Capabilities(object_documents=False, top_n=True)


def rerank_url(base: str) -> str:
    parts = urlsplit(base.rstrip("/"))
    path = parts.path
    if not path.endswith("/rerank"):
        path += "/rerank" if path.endswith("/v1") else "/v1/rerank"
    return urlunsplit(parts._replace(path=path))


def build_request(base: str, deployment: Deployment, request: RerankRequest) -> WireRequest:
    return WireRequest(url=rerank_url(base), body=simple_body(deployment.wire_model, request))


def parse_response(body: Any, request: RerankRequest) -> ParsedResponse:
    return cohere.parse_response(body, request)


ADAPTER = HttpAdapter(
    provider="litellm_proxy",
    build_request=build_request,
    parse_response=parse_response,
    capabilities=static(CAPABILITIES),
    key_env=("LITELLM_PROXY_API_KEY",),
    base_env=("LITELLM_PROXY_API_BASE",),
    default_base=None,
    score_kind="the backend deployment's (probability in [0, 1] for Cohere-like backends)",
    usage_kind="`billed_units`, `tokens` from `meta`, as the proxy reports them",
)
