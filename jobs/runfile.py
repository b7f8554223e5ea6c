"""First-stage run files, read streaming, one query's ranking at a time.

- TREC (any other name): ``qid Q0 docid rank score tag``, whitespace-separated.
- TSV (``.tsv``): ``qid<TAB>docid<TAB>rank[<TAB>score]`` (MS MARCO's run format has no score),
  an optional header row.
- JSONL (``.jsonl``/``.json``): ``{qid|query_id, docid|doc_id, rank?, score?}``, at least one of
  rank and score.

A query's lines must be together (as every retrieval toolkit writes them); a query id that
comes back after another query is an error (sort the file with ``sort -s -k1,1``).  Within a
query the documents are ordered as trec_eval orders them: by score, highest first (a missing
score counts as ``-rank``), ties by rank.  Every error names the file and line.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.rows import id_field, in_file, json_object

__all__ = ["RankedQuery", "RunEntry", "RunFileError", "read_run"]


class RunFileError(ValueError):
    """A run file that cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class RunEntry:
    line: int
    qid: str
    docid: str
    rank: int
    score: float


@dataclass
class RankedQuery:
    qid: str
    first_line: int
    entries: list[RunEntry] = field(default_factory=list)

    def ranked(self) -> list[RunEntry]:
        """Highest score first, ties by rank (trec_eval's order)."""
        return sorted(self.entries, key=lambda e: (-e.score, e.rank))


def _number(value: str, what: str, number: int) -> float:
    try:
        parsed = float(value)
    except ValueError:
        raise RunFileError(f"line {number}: {what} {value!r} is not a number") from None
    if not math.isfinite(parsed):
        raise RunFileError(f"line {number}: {what} {value!r} is not finite")
    return parsed


def _rank(value: Any, number: int) -> int:
    if isinstance(value, str):
        value = value.strip()
        value = int(value) if value.isdigit() else value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RunFileError(f"line {number}: rank {value!r} is not a non-negative integer")
    return value


def _trec_entry(number: int, text: str) -> RunEntry:
    columns = text.split()
    if len(columns) != 6:
        raise RunFileError(
            f"line {number}: needs 6 columns (qid Q0 docid rank score tag), found {len(columns)}"
        )
    qid, _, docid, rank, score, _ = columns
    try:
        parsed_rank, parsed_score = int(rank), float(score)
    except ValueError:
        parsed_rank, parsed_score = -1, math.nan
    if parsed_rank < 0 or not math.isfinite(parsed_score):  # the checks below say what is wrong
        parsed_rank, parsed_score = _rank(rank, number), _number(score, "score", number)
    return RunEntry(number, qid, docid, parsed_rank, parsed_score)


def _tsv_entry(number: int, text: str) -> RunEntry | None:
    columns = [c.strip() for c in text.split("\t")]
    if len(columns) not in (3, 4) or not columns[0] or not columns[1]:
        raise RunFileError(f"line {number}: needs qid<TAB>docid<TAB>rank[<TAB>score]")
    if number == 1 and columns[2].lower() == "rank":
        return None
    rank = _rank(columns[2], number)
    score = _number(columns[3], "score", number) if len(columns) == 4 else float(-rank)
    return RunEntry(number, columns[0], columns[1], rank, score)


def _jsonl_entry(number: int, raw: bytes) -> RunEntry:
    obj = json_object(number, raw, RunFileError)
    qid = id_field(obj, ("qid", "query_id"), number, RunFileError, "a query id")
    docid = id_field(obj, ("docid", "doc_id"), number, RunFileError, "a document id")
    if "rank" not in obj and "score" not in obj:
        raise RunFileError(f"line {number}: needs a rank or a score")
    rank = _rank(obj.get("rank", 0), number)
    score = obj.get("score", -rank)
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise RunFileError(f"line {number}: score {score!r} is not a finite number")
    return RunEntry(number, qid, docid, rank, float(score))


def _entries(path: Path) -> Iterator[RunEntry]:
    kind = path.suffix.lower()
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if kind in {".jsonl", ".json"}:
                yield _jsonl_entry(number, raw)
            elif kind == ".tsv":
                if (entry := _tsv_entry(number, raw.decode("utf-8").rstrip("\r\n"))) is not None:
                    yield entry
            else:
                yield _trec_entry(number, raw.decode("utf-8"))


def _grouped(path: Path) -> Iterator[RankedQuery]:
    seen: dict[str, int] = {}
    current: RankedQuery | None = None
    for entry in _entries(path):
        if current is None or entry.qid != current.qid:
            if entry.qid in seen:
                raise RunFileError(
                    f"line {entry.line}: query {entry.qid!r} comes back (first seen on line "
                    f"{seen[entry.qid]}); keep each query's lines together (sort -s -k1,1)"
                )
            if current is not None:
                yield current
            current = RankedQuery(entry.qid, entry.line)
            seen[entry.qid] = entry.line
        current.entries.append(entry)
    if current is not None:
        yield current


def read_run(path: Path) -> Iterator[RankedQuery]:
    """Each query's entries, in file order; raises :class:`RunFileError` naming the file and line
    (a duplicate document of a query included)."""
    with in_file(path, RunFileError):
        for query in _grouped(path):
            first: dict[str, int] = {}
            for entry in query.entries:
                if entry.docid in first:
                    raise RunFileError(
                        f"line {entry.line}: document {entry.docid!r} twice for query {query.qid!r} "
                        f"(first on line {first[entry.docid]})"
                    )
                first[entry.docid] = entry.line
            yield query
