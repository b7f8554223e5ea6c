"""``enqueue.py --corpus FILE``: documents named by id in the dataset, their text read from a corpus.

Formats: JSONL (one object per line with ``_id``, ``id`` or ``docid``, an optional ``title``
and a ``text``; BEIR's ``corpus.jsonl`` is this), or TSV (``.tsv``: ``id<TAB>text`` or
``id<TAB>title<TAB>text``; a first row whose id column is named ``id``, ``_id`` or ``docid`` is
a header).  The corpus is held in memory while enqueueing; the resolved documents go to Redis's
document store (:mod:`jobs.docstore`) like any other, once each.  Its content is part of the run
identity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from jobs.dataset import ID_FIELDS, DatasetLine, document_reference
from providers.types import Document

__all__ = ["HEADER_IDS", "JSONL_ID_FIELDS", "Corpus", "CorpusError", "load_corpus"]

JSONL_ID_FIELDS = ("_id", "id", "docid")
HEADER_IDS = frozenset(("id", "_id", "docid"))


class CorpusError(ValueError):
    """A corpus file that cannot be read, with the row that is wrong."""


@dataclass(frozen=True)
class Corpus:
    path: Path
    documents: Mapping[str, dict[str, str]]
    """Id (as a string) -> ``{title?, text}``."""
    digest: str

    def __contains__(self, key: object) -> bool:
        return key in self.documents

    def resolve(self, line: DatasetLine) -> DatasetLine:
        """The line with each document given by id replaced by the corpus's (the id kept as the
        line wrote it; any other field of the reference, such as a retrieval score, dropped)."""
        resolved: list[Document] = []
        for document in line.documents:
            key = document_reference(document)
            if key is None:
                resolved.append(document)
            else:
                assert isinstance(document, dict)
                given = next(document[name] for name in ID_FIELDS if name in document)
                resolved.append({"id": given, **self.documents[key]})
        line.documents = resolved
        return line


def _rows(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield number, raw.rstrip(b"\r\n")


def _jsonl_entry(number: int, raw: bytes) -> tuple[str, dict[str, str]]:
    try:
        obj: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CorpusError(f"line {number}: invalid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise CorpusError(f"line {number}: must be a JSON object")
    found = next((obj[name] for name in JSONL_ID_FIELDS if name in obj), None)
    if isinstance(found, bool) or not isinstance(found, str | int) or not str(found).strip():
        raise CorpusError(f"line {number}: needs an id (_id, id or docid): a string or an integer")
    if not isinstance(obj.get("text"), str):
        raise CorpusError(f"line {number}: text must be a string")
    entry = {"text": obj["text"]}
    if isinstance(obj.get("title"), str) and obj["title"].strip():
        entry = {"title": obj["title"], **entry}
    return str(found), entry


def _tsv_entry(number: int, raw: bytes) -> tuple[str, dict[str, str]]:
    columns = raw.decode("utf-8").split("\t")
    if len(columns) == 2 and columns[0].strip():
        return columns[0], {"text": columns[1]}
    if len(columns) == 3 and columns[0].strip():
        entry = {"title": columns[1], "text": columns[2]} if columns[1].strip() else {"text": columns[2]}
        return columns[0], entry
    raise CorpusError(f"line {number}: needs id<TAB>text or id<TAB>title<TAB>text")


def load_corpus(path: Path) -> Corpus:
    """Read the whole corpus; raises :class:`CorpusError` naming the file and row."""
    digest = hashlib.blake2b(digest_size=16)
    documents: dict[str, dict[str, str]] = {}
    tsv = path.suffix.lower() == ".tsv"
    try:
        for number, raw in _rows(path):
            digest.update(raw + b"\n")
            if tsv and number == 1 and raw.split(b"\t")[0].strip().lower().decode() in HEADER_IDS:
                continue
            key, entry = _tsv_entry(number, raw) if tsv else _jsonl_entry(number, raw)
            if key in documents:
                raise CorpusError(f"line {number}: duplicate id {key!r}")
            documents[key] = entry
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path}: {exc}") from exc
    except CorpusError as exc:
        raise CorpusError(f"{path}: {exc}") from exc
    return Corpus(path, documents, digest.hexdigest())
