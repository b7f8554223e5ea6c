"""The key-free local/bm25 and local/ql rerankers."""

from __future__ import annotations

import math

import pytest

from providers.adapters import local
from providers.errors import ConfigurationError
from providers.lexicon import CollectionStats, StatsFormatError, collect, plain_text, tokenize
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
    with pytest.raises(ConfigurationError, match=r"local/bm25, local/ql"):
        await local.rerank("bm99", RerankRequest(query="q", documents=["d"]))


@pytest.mark.parametrize("model", ["bm25", "ql"])
async def test_both_models_match_inflected_forms(model: str) -> None:
    documents = ["The runner was running races.", "Cats sleep all day.", "A race was run."]
    response = await local.rerank(model, RerankRequest(query="runs", documents=documents))
    scores = {r.index: r.relevance_score for r in response.results}
    assert scores[0] > scores[1] and scores[2] > scores[1]


def test_tokens_are_stemmed_lowercased_and_stopwords_dropped() -> None:
    assert tokenize("The Runners are RUNNING to a solar-powered station") == [
        "runner",
        "run",
        "solar",
        "power",
        "station",
    ]
    assert plain_text({"id": "d1", "title": "Solar", "n": 3}, None) == "Solar\n3"
    assert plain_text({"id": "d1", "title": "Solar", "body": "x"}, ["body"]) == "x"


def test_bm25_and_ql_by_hand() -> None:
    stats = collect([["solar", "panel"], ["coffe"], ["solar", "solar", "cell", "power"]])
    assert (stats.documents, stats.length, stats.df["solar"], stats.cf["solar"]) == (3, 7, 2, 3)
    request = RerankRequest(query="solar", documents=["solar panels"], collection=stats)
    [bm25] = local.rank("bm25", request)
    norm = 0.9 * (1 - 0.4 + 0.4 * 2 / (7 / 3))
    assert bm25.relevance_score == pytest.approx(math.log(1 + 1.5 / 2.5) * 1 / (1 + norm))
    [ql] = local.rank("ql", request)
    assert ql.relevance_score == pytest.approx(math.log((1 + 1000 * 3 / 7) / (2 + 1000)))


def test_collection_statistics_change_scores_and_survive_the_blob() -> None:
    documents = ["solar panels", "solar cells and more solar"]
    per_line = local.rank("bm25", RerankRequest(query="solar panels", documents=documents))
    corpus = collect(tokenize(t) for t in [*documents, "panels", "panels", "panel", "coffee"])
    stats = CollectionStats.from_bytes(corpus.to_bytes())
    assert stats == corpus
    with_corpus = local.rank(
        "bm25", RerankRequest(query="solar panels", documents=documents, collection=stats)
    )
    assert [r.relevance_score for r in with_corpus] != [r.relevance_score for r in per_line]
    with pytest.raises(StatsFormatError):
        CollectionStats.from_bytes(b"not a blob")


async def test_ql_ignores_terms_the_collection_lacks_and_prefers_the_denser_document() -> None:
    documents = ["volcano", "volcano " + "filler " * 20]
    response = await local.rerank("ql", RerankRequest(query="volcano zzzunseen", documents=documents))
    assert [r.index for r in response.results] == [0, 1]
    assert all(r.relevance_score < 0 for r in response.results)
