"""The unified, Cohere-shaped rerank request and response every adapter speaks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from providers.lexicon import CollectionStats

__all__ = [
    "HTTP_TRANSPORTS",
    "MAX_RESPONSE_BYTES",
    "Document",
    "HttpTransport",
    "RankedDocument",
    "RerankRequest",
    "RerankResponse",
    "sort_and_cut",
]

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""Default cap on an answer's body: a 1,000-document ranking is about 60 KB, or a few MB with
the documents echoed back; a bigger 2xx body is a bad response (``RR_MAX_RESPONSE_BYTES``).
Here, not in :mod:`providers.wire`, so settings read it without importing httpx."""

Document = str | dict[str, Any]
HttpTransport = Literal["aiohttp", "httpcore"]
"""The workers' HTTP transports (:mod:`providers.transport`); named here, where the settings
can read it without importing aiohttp (enqueue.py never sends a request)."""
HTTP_TRANSPORTS: tuple[HttpTransport, ...] = ("aiohttp", "httpcore")


@dataclass(frozen=True, slots=True)
class RerankRequest:
    query: str
    documents: Sequence[Document]
    top_n: int | None = None
    rank_fields: list[str] | None = None
    return_documents: bool = False
    max_chunks_per_doc: int | None = None
    max_tokens_per_doc: int | None = None
    provider_params: Mapping[str, Any] | None = None
    """The line's provider-specific parameters (:mod:`providers.params`), checked at enqueue."""
    collection: CollectionStats | None = None
    """Corpus statistics for the local lexical models (``enqueue.py --corpus``); never sent to a
    provider.  None: a lexical model takes its statistics from the line's own documents."""


@dataclass(frozen=True, slots=True)
class RankedDocument:
    index: int
    relevance_score: float


@dataclass(slots=True)
class RerankResponse:
    """What a provider answered, already sorted by score and cut to ``top_n``.

    ``usage`` is the provider's own accounting (``billed_units``, ``tokens``) or
    ``None`` when it reported none; nothing is estimated.
    """

    results: list[RankedDocument]
    response_id: str | None = None
    request_id: str | None = None
    usage: dict[str, Any] | None = None
    attempts: int = 1
    """HTTP attempts, retries included, over all requests."""
    requests: int = 1
    """Requests the line took (more than one when its documents were split)."""
    deployment: str | None = None
    """Which deployment served the line."""
    fallback_from: str | None = None
    """The model the line asked for, when a fallback served it instead."""


def sort_and_cut(results: list[RankedDocument], top_n: int | None) -> list[RankedDocument]:
    """Highest score first (ties keep input order), at most ``top_n``."""
    ordered = sorted(results, key=lambda r: (-r.relevance_score, r.index))
    return ordered if top_n is None else ordered[:top_n]
