"""What a provider's answer must be before it counts as a ranking.

Adapters read indices and scores through :func:`index` and :func:`score`, which never coerce:
``1.9``, ``"0"`` and ``true`` are not indices, ``"0.5"``, ``true``, NaN and infinities are not
scores.  The dispatcher then holds every parsed answer to :func:`check`: indices in range and
unique, and as many results as the request asked for.  Any breach is a :class:`ContractError`,
which the dispatcher reports as a ``bad_response`` -- a wrong answer is never recorded as a success.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from providers.types import RankedDocument, RerankRequest

__all__ = ["ContractError", "check", "index", "index_from_id", "score"]


class ContractError(ValueError):
    """A provider's answer is not a ranking of the documents it was sent."""


def _kind(value: Any) -> str:
    return "boolean" if isinstance(value, bool) else type(value).__name__


def index(value: Any) -> int:
    """A JSON integer, as it is: floats, strings and booleans are refused, never truncated."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractError(f"result index {value!r:.40} is a {_kind(value)}, not an integer")
    return value


def index_from_id(value: Any) -> int:
    """An index the provider echoes back as the string id it was sent (``"0"``, ``"17"``)."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or value != str(int(value)):
        raise ContractError(f"record id {value!r:.40} is not one of the ids sent")
    return int(value)


def score(value: Any) -> float:
    """A finite JSON number: strings, booleans, NaN and infinities are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ContractError(f"score {value!r:.40} is a {_kind(value)}, not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ContractError(f"score {value!r} is not a finite number")
    return number


def check(results: Sequence[RankedDocument], request: RerankRequest, *, may_omit: bool = False) -> None:
    """Raise :class:`ContractError` unless ``results`` rank ``request``'s documents: integer
    indices in range, each at most once, finite scores, so no more results than documents; at
    least one result for a non-empty request; and, where no ``top_n`` was sent (every document
    asked for), one result per document unless the provider documents answering with a subset
    (``may_omit``).  Fewer than ``top_n`` is let through: a provider may stop early there."""
    documents = len(request.documents)
    seen: set[int] = set()
    for result in results:
        position = index(result.index)
        score(result.relevance_score)
        if not 0 <= position < documents:
            raise ContractError(f"result index {position} is outside the {documents} documents sent")
        if position in seen:
            raise ContractError(f"result index {position} appears more than once")
        seen.add(position)
    if documents and not results:
        raise ContractError(f"no results for {documents} documents")
    if request.top_n is None and not may_omit and len(results) < documents:
        raise ContractError(f"{len(results)} results for {documents} documents, all of them asked for")
