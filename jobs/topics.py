"""Topics (query id -> query text) for ``enqueue.py --run``: TSV, JSONL (BEIR's ``queries.jsonl``)
or a TREC topic file.

- TREC (any file that starts with ``<top>`` or ``<topic``, whatever its name): classic SGML topics
  (``<top> <num> Number: 401 <title> ... <desc> Description: ... <narr> ... </top>``, closing
  tags optional) or the Web track's ``<topic number="1"><query>...<description>...``.  The
  field is ``title`` by default; ``--topic-field desc`` or ``narr`` chooses another
  (``query``/``description``/``narrative`` are their Web track names).
- JSONL (``.jsonl``/``.json``): one object per line with ``_id``, ``id``, ``qid`` or ``query_id``
  and the text under ``--topic-field`` (default: ``text``, else ``query``, else ``title``).
- TSV (any other file): ``qid<TAB>text`` (MS MARCO's ``queries.tsv``), an optional header row.
- A BEIR folder: its ``queries.jsonl``.

Every error names the file and the line.  Topic files are small: they are read whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from jobs.rows import id_field, in_file, json_object

__all__ = ["JSONL_ID_FIELDS", "JSONL_TEXT_FIELDS", "TREC_FIELDS", "TopicsError", "load_topics"]

JSONL_ID_FIELDS = ("_id", "id", "qid", "query_id")
JSONL_TEXT_FIELDS = ("text", "query", "title")
TREC_FIELDS = {"title": ("title", "query"), "desc": ("desc", "description"), "narr": ("narr", "narrative")}
"""A ``--topic-field`` name -> the tags that hold it (classic SGML, then Web track XML)."""

_BLOCK = re.compile(r"<top>(.*?)(?:</top>|(?=<top>)|\Z)|<topic\b([^>]*)>(.*?)</topic>", re.S | re.I)
_TAG = re.compile(r"<(\w+)(?:\s[^>]*)?>([^<]*)", re.S)
_PREFIX = re.compile(r"^\s*(?:number|topic|description|narrative)\s*:\s*", re.I)
_NUMBER_ATTR = re.compile(r"""number\s*=\s*["']?([^"'\s>]+)""", re.I)


class TopicsError(ValueError):
    """A topics file that cannot be read; the message names the file and line."""


def _clean(text: str) -> str:
    return " ".join(_PREFIX.sub("", text).split())


def _line_of(content: str, offset: int) -> int:
    return content.count("\n", 0, offset) + 1


def _trec_blocks(content: str) -> Iterator[tuple[int, str | None, dict[str, str]]]:
    """(line of the block, number attribute, tag -> cleaned text) per topic."""
    for found in _BLOCK.finditer(content):
        body = found.group(1) if found.group(1) is not None else found.group(3)
        attr = _NUMBER_ATTR.search(found.group(2) or "")
        fields: dict[str, str] = {}
        for tag in _TAG.finditer(body):
            fields.setdefault(tag.group(1).lower(), _clean(tag.group(2)))
        yield _line_of(content, found.start()), attr.group(1) if attr else None, fields


def _trec(content: str, field: str) -> dict[str, str]:
    tags = TREC_FIELDS.get(field, (field,))
    topics: dict[str, str] = {}
    for line, number, fields in _trec_blocks(content):
        qid = number or fields.get("num", "").split(" ")[0]
        if not qid:
            raise TopicsError(f"line {line}: topic without a <num> or number attribute")
        text = next((fields[t] for t in tags if fields.get(t)), None)
        if text is None:
            raise TopicsError(f"line {line}: topic {qid} has no <{tags[0]}> text")
        if qid in topics:
            raise TopicsError(f"line {line}: duplicate topic {qid!r}")
        topics[qid] = text
    if not topics:
        raise TopicsError("line 1: no <top> or <topic> block found")
    return topics


def _jsonl_entry(number: int, raw: bytes, field: str | None) -> tuple[str, str]:
    obj = json_object(number, raw, TopicsError)
    qid = id_field(obj, JSONL_ID_FIELDS, number, TopicsError, "a query id")
    names = (field,) if field else JSONL_TEXT_FIELDS
    text = next((obj[name] for name in names if name in obj), None)
    if not isinstance(text, str) or not text.strip():
        raise TopicsError(f"line {number}: {' or '.join(names)} must be a non-empty string")
    return qid, text


def _tsv_entry(number: int, raw: bytes) -> tuple[str, str] | None:
    columns = raw.decode("utf-8").split("\t")
    if len(columns) != 2 or not columns[0].strip() or not columns[1].strip():
        raise TopicsError(f"line {number}: needs qid<TAB>text (or use JSONL or TREC topics)")
    if number == 1 and columns[0].strip().lower() in {"qid", "id", "query_id", "_id"}:
        return None
    return columns[0].strip(), columns[1].strip()


def _rows(path: Path, field: str | None) -> dict[str, str]:
    jsonl = path.suffix.lower() in {".jsonl", ".json"}
    topics: dict[str, str] = {}
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            entry = _jsonl_entry(number, raw, field) if jsonl else _tsv_entry(number, raw.rstrip(b"\r\n"))
            if entry is None:
                continue
            if entry[0] in topics:
                raise TopicsError(f"line {number}: duplicate query id {entry[0]!r}")
            topics[entry[0]] = entry[1]
    return topics


def _is_trec(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4096).lstrip()[:4].lower() == b"<top"


def load_topics(path: Path, field: str | None = None) -> dict[str, str]:
    """Query id -> query text; raises :class:`TopicsError` naming the file and line.  A BEIR
    folder is its ``queries.jsonl``."""
    if path.is_dir():
        path = path / "queries.jsonl"
    with in_file(path, TopicsError):
        if _is_trec(path):
            topics = _trec(path.read_text(encoding="utf-8"), field or "title")
        else:
            topics = _rows(path, field)
    if not topics:
        raise TopicsError(f"{path}: no topics")
    return topics
