"""First-stage run files: TREC, TSV and JSONL, read a query at a time; errors name file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.runfile import RunFileError, read_run
from tests.support import refused


def ranked(path: Path) -> list[tuple[str, list[str]]]:
    return [(q.qid, [e.docid for e in q.ranked()]) for q in read_run(path)]


def test_a_trec_run_is_read_per_query_in_score_order(tmp_path: Path) -> None:
    path = tmp_path / "bm25.run"
    path.write_text(
        "q1 Q0 d3 1 12.5 bm25\nq1 Q0 d1 2 14.0 bm25\nq1 Q0 d2 3 14.0 bm25\n\nq2 Q0 d9 1 -3 bm25\n"
    )
    # scores first (trec_eval's order), then rank: a file whose ranks disagree with its scores
    assert ranked(path) == [("q1", ["d1", "d2", "d3"]), ("q2", ["d9"])]
    assert next(read_run(path)).first_line == 1


def test_tsv_with_or_without_scores_and_jsonl_runs(tmp_path: Path) -> None:
    tsv = tmp_path / "run.tsv"
    tsv.write_text("qid\tdocid\trank\n1\tp7\t2\n1\tp3\t1\n2\tp1\t1\n")
    assert ranked(tsv) == [("1", ["p3", "p7"]), ("2", ["p1"])]
    jsonl = tmp_path / "run.jsonl"
    jsonl.write_text(
        '{"qid": 1, "docid": "a", "score": 0.5}\n{"query_id": "1", "doc_id": 7, "rank": 1, "score": 0.9}\n'
    )
    assert ranked(jsonl) == [("1", ["7", "a"])]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("r.run", "q1 Q0 d1 1 2.0\n", r"r\.run: line 1: needs 6 columns"),
        ("r.run", "q1 Q0 d1 1 2.0 t\nq1 Q0 d2 2 high t\n", r"line 2: score 'high' is not a number"),
        ("r.run", "q1 Q0 d1 1 nan t\n", r"line 1: score 'nan' is not finite"),
        ("r.run", "q1 Q0 d1 one 2.0 t\n", r"line 1: rank 'one' is not a non-negative integer"),
        ("r.run", "q1 Q0 d1 1 2 t\nq2 Q0 d1 1 2 t\nq1 Q0 d2 2 1 t\n", r"line 3: query 'q1' comes back"),
        ("r.run", "q1 Q0 d1 1 2 t\nq1 Q0 d1 2 1 t\n", r"line 2: document 'd1' twice for query 'q1'"),
        ("r.tsv", "1\tp1\n", r"line 1: needs qid<TAB>docid<TAB>rank"),
        ("r.jsonl", '{"qid": "q", "docid": "d"}\n', r"line 1: needs a rank or a score"),
        ("r.jsonl", '{"qid": "q", "docid": "d", "score": true}\n', r"line 1: score True is not a finite"),
        ("r.jsonl", '{"docid": "d", "rank": 1}\n', r"line 1: needs a query id \(qid, query_id\)"),
    ],
)
def test_a_bad_run_line_is_named(tmp_path: Path, name: str, content: str, message: str) -> None:
    refused(tmp_path / name, content, lambda path: list(read_run(path)), RunFileError, message)
