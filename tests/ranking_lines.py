"""Dataset lines for end-to-end provider tests, and the records they must produce.

The local wire servers score with :func:`tests.wire_server.ranked`, so the expected results
of a line follow from the texts the server was sent: strings as given, objects rendered
with ``rank_fields`` (:func:`providers.render.document_text`) for string-only endpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from providers.render import document_text
from tests.support import WORDS
from tests.wire_server import ranked


def word(n: int) -> str:
    return WORDS[n % len(WORDS)]


def lines_for(model: str, count: int) -> list[dict[str, Any]]:
    """Three shapes in turn: strings with ``top_n``; objects with ids, ``rank_fields``,
    ``return_documents`` and metadata; objects (some without id) mixed with strings, the line's
    id an integer and its metadata every other time null."""
    lines: list[dict[str, Any]] = []
    for n in range(count):
        a, b, c = word(n), word(n * 7 + 3), word(n * 5 + 11)
        line: dict[str, Any] = {"id": f"line-{n}", "model": model, "query": f"{a} {b} topic{n}"}
        if n % 3 == 0:
            line["documents"] = [f"{b} notes", f"{a} {b} topic{n}", f"{c} filler", f"{a} only", "nothing"]
            line["top_n"] = 3
        elif n % 3 == 1:
            line["documents"] = [
                {"id": f"doc-{n}-{k}", "title": word(n + k), "body": f"{word(n * 7 + 3 + k)} text", "rank": k}
                for k in range(4)
            ]
            line |= {"rank_fields": ["title", "body"], "return_documents": True, "metadata": {"n": n}}
        else:
            line["documents"] = [
                {"id": f"doc-{n}", "text": f"{a} {b}"},
                {"title": b, "text": c},
                f"plain {a}",
            ]
            line["id"] = n  # an integer id must come back as an integer
            line["metadata"] = {"shape": "mixed"} if n % 2 == 0 else None
        lines.append(line)
    return lines


CHUNKED: dict[str, Any] = {
    "id": "chunked",
    "query": "alpha omega",
    "documents": ["w1 w2 w3 w4 alpha omega", "alpha beta"],
    "max_chunks_per_doc": 3,
    "max_tokens_per_doc": 2,
    "top_n": 1,
}
"""Chunked client-side into 2-word windows: only the first document's third window has both words."""
CHUNKED_SENT = ["w1 w2", "w3 w4", "alpha omega", "alpha beta"]


def rendered(line: dict[str, Any]) -> list[str]:
    return [document_text(d, line.get("rank_fields")) for d in line["documents"]]


def unchanged(score: float) -> float:
    return score


def expected_results(
    line: dict[str, Any], texts: list[str], score: Callable[[float], float] = unchanged
) -> list[dict[str, Any]]:
    """The record's results when the server ranked ``texts`` for ``line`` (``score``: the
    server's score for a word-overlap fraction)."""
    documents = line["documents"]
    results = []
    for index, value in ranked(line["query"], texts, line.get("top_n")):
        item: dict[str, Any] = {"index": index, "relevance_score": score(value)}
        if isinstance(documents[index], dict) and "id" in documents[index]:
            item["document_id"] = documents[index]["id"]
        if line.get("return_documents"):
            item["document"] = documents[index]
        results.append(item)
    return results


def check_records(
    lines: list[dict[str, Any]],
    results: list[dict[str, Any]],
    texts_of: Callable[[dict[str, Any]], list[str]] = rendered,
    score: Callable[[float], float] = unchanged,
) -> None:
    """One record per line in dataset order, ranked as the server scored ``texts_of(line)``,
    with metadata passed through."""
    assert [r["id"] for r in results] == [line["id"] for line in lines]
    for line, record in zip(lines, results, strict=True):
        assert record["model"] == line["model"], line["id"]
        assert record["results"] == expected_results(line, texts_of(line), score), line["id"]
        assert record.get("metadata") == line.get("metadata"), line["id"]
        assert ("metadata" in record) == ("metadata" in line), line["id"]
