"""DataFrames in and out of the Python API, in PyTerrier's columns."""

from __future__ import annotations

from typing import Any

import pandas
import pytest

from jobs.frames import OUT_COLUMNS, frame_lines, frame_of


def test_rows_become_one_line_per_query_in_first_seen_order() -> None:
    frame = pandas.DataFrame(
        [
            {"qid": 2, "query": "solar", "docno": 10, "text": "panels", "score": 3.0},
            {"qid": 1, "query": "coffee", "docno": "d1", "text": "espresso", "score": 9.0},
            {"qid": 2, "query": "solar", "docno": 11, "text": "power", "score": 1.0},
        ]
    )
    assert frame_lines(frame) == [
        {
            "id": "2",
            "query": "solar",
            "documents": [{"id": "10", "text": "panels"}, {"id": "11", "text": "power"}],
        },
        {"id": "1", "query": "coffee", "documents": [{"id": "d1", "text": "espresso"}]},
    ]
    by_id = frame_lines(frame.drop(columns=["text"]))  # documents from a corpus
    assert by_id[0]["documents"] == [{"id": "10"}, {"id": "11"}]


def test_a_missing_column_or_a_query_id_with_two_queries_is_named() -> None:
    with pytest.raises(ValueError, match="lacks query, docno"):
        frame_lines(pandas.DataFrame([{"qid": "1"}]))
    two = pandas.DataFrame(
        [{"qid": "1", "query": "a", "docno": "x"}, {"qid": "1", "query": "b", "docno": "y"}]
    )
    with pytest.raises(ValueError, match="qid 1: two queries"):
        frame_lines(two)


def test_records_become_ranked_rows_and_failed_lines_none() -> None:
    records: list[dict[str, Any]] = [
        {"id": "q1", "model": "local/ql", "results": [
            {"index": 1, "relevance_score": -1.5, "document_id": "b"},
            {"index": 0, "relevance_score": -2.0, "document_id": "a"},
        ]},
        {"id": "q2", "model": "local/ql", "error": {"code": "configuration"}},
    ]  # fmt: skip
    frame = frame_of(records, {"q1": "solar"})
    assert list(frame.columns) == OUT_COLUMNS
    assert frame.to_dict("records") == [
        {"qid": "q1", "query": "solar", "docno": "b", "model": "local/ql", "score": -1.5, "rank": 0},
        {"qid": "q1", "query": "solar", "docno": "a", "model": "local/ql", "score": -2.0, "rank": 1},
    ]
