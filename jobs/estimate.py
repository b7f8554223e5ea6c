"""``enqueue.py --dry-run``: what a run would cost, per model, with nothing enqueued or sent.

Each valid line is planned exactly as a worker plans it (:func:`providers.planner.plan` with
the first deployment's capabilities), so "requests" is what the workers would send without
retries.  Tokens are the gate's estimate (characters / 4 of the query with each document),
not a tokenizer's count.  The score cache is read, never refreshed: a line it covers entirely
costs nothing, and for per-document scorers only the uncached documents are planned.

Search units are counted where the provider bills them (Cohere: one per query per up to 100
documents, a document whose query plus text passes 500 tokens counting as one per 500
tokens).  Cost uses the model list's LiteLLM prices: ``input_cost_per_query`` per search unit
(per request where the provider bills no search units) plus ``input_cost_per_token``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from jobs.cache import peek, scorer_for
from jobs.dataset import DatasetLine
from jobs.model_list import config_document
from providers.deployment import Deployment
from providers.gate import CHARS_PER_TOKEN, estimate_tokens
from providers.planner import plan
from providers.registry import HTTP_ADAPTERS
from providers.render import document_text
from providers.types import RerankRequest

__all__ = [
    "DOCUMENTS_PER_SEARCH_UNIT",
    "PRICE_NAMES",
    "SEARCH_UNIT_PROVIDERS",
    "TOKENS_PER_SEARCH_UNIT_DOCUMENT",
    "Cost",
    "ModelEstimate",
    "estimate",
    "prices_from",
    "search_units",
]

SEARCH_UNIT_PROVIDERS = frozenset({"cohere"})
DOCUMENTS_PER_SEARCH_UNIT = 100
TOKENS_PER_SEARCH_UNIT_DOCUMENT = 500
PRICE_NAMES = ("input_cost_per_query", "input_cost_per_token")


@dataclass
class Cost:
    requests: int = 0
    tokens: int = 0
    search_units: int = 0

    def add(self, other: Cost) -> None:
        self.requests += other.requests
        self.tokens += other.tokens
        self.search_units += other.search_units


@dataclass
class ModelEstimate:
    model: str
    deployment: str
    bills_search_units: bool
    prices: Mapping[str, float]
    lines: int = 0
    cached_lines: int = 0
    """Lines the score cache covers entirely."""
    full: Cost = field(default_factory=Cost)
    """Without the cache (``--no-cache``)."""
    sent: Cost = field(default_factory=Cost)
    """With the cache: what would actually be sent."""

    def price(self, cost: Cost) -> float | None:
        if not self.prices:
            return None
        queries = cost.search_units if self.bills_search_units else cost.requests
        per_query, per_token = (self.prices.get(name, 0.0) for name in PRICE_NAMES)
        return queries * per_query + cost.tokens * per_token

    def describe(self) -> list[str]:
        shown = [
            f"model {self.model} (planned for {self.deployment})",
            f"  lines           {self.lines:,} ({self.cached_lines:,} wholly in the score cache)",
            f"  requests        {self.sent.requests:,} with the cache, {self.full.requests:,} without "
            f"(saved {self.full.requests - self.sent.requests:,})",
            f"  tokens (est.)   {self.sent.tokens:,} with the cache, {self.full.tokens:,} without",
        ]
        if self.bills_search_units:
            sent, full = self.sent.search_units, self.full.search_units
            shown.append(f"  search units    {sent:,} with the cache, {full:,} without")
        with_cache, without = self.price(self.sent), self.price(self.full)
        if with_cache is None or without is None:
            shown.append(
                "  cost            n/a (no input_cost_per_query or input_cost_per_token in the model list)"
            )
        else:
            shown.append(f"  cost            ${with_cache:,.4f} with the cache, ${without:,.4f} without")
        return shown


def search_units(request: RerankRequest) -> int:
    query_chars = len(request.query)
    documents = 0
    for document in request.documents:
        tokens = (query_chars + len(document_text(document, request.rank_fields))) / CHARS_PER_TOKEN
        documents += max(1, math.ceil(tokens / TOKENS_PER_SEARCH_UNIT_DOCUMENT))
    return max(1, math.ceil(documents / DOCUMENTS_PER_SEARCH_UNIT))


def prices_from(config: Path | None) -> dict[str, dict[str, float]]:
    """Model name -> LiteLLM prices (``model_info`` or ``litellm_params``; the first entry of a
    name that has any)."""
    document: Any = config_document(config) if config else None
    entries = document.get("model_list") if isinstance(document, dict) else None
    found: dict[str, dict[str, float]] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        merged = {**(entry.get("litellm_params") or {}), **(entry.get("model_info") or {})}
        prices = {n: price for n in PRICE_NAMES if (price := _number(merged.get(n))) is not None}
        if prices:
            found.setdefault(str(entry.get("model_name")), prices)
    return found


def _number(value: Any) -> float | None:
    """A price as written: YAML reads ``2e-05`` (no dot) as a string."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _cost(deployment: Deployment, request: RerankRequest) -> Cost:
    adapter = HTTP_ADAPTERS.get(deployment.provider)
    if adapter is None:  # local/: ranked in the worker, nothing billed
        return Cost(tokens=estimate_tokens(request))
    parts = plan(request, adapter.capabilities(deployment))
    units = sum(search_units(p.request) for p in parts) if deployment.provider in SEARCH_UNIT_PROVIDERS else 0
    return Cost(requests=len(parts), tokens=estimate_tokens(request), search_units=units)


async def estimate(
    redis: Redis | None,
    lines: Iterable[tuple[DatasetLine, RerankRequest, str]],
    resolve: Mapping[str, tuple[list[Deployment], bool]],
    prices: Mapping[str, Mapping[str, float]],
) -> list[ModelEstimate]:
    """Per model: (line, its request, its model) planned against ``resolve[model]`` (the
    deployments and whether the name has fallbacks); the cache is read when ``redis`` is given."""
    found: dict[str, ModelEstimate] = {}
    for _line, request, model in lines:
        deployments, has_fallbacks = resolve[model]
        deployment = deployments[0]
        entry = found.get(model)
        if entry is None:
            bills = deployment.provider in SEARCH_UNIT_PROVIDERS
            entry = found[model] = ModelEstimate(model, deployment.label, bills, prices.get(model, {}))
        entry.lines += 1
        full = _cost(deployment, request)
        entry.full.add(full)
        missing = list(range(len(request.documents)))
        scorer = scorer_for(deployments, has_fallbacks)
        if redis is not None:
            missing = await peek(redis, scorer, request)
        if not missing:
            entry.cached_lines += 1
        elif len(missing) == len(request.documents):
            entry.sent.add(full)
        else:  # per-document scorer, partly cached: only the rest is asked for, without top_n
            part = replace(request, documents=[request.documents[i] for i in missing], top_n=None)
            entry.sent.add(_cost(deployment, part))
    return list(found.values())
