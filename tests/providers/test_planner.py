"""Planning (providers/planner.py) through the shared path: chunks scored and max-pooled back onto
the caller's documents, long candidate lists split into several requests and merged.  Which
provider plans what is in each adapter's body table (adapters/test_<provider>.py)."""

from __future__ import annotations

import json

from providers.adapters import cohere
from providers.types import Document
from tests.adapter_kit import Mock, rerank
from tests.cases.case import req
from tests.cases.cohere import dep, ok

LONG = " ".join(f"w{i}" for i in range(10))


async def test_chunk_scores_are_max_pooled_onto_the_callers_documents() -> None:
    mock = Mock(ok([(2, 0.9), (0, 0.5), (1, 0.2)]))
    chunked = req(documents=[LONG, "solar"], max_tokens_per_doc=4, max_chunks_per_doc=2)
    response, _ = await rerank(cohere.ADAPTER, dep(), chunked, mock)
    assert json.loads(mock.requests[0].content)["documents"] == ["w0 w1 w2 w3", "w4 w5 w6 w7", "solar"]
    assert [(r.index, r.relevance_score) for r in response.results] == [(1, 0.9), (0, 0.5)]


async def test_large_candidate_lists_are_split_and_merged() -> None:
    documents: list[Document] = [f"doc {i}" for i in range(cohere.MAX_DOCUMENTS + 5)]
    mock = Mock(ok([(0, 0.1), (1, 0.3)]), ok([(4, 0.8), (0, 0.2)]))
    response, _ = await rerank(cohere.ADAPTER, dep(), req(documents=documents, top_n=3), mock)
    sizes = [len(body["documents"]) for body in mock.bodies()]
    assert sizes == [cohere.MAX_DOCUMENTS, 5]
    assert [body["top_n"] for body in mock.bodies()] == [3, 3]
    assert [(r.index, r.relevance_score) for r in response.results] == [
        (cohere.MAX_DOCUMENTS + 4, 0.8),
        (1, 0.3),
        (cohere.MAX_DOCUMENTS, 0.2),
    ]
    assert (response.requests, response.usage) == (2, {"billed_units": {"search_units": 2}})
