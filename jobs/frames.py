"""pandas DataFrames in and out of the Python API (:mod:`jobs.api`), in PyTerrier's columns.

In: ``qid, query, docno`` and ``text`` (or no ``text`` when the documents come from a corpus),
one row per candidate; a query's rows become one dataset line in first-seen order.  Out: one
row per ranked document: ``qid, query, docno, model, score, rank`` (``rank`` 0 is the best).
pandas is the ``pandas`` extra: ``pip install 'rerank-runner[pandas]'``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas

__all__ = ["COLUMNS", "OUT_COLUMNS", "frame_lines", "frame_of"]

COLUMNS = ("qid", "query", "docno")
OUT_COLUMNS = ["qid", "query", "docno", "model", "score", "rank"]


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:  # pragma: no cover - the extra is installed in development
        raise ImportError("DataFrames need pandas: pip install 'rerank-runner[pandas]'") from exc
    return pandas


def frame_lines(frame: pandas.DataFrame) -> list[dict[str, Any]]:
    """Dataset lines, one per ``qid``; raises ValueError naming a missing column or a query id
    given two different queries."""
    if missing := [c for c in COLUMNS if c not in frame.columns]:
        raise ValueError(f"the DataFrame lacks {', '.join(missing)} (columns: qid, query, docno[, text])")
    columns = [*COLUMNS, "text"] if "text" in frame.columns else list(COLUMNS)
    lines: dict[str, dict[str, Any]] = {}
    for row in frame[columns].to_dict("records"):
        qid = str(row["qid"])
        line = lines.setdefault(qid, {"id": qid, "query": row["query"], "documents": []})
        if line["query"] != row["query"]:
            raise ValueError(f"qid {qid}: two queries ({line['query']!r} and {row['query']!r})")
        document = {"id": str(row["docno"])}
        if "text" in row:
            document["text"] = row["text"]
        line["documents"].append(document)
    return list(lines.values())


def frame_of(records: Sequence[Mapping[str, Any]], queries: Mapping[str, str]) -> pandas.DataFrame:
    """One row per ranked document of each successful record."""
    rows = [
        {
            "qid": str(record["id"]),
            "query": queries.get(str(record["id"])),
            "docno": result["document_id"],
            "model": record["model"],
            "score": result["relevance_score"],
            "rank": rank,
        }
        for record in records
        for rank, result in enumerate(record.get("results", ()))
    ]
    frame: pandas.DataFrame = _pandas().DataFrame(rows, columns=OUT_COLUMNS)
    return frame
