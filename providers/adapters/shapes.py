"""The request and response shapes most rerank APIs share (Cohere's, give or take a name)."""

from __future__ import annotations

from typing import Any

from providers import contract
from providers.adapter import ParsedResponse
from providers.adapters.usage import token_usage
from providers.types import RankedDocument, RerankRequest

__all__ = ["parse_results", "simple_body", "simple_response"]


def simple_body(
    model: str, request: RerankRequest, *, top_n_key: str = "top_n", **extra: Any
) -> dict[str, Any]:
    """``{model, query, documents, top_n?}`` plus any fixed ``extra`` fields."""
    body: dict[str, Any] = {
        "model": model,
        "query": request.query,
        "documents": list(request.documents),
        **extra,
    }
    if request.top_n is not None:
        body[top_n_key] = request.top_n
    return body


def parse_results(
    body: dict[str, Any], key: str = "results", score: str = "relevance_score"
) -> list[RankedDocument]:
    """``{key: [{index, <score>}]}``, each index an integer and each score a finite number
    (:mod:`providers.contract`); ranges, repeats and counts are checked by the dispatcher."""
    items = body[key]
    if not isinstance(items, list):
        raise contract.ContractError(f"{key!r} is a {type(items).__name__}, not a list")
    return [
        RankedDocument(index=contract.index(item["index"]), relevance_score=contract.score(item[score]))
        for item in items
    ]


def simple_response(body: Any, request: RerankRequest, *, key: str = "results") -> ParsedResponse:
    """Results under ``key``, the body's ``id`` and its ``usage`` token counts as reported."""
    response_id = body.get("id")
    return ParsedResponse(
        results=parse_results(body, key=key),
        response_id=response_id if isinstance(response_id, str) else None,
        usage=token_usage(body.get("usage")),
    )
