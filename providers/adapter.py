"""The contract every HTTP provider adapter fulfils: data plus two pure hooks.

``build_request`` turns the unified request into what goes on the wire and
raises :class:`~providers.errors.UnsupportedParameterError` before anything is
sent when the endpoint cannot honour the line.  ``parse_response`` turns the
provider's JSON body into unified results.  Neither does I/O; auth, HTTP,
retries and error mapping live in :mod:`providers.http`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from providers.deployment import Deployment
from providers.types import RankedDocument, RerankRequest


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


@dataclass(frozen=True, slots=True)
class HttpAdapter:
    provider: str
    """The model prefix, e.g. ``cohere``."""
    build_request: Callable[[Deployment, RerankRequest], WireRequest]
    parse_response: Callable[[Any, RerankRequest], ParsedResponse]
    key_env: tuple[str, ...] = ()
    """Environment variables a key is read from, first set wins (LiteLLM's names)."""
    base_env: tuple[str, ...] = ()
    default_base: str | None = None
    key_required: bool = True
    score_kind: str = "probability in [0, 1]"
