"""The score cache: scores any batch already paid for, shared by every batch and model.

A score is keyed on everything that determines it: the model name's *scorer* (each
deployment's provider, wire model, effective base URL and non-secret settings: never a key),
the query, every line parameter that changes what the provider scores (``rank_fields``,
``max_chunks_per_doc``, ``max_tokens_per_doc`` and the ``provider_params`` whose declaration says
they can change a score, :mod:`providers.params`) and a hash of the document's content.  The
deployment's own provider parameters from the model list are part of its scorer.

Two shapes, chosen per model name:

- **pairs** (every deployment's adapter has ``independent_scores`` and the name has no
  fallbacks): ``rr:cache:{scorer}:{query key}`` is a hash of document hash -> score.  Only the
  uncached documents of a line are sent, without ``top_n`` (every document gets a score), and
  the line's ranking is cut to ``top_n`` here.
- **lines** (everything else: listwise rerankers, proxies, ``local/``, names with fallbacks):
  ``rr:cache:{scorer}:line:{line key}`` holds the whole line's results, keyed on all the
  documents and ``top_n`` too, so a line is served from the cache only when it is the same line.

Scores served by a fallback model are never stored (they are another model's).  Every entry
expires ``RR_CACHE_TTL_DAYS`` after its last use (a hit refreshes it): the cache's size is
bounded by what was used within that time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from jobs import keys
from providers import params
from providers.adapter import resolve_base
from providers.adapters import local
from providers.deployment import Deployment
from providers.errors import ConfigurationError
from providers.registry import HTTP_ADAPTERS, LOCAL_PROVIDER
from providers.reranker import Reranker
from providers.types import Document, RankedDocument, RerankRequest, RerankResponse, sort_and_cut

__all__ = [
    "CACHE_VERSION",
    "CacheRead",
    "CacheStats",
    "CacheWrite",
    "ScoreCache",
    "Scorer",
    "document_hash",
    "line_key",
    "pair_key",
    "peek",
    "scorer_for",
]

CACHE_VERSION = 1
"""Bumped whenever what a key covers changes, so old entries are never read."""


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    """Documents of the line whose score came from the cache."""
    misses: int
    """Documents whose score had to be requested."""

    def to_json(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses}


def _digest(value: Any, size: int = 16) -> str:
    return hashlib.blake2b(orjson.dumps(value, option=orjson.OPT_SORT_KEYS), digest_size=size).hexdigest()


def document_hash(document: Document) -> str:
    """The document's content (its id included: an object's fields are its content)."""
    return _digest(document, 12)


def _params(request: RerankRequest, unscored: frozenset[str]) -> list[Any]:
    found = [request.rank_fields, request.max_chunks_per_doc, request.max_tokens_per_doc]
    # appended only when present, so keys of lines without provider parameters never change
    scoring = params.scoring(request.provider_params, unscored)
    return [*found, scoring] if scoring else found


def pair_key(request: RerankRequest, unscored: frozenset[str] = frozenset()) -> str:
    """``unscored``: provider parameters that change no score (left out of the key)."""
    return _digest([CACHE_VERSION, "pairs", request.query, *_params(request, unscored)])


def line_key(request: RerankRequest, unscored: frozenset[str] = frozenset()) -> str:
    documents = [document_hash(d) for d in request.documents]
    key: list[Any] = [CACHE_VERSION, "line", request.query, documents, request.top_n]
    key += _params(request, unscored)
    if request.collection is not None:  # the local models' scores depend on the corpus
        key.append(request.collection.digest)
    return _digest(key)


@dataclass(frozen=True, slots=True)
class Scorer:
    namespace: str
    pairs: bool
    """Whether documents may be scored (and cached) one by one."""
    unscored: frozenset[str] = frozenset()
    """Provider parameters that change no score on any of its deployments."""


def scorer_for(deployments: Sequence[Deployment], has_fallbacks: bool) -> Scorer:
    """A model name's cache namespace, from the deployments it resolves to."""
    described = []
    pairs = not has_fallbacks
    unscored: frozenset[str] | None = None
    for deployment in deployments:
        adapter = HTTP_ADAPTERS.get(deployment.provider)
        base = deployment.credentials.api_base
        if deployment.provider == LOCAL_PROVIDER:
            base = local.VERSION
        elif adapter is not None:
            try:
                base = resolve_base(adapter, deployment)
            except ConfigurationError:
                base = None  # the line fails before any request; nothing gets stored
        settings = {k: str(v) for k, v in deployment.credentials.params.items() if not _secret(k)}
        described.append([deployment.provider, deployment.wire_model, base, settings])
        declared = params.unscored(adapter.params if adapter is not None else ())
        if forwarded := params.scoring(deployment.provider_params, declared):
            described[-1].append(forwarded)  # only when set: other scorers keep their namespace
        unscored = declared if unscored is None else unscored & declared
        pairs = pairs and adapter is not None and adapter.independent_scores
    namespace = _digest([CACHE_VERSION, sorted(described, key=orjson.dumps)])
    return Scorer(namespace, pairs, unscored or frozenset())


async def peek(redis: Redis, scorer: Scorer, request: RerankRequest) -> list[int]:
    """The positions of the documents the cache would have to request (read only: no expiry
    is refreshed); every position when the line itself is not cached."""
    if not scorer.pairs:
        cached = await redis.exists(keys.score_cache(scorer.namespace, "line:" + line_key(request)))
        return [] if cached else list(range(len(request.documents)))
    hashes = [document_hash(d) for d in request.documents]
    unique = list(dict.fromkeys(hashes))
    values = await redis.hmget(keys.score_cache(scorer.namespace, pair_key(request, scorer.unscored)), unique)  # type: ignore[misc]
    known = {h for h, v in zip(unique, values, strict=True) if v is not None}
    first: dict[str, int] = {}
    for position, digest in enumerate(hashes):
        if digest not in known:
            first.setdefault(digest, position)
    return sorted(first.values())


@dataclass(frozen=True, slots=True)
class CacheRead:
    """Where a line's cached scores are: read on its own or in the line-state round trip."""

    key: str
    hashes: tuple[str, ...] | None
    """Pairs: each document's hash, by position (the hash's fields); None: the line's entry."""

    def fields(self) -> list[str]:
        return list(dict.fromkeys(self.hashes or ()))

    def queue(self, pipe: Pipeline) -> None:
        """Adds the read to ``pipe``: its reply is what :meth:`ScoreCache.rerank_found` takes."""
        if self.hashes is None:
            pipe.get(self.key)
        else:
            pipe.hmget(self.key, self.fields())


@dataclass(frozen=True, slots=True)
class CacheWrite:
    """A line's cache write, sent with its record write (:meth:`jobs.records.RecordWriter.record`)."""

    key: str
    op: str
    """``hash``: ``args`` are field, score pairs; ``string``: ``args`` is the line's entry;
    ``touch``: only the expiry is renewed (a hit)."""
    ttl_ms: int
    args: tuple[str | bytes, ...] = ()


class ScoreCache:
    """Reads and writes the cache around :meth:`Reranker.rerank`; one per worker."""

    def __init__(self, redis: Redis, reranker: Reranker, ttl_ms: int) -> None:
        self.redis = redis
        self.reranker = reranker
        self.ttl_ms = ttl_ms
        self._scorers: dict[str, Scorer] = {}

    def scorer(self, model: str) -> Scorer:
        if model not in self._scorers:
            deployments = self.reranker.candidates(model)
            self._scorers[model] = scorer_for(deployments, bool(self.reranker.fallbacks.get(model)))
        return self._scorers[model]

    async def rerank(
        self, model: str, request: RerankRequest, *, read: bool = True
    ) -> tuple[RerankResponse, CacheStats]:
        """The line's response and how much of it the cache served; ``read=False`` requests
        every document (and stores the fresh scores)."""
        looked = self.lookup(model, request)
        found = await self.fetch(looked) if read else None
        response, stats, write = await self.rerank_found(model, request, looked, found)
        if write is not None:
            await self.apply(write)
        return response, stats

    def lookup(self, model: str, request: RerankRequest) -> CacheRead:
        scorer = self.scorer(model)
        if scorer.pairs:
            key = keys.score_cache(scorer.namespace, pair_key(request, scorer.unscored))
            return CacheRead(key, tuple(document_hash(d) for d in request.documents))
        key = keys.score_cache(scorer.namespace, "line:" + line_key(request, scorer.unscored))
        return CacheRead(key, None)

    async def fetch(self, looked: CacheRead) -> Any:
        if looked.hashes == ():
            return []  # HMGET needs a field
        async with self.redis.pipeline(transaction=False) as pipe:
            looked.queue(pipe)
            [found] = await pipe.execute()
        return found

    async def rerank_found(
        self, model: str, request: RerankRequest, looked: CacheRead, found: Any
    ) -> tuple[RerankResponse, CacheStats, CacheWrite | None]:
        """:meth:`rerank` given what ``looked`` read (None: not read, every document is
        requested), answering the cache write to make instead of making it."""
        if looked.hashes is None:
            return await self._by_line(looked.key, model, request, found)
        return await self._by_pairs(looked, model, request, found)

    async def apply(self, write: CacheWrite) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            if write.op == "hash":
                pipe.hset(write.key, items=list(write.args))
                pipe.pexpire(write.key, write.ttl_ms)
            elif write.op == "string":
                pipe.set(write.key, write.args[0], px=write.ttl_ms)
            else:
                pipe.pexpire(write.key, write.ttl_ms)
            await pipe.execute()

    async def _by_line(
        self, key: str, model: str, request: RerankRequest, cached: bytes | None
    ) -> tuple[RerankResponse, CacheStats, CacheWrite | None]:
        documents = len(request.documents)
        if cached is not None:
            results = [RankedDocument(index, score) for index, score in orjson.loads(cached)]
            return _from_cache(results), CacheStats(documents, 0), CacheWrite(key, "touch", self.ttl_ms)
        response = await self.reranker.rerank(model, request)
        write = None
        if not response.fallback_from:
            pairs = [[r.index, r.relevance_score] for r in response.results]
            write = CacheWrite(key, "string", self.ttl_ms, (orjson.dumps(pairs),))
        return response, CacheStats(0, documents), write

    async def _by_pairs(
        self, looked: CacheRead, model: str, request: RerankRequest, values: list[bytes | None] | None
    ) -> tuple[RerankResponse, CacheStats, CacheWrite | None]:
        hashes = looked.hashes or ()
        known: dict[str, float] = {}
        if values is not None:
            known = {h: float(v) for h, v in zip(looked.fields(), values, strict=True) if v is not None}
        wanted = {h: i for i, h in reversed(list(enumerate(hashes))) if h not in known}
        response: RerankResponse | None = None
        write = CacheWrite(looked.key, "touch", self.ttl_ms) if known else None
        if wanted:
            positions = sorted(wanted.values())
            part = replace(request, documents=[request.documents[i] for i in positions], top_n=None)
            response = await self.reranker.rerank(model, part)
            fresh = {hashes[positions[r.index]]: r.relevance_score for r in response.results}
            if fresh:
                pairs = [item for h, score in fresh.items() for item in (h, repr(score))]
                write = CacheWrite(looked.key, "hash", self.ttl_ms, tuple(pairs))
            known.update(fresh)
        scored = [RankedDocument(i, known[h]) for i, h in enumerate(hashes) if h in known]
        results = sort_and_cut(scored, request.top_n)
        misses = sum(1 for h in hashes if h in wanted)
        stats = CacheStats(len(hashes) - misses, misses)
        if response is None:
            return _from_cache(results), stats, write
        response.results = results
        return response, stats, write


def _secret(name: str) -> bool:
    return any(word in name for word in ("key", "secret", "token", "password", "credentials"))


def _from_cache(results: Sequence[RankedDocument]) -> RerankResponse:
    return RerankResponse(results=list(results), attempts=0, requests=0, deployment="cache")
