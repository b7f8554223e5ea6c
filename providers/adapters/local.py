"""``local/bm25`` and ``local/ql``: lexical rerankers that need no key and no network.

Both see the same terms (:mod:`providers.lexicon`: lower-cased words, English stopwords
removed, Snowball-stemmed) and score with the same collection statistics:

- with ``enqueue.py --corpus``, the corpus's (documents, average length, document and
  collection frequencies, computed once at enqueue), so a line's scores are those a full-index
  BM25 or query-likelihood run gives the same documents, and re-ranking such a first stage keeps
  its order;
- without a corpus, the line's own candidate list is the collection (per-line statistics): the
  scores of a document then depend on the other candidates, and re-ranking a full-index first
  stage this way can make it worse.

``local/bm25`` is Okapi BM25 in Lucene's form (``k1`` 0.9, ``b`` 0.4, Anserini's defaults;
idf ``ln(1 + (N - df + 0.5) / (df + 0.5))``): scores >= 0, unbounded.  ``local/ql`` is query
likelihood with Dirichlet smoothing (``mu`` 1000): the log-probability of the query under the
document's smoothed language model, summed over the query's terms the collection contains;
scores are <= 0.  ``max_tokens_per_doc`` truncates each document (in terms, after stopwords);
``max_chunks_per_doc`` splits it into windows of ``max_tokens_per_doc`` (default 512) terms,
keeps the first N and takes each document's best window.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

from providers.errors import ConfigurationError
from providers.lexicon import CollectionStats, collect, plain_text, tokenize
from providers.types import RankedDocument, RerankRequest, RerankResponse, sort_and_cut

__all__ = [
    "BM25_B",
    "BM25_K1",
    "DEFAULT_CHUNK_TOKENS",
    "DIRICHLET_MU",
    "MODELS",
    "VERSION",
    "Scorer",
    "bm25",
    "check_model",
    "query_likelihood",
    "rank",
    "rerank",
]

VERSION = "lexical-2"
"""Part of the score cache's key for local models: changed whenever their scores change, so a
cached score of an older ranker is never served."""
DEFAULT_CHUNK_TOKENS = 512
BM25_K1 = 0.9
BM25_B = 0.4
DIRICHLET_MU = 1000.0

Scorer = Callable[[list[str], Counter[str], int, CollectionStats], float]


def bm25(query: list[str], tf: Counter[str], length: int, stats: CollectionStats) -> float:
    norm = BM25_K1 * (1 - BM25_B + BM25_B * length / (stats.average_length or 1.0))
    score = 0.0
    for term in query:
        if count := tf.get(term, 0):
            df = stats.df.get(term, 0)
            idf = math.log(1 + (stats.documents - df + 0.5) / (df + 0.5))
            score += idf * count / (count + norm)
    return score


def query_likelihood(query: list[str], tf: Counter[str], length: int, stats: CollectionStats) -> float:
    score = 0.0
    for term in query:
        # a term the collection lacks has probability 0 in every document: it ranks nothing
        if stats.length and (cf := stats.cf.get(term, 0)):
            score += math.log((tf.get(term, 0) + DIRICHLET_MU * cf / stats.length) / (length + DIRICHLET_MU))
    return score


MODELS: dict[str, Scorer] = {"bm25": bm25, "ql": query_likelihood}


def check_model(wire_model: str) -> None:
    if wire_model not in MODELS:
        known = ", ".join(f"local/{m}" for m in MODELS)
        raise ConfigurationError(
            f"unknown local model 'local/{wire_model}'; known: {known}", provider="local"
        )


def _windows(tokens: list[str], request: RerankRequest) -> list[list[str]]:
    size = request.max_tokens_per_doc
    if request.max_chunks_per_doc is None:
        return [tokens[:size] if size else tokens]
    size = size or DEFAULT_CHUNK_TOKENS
    chunks = [tokens[i : i + size] for i in range(0, max(len(tokens), 1), size)]
    return chunks[: request.max_chunks_per_doc]


def rank(wire_model: str, request: RerankRequest) -> list[RankedDocument]:
    """Every document's score, in input order, with the request's collection statistics, else
    the statistics of its own windows."""
    check_model(wire_model)
    score = MODELS[wire_model]
    windows = [_windows(tokenize(plain_text(d, request.rank_fields)), request) for d in request.documents]
    stats = request.collection or collect(w for doc in windows for w in doc)
    query = tokenize(request.query)
    return [
        RankedDocument(index=i, relevance_score=max(score(query, Counter(w), len(w), stats) for w in doc))
        for i, doc in enumerate(windows)
    ]


async def rerank(wire_model: str, request: RerankRequest) -> RerankResponse:
    check_model(wire_model)
    if request.provider_params:
        keys = ", ".join(sorted(request.provider_params))
        raise ConfigurationError(f"provider_params ({keys}): local/ takes no provider-specific parameters")
    return RerankResponse(results=sort_and_cut(rank(wire_model, request), request.top_n))
