"""The contract every HTTP provider adapter fulfils: data plus two pure hooks.

``build_request`` turns a request the endpoint can take into what goes on the
wire; ``parse_response`` turns the provider's JSON body into results whose
``index`` points into that request's documents.  Neither does I/O.  What the
endpoint can take natively is declared as :class:`Capabilities`; the shared path
(:mod:`providers.planner`) renders, truncates, chunks and splits everything
else client-side before the hooks see it; auth lives in :mod:`providers.auth`, the
HTTP exchange and its error mapping in :mod:`providers.wire`, and planning once
per line, retries and failover in :mod:`providers.dispatcher`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from providers.auth import BEARER, Auth
from providers.deployment import Deployment
from providers.errors import ConfigurationError
from providers.params import Param
from providers.types import RankedDocument, RerankRequest

__all__ = ["Capabilities", "HttpAdapter", "ParsedResponse", "WireRequest", "resolve_base", "static"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the endpoint honours itself; anything else is done client-side."""

    object_documents: bool = False
    """Takes objects (with ``rank_fields``); otherwise documents are rendered to text."""
    top_n: bool = True
    max_tokens_per_doc: bool = False
    max_chunks_per_doc: bool = False
    max_documents: int | None = None
    """Per-request document limit; longer lists are split and merged."""
    image_documents: bool = False
    """Takes image documents (``{"image": "data:image/..."}``); a line holding one is refused
    with a clear error by an endpoint that does not."""


@dataclass(frozen=True, slots=True)
class WireRequest:
    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class ParsedResponse:
    results: list[RankedDocument]
    response_id: str | None = None
    usage: dict[str, Any] | None = None
    page_token: str | None = None
    """More results to fetch (Bedrock's ``nextToken``): the adapter's ``next_page`` asks for them."""


@dataclass(frozen=True, slots=True)
class HttpAdapter:
    provider: str
    """The model prefix, e.g. ``cohere``."""
    build_request: Callable[[str, Deployment, RerankRequest], WireRequest]
    """(base URL, deployment, request) -> wire request."""
    parse_response: Callable[[Any, RerankRequest], ParsedResponse]
    capabilities: Callable[[Deployment], Capabilities]
    auth: Auth = BEARER
    key_env: tuple[str, ...] = ()
    """Environment variables a key is read from, first set wins (LiteLLM's names)."""
    base_env: tuple[str, ...] = ()
    param_env: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Provider settings read from the environment, by ``litellm_params`` name."""
    default_base: str | Callable[[Deployment], str | None] | None = None
    """None: the user must give a base URL (``api_base`` or one of ``base_env``)."""
    parse_headers: Callable[[Mapping[str, str], ParsedResponse], ParsedResponse] | None = None
    """A second pure parse hook, for what a provider reports in response headers rather than the
    body (TEI's token count): (headers, the parsed body) -> the parsed response."""
    next_page: Callable[[WireRequest, str], WireRequest] | None = None
    """The request for the page after a ``page_token`` (the request it answered, the token)."""
    params: tuple[Param, ...] = ()
    """The provider-specific parameters it forwards (:mod:`providers.params`); any other key
    is refused."""
    variants: Mapping[str, Capabilities] = field(default_factory=dict)
    """The documented variants ``capabilities`` chooses between by deployment (e.g. Cohere's v1
    and v2 routes), by name; empty when it answers the same for every deployment."""
    may_omit: bool = False
    """The provider documents answering with fewer results than asked for (a score threshold,
    say); otherwise a short answer is a bad response.  No built-in provider does."""
    independent_scores: bool = False
    """True when a document's score depends only on the query and that document (a
    cross-encoder scoring each pair), never on the other candidates: only then may the score
    cache (:mod:`jobs.cache`) send just the uncached documents of a line.  False (the safe
    default) for listwise or LLM rerankers, proxies of unknown models, and anything whose
    scores depend on the candidate set; their lines are cached whole."""
    score_kind: str = "probability in [0, 1]"
    """What a relevance score means.  This and the fields below are read only by
    :mod:`providers.catalog`, which writes the provider table in ``docs/providers.md``."""
    usage_kind: str = "none"
    """The usage the provider reports, in its own field names."""
    auth_kind: str | None = None
    """How the table names ``auth``; None derives it, which only a ``Bearer`` whose ``required``
    is a bool allows."""


def static(capabilities: Capabilities) -> Callable[[Deployment], Capabilities]:
    return lambda _deployment: capabilities


def resolve_base(adapter: HttpAdapter, deployment: Deployment) -> str:
    """The deployment's base URL, else the adapter's default; a clear error naming the
    variables to set when there is neither."""
    base = deployment.credentials.api_base
    if not base:
        default = adapter.default_base
        base = default(deployment) if callable(default) else default
    if not base:
        names = " or ".join(adapter.base_env) if adapter.base_env else "api_base"
        raise ConfigurationError(
            f"no base URL for {deployment.model!r}: set {names} (or api_base in the model list)",
            provider=adapter.provider,
        )
    return base.rstrip("/")
