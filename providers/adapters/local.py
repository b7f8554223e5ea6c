"""``local/bm25``: a lexical reranker that needs no key and no network.

Okapi BM25 (bm25s, Lucene's variant) over each line's own candidate documents:
the statistics (document frequencies, average length) come from that candidate
list alone.  Scores are raw BM25 values (>= 0, unbounded).  ``max_tokens_per_doc``
truncates each document; ``max_chunks_per_doc`` splits it into windows of
``max_tokens_per_doc`` (default 512) tokens, keeps the first N and takes each
document's best window.
"""

from __future__ import annotations

from providers.errors import ConfigurationError
from providers.render import document_text
from providers.types import RankedDocument, RerankRequest, RerankResponse, sort_and_cut

__all__ = ["DEFAULT_CHUNK_TOKENS", "MODELS", "check_model", "rank", "rerank"]

MODELS = ("bm25",)
DEFAULT_CHUNK_TOKENS = 512


def check_model(wire_model: str) -> None:
    if wire_model not in MODELS:
        known = ", ".join(f"local/{m}" for m in MODELS)
        raise ConfigurationError(
            f"unknown local model 'local/{wire_model}'; known: {known}", provider="local"
        )


def _windows(tokens: list[int], request: RerankRequest) -> list[list[int]]:
    size = request.max_tokens_per_doc
    if request.max_chunks_per_doc is None:
        return [tokens[:size] if size else tokens]
    size = size or DEFAULT_CHUNK_TOKENS
    chunks = [tokens[i : i + size] for i in range(0, max(len(tokens), 1), size)]
    return chunks[: request.max_chunks_per_doc]


def rank(request: RerankRequest) -> list[RankedDocument]:
    # Imported here: every command resolves model names through this module, only workers rank.
    import bm25s
    from bm25s.tokenization import Tokenizer

    tokenizer = Tokenizer(stopwords="en")
    texts = [document_text(d, request.rank_fields) for d in request.documents]
    doc_tokens = tokenizer.tokenize(texts, return_as="ids", show_progress=False)
    query_tokens = tokenizer.tokenize(
        [request.query], update_vocab=False, return_as="ids", show_progress=False
    )
    owners: list[int] = []
    corpus: list[list[int]] = []
    for index, tokens in enumerate(doc_tokens):
        for window in _windows(list(tokens), request):
            owners.append(index)
            corpus.append(window)
    retriever = bm25s.BM25()
    retriever.index(corpus, show_progress=False)
    best = [0.0] * len(texts)
    for owner, score in zip(owners, retriever.get_scores(query_tokens[0]), strict=True):
        best[owner] = max(best[owner], float(score))
    return [RankedDocument(index=i, relevance_score=s) for i, s in enumerate(best)]


async def rerank(wire_model: str, request: RerankRequest) -> RerankResponse:
    check_model(wire_model)
    if request.provider_params:
        keys = ", ".join(sorted(request.provider_params))
        raise ConfigurationError(f"provider_params ({keys}): local/ takes no provider-specific parameters")
    return RerankResponse(results=sort_and_cut(rank(request), request.top_n))
