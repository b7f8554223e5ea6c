"""The key-free local/bm25 reranker."""

from __future__ import annotations

import pytest

from providers.adapters import local
from providers.errors import ConfigurationError
from providers.types import RerankRequest

DOCS = [
    "Cold brew coffee steeps for twelve hours.",
    "Solar panels convert sunlight into electricity.",
    "Volcanoes erupt when magma pressure builds.",
    "Photovoltaic solar cells make electricity from light; solar power is renewable.",
]


async def test_ranks_lexically_relevant_documents_first() -> None:
    response = await local.rerank("bm25", RerankRequest(query="solar electricity", documents=DOCS))
    order = [r.index for r in response.results]
    assert set(order[:2]) == {1, 3}
    assert response.results[-1].relevance_score == 0.0
    scores = [r.relevance_score for r in response.results]
    assert scores == sorted(scores, reverse=True)
    assert response.usage is None


async def test_top_n_and_rank_fields() -> None:
    documents = [
        {"id": "a", "title": "coffee", "body": "volcano"},
        {"id": "b", "title": "volcano", "body": "x"},
    ]
    by_title = await local.rerank(
        "bm25", RerankRequest(query="volcano", documents=list(documents), rank_fields=["title"], top_n=1)
    )
    assert [r.index for r in by_title.results] == [1]
    by_body = await local.rerank(
        "bm25", RerankRequest(query="volcano", documents=list(documents), rank_fields=["body"], top_n=1)
    )
    assert [r.index for r in by_body.results] == [0]


async def test_max_tokens_truncates_and_chunks_max_pool() -> None:
    long_doc = " ".join(["filler"] * 50 + ["volcano"])
    short_doc = "volcano ash cloud"
    request = RerankRequest(query="volcano", documents=[long_doc, short_doc], max_tokens_per_doc=10)
    truncated = await local.rerank("bm25", request)
    assert {r.index: r.relevance_score for r in truncated.results}[0] == 0.0
    chunked = await local.rerank(
        "bm25",
        RerankRequest(
            query="volcano", documents=[long_doc, short_doc], max_tokens_per_doc=10, max_chunks_per_doc=6
        ),
    )
    assert {r.index: r.relevance_score for r in chunked.results}[0] > 0.0
    too_few_chunks = await local.rerank(
        "bm25",
        RerankRequest(
            query="volcano", documents=[long_doc, short_doc], max_tokens_per_doc=10, max_chunks_per_doc=2
        ),
    )
    assert {r.index: r.relevance_score for r in too_few_chunks.results}[0] == 0.0


async def test_unknown_local_model_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="local/bm25"):
        await local.rerank("bm99", RerankRequest(query="q", documents=["d"]))
