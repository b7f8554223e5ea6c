"""Cohere rerank on Azure AI Foundry: ``azure_ai/<deployment or model>``.

The base is required (``AZURE_AI_API_BASE``); URL rules as in LiteLLM: a path ending in
``/v1/rerank`` or ``/v2/rerank`` is kept, one ending in ``/v1`` or ``/v2`` (e.g.
``…/providers/cohere/v2``) gets ``/rerank``, anything else gets ``/v1/rerank``; a query
string such as ``?api-version=…`` is kept (or given as the provider parameter ``api-version``).
Auth ``Authorization: Bearer $AZURE_AI_API_KEY``, or a Microsoft Entra ID token: ready, or
fetched by azure-identity (the ``azure`` extra), see :mod:`providers.auth.azure_entra`.

The API behind the URL is Cohere's, in the version the path names, so the body follows it
(:mod:`providers.adapters.cohere`): v2 takes strings and ``max_tokens_per_doc``, v1 takes objects with
``rank_fields`` and ``max_chunks_per_doc``; the rest is done client-side.  LiteLLM sends the
v1 body to v2 routes too, so ``max_tokens_per_doc`` is lost there and v1 fields are
rejected.  Scores are probabilities in [0, 1].  Usage is Cohere's ``meta``
(``{"billed_units": {"search_units": N}, "tokens": {...}}``, whichever are reported).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from providers.adapter import Capabilities, HttpAdapter, ParsedResponse, WireRequest
from providers.adapters import cohere
from providers.auth.azure_entra import CLIENT_ID, CLIENT_SECRET, SCOPE_PARAM, TENANT_ID, TOKEN, AzureEntraAuth
from providers.deployment import Deployment
from providers.params import Param
from providers.types import RerankRequest

__all__ = ["ADAPTER", "build_request", "capabilities", "parse_response", "rerank_url"]


def rerank_url(base: str) -> tuple[str, int]:
    """The endpoint URL for a base, and the Cohere API version it speaks."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    for version in (1, 2):
        if path.endswith(f"/v{version}/rerank"):
            break
        if path.endswith(f"/v{version}"):
            path += "/rerank"
            break
    else:
        version, path = 1, f"{path}/v1/rerank"
    return urlunsplit(parts._replace(path=path)), version


def capabilities(deployment: Deployment) -> Capabilities:
    # Cohere's own capabilities and its 1,000-documents-per-request guidance apply on Azure.
    _, version = rerank_url(deployment.credentials.api_base or "")
    return cohere.V1 if version == 1 else cohere.V2


def build_request(base: str, deployment: Deployment, request: RerankRequest) -> WireRequest:
    url, version = rerank_url(base)
    return WireRequest(url=url, body=cohere.cohere_body(deployment, request, version))


def parse_response(body: Any, request: RerankRequest) -> ParsedResponse:
    return cohere.parse_response(body, request)


ADAPTER = HttpAdapter(
    provider="azure_ai",
    params=(Param("api-version", "string", into="query", scores=False),),
    independent_scores=True,  # a cross-encoder: each document scored on its own
    build_request=build_request,
    parse_response=parse_response,
    capabilities=capabilities,
    variants={"v1": cohere.V1, "v2": cohere.V2},
    auth=AzureEntraAuth(),
    auth_kind=(
        "Bearer: the key, else a Microsoft Entra ID token (ready, or via azure-identity: "
        "extra `rerank-runner[azure]`)"
    ),
    key_env=("AZURE_AI_API_KEY",),
    base_env=("AZURE_AI_API_BASE",),
    param_env={
        TOKEN: ("AZURE_AD_TOKEN",),
        TENANT_ID: ("AZURE_TENANT_ID",),
        CLIENT_ID: ("AZURE_CLIENT_ID",),
        CLIENT_SECRET: ("AZURE_CLIENT_SECRET",),
        SCOPE_PARAM: (),
    },
    default_base=None,
    score_kind="probability in [0, 1]",
    usage_kind="`billed_units.search_units`, `tokens` (Cohere's `meta`)",
)
