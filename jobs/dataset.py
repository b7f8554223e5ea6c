"""The dataset format: one JSON object per line, checked field by field.

Every problem is reported as (line number, field, reason); a line can have
several.  Parsing is streaming: one line in memory at a time, and never more than
``max_line_bytes`` of it (a longer line is skipped over and reported).

The size and shape policy (nesting, integer range, byte limits) is jobs/shape.py.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from jobs import keys
from jobs.shape import (
    DEFAULT_LIMITS,
    DIGITS_AS_ZERO,
    INT_RANGE,
    LONG_NUMBER,
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_LINE_BYTES,
    FieldError,
    LineLimits,
    shape_errors,
)
from providers.types import Document

__all__ = [
    "DEFAULT_LIMITS",
    "DIGITS_AS_ZERO",
    "ID_FIELDS",
    "INT_RANGE",
    "KNOWN_FIELDS",
    "LONG_NUMBER",
    "MAX_DEPTH",
    "MAX_DOCUMENTS",
    "MAX_DOCUMENT_BYTES",
    "MAX_ID_CHARS",
    "MAX_LINE_BYTES",
    "ONLY_IDS",
    "OPTIONAL_FIELDS",
    "RAW_SHOWN",
    "READ_BUFFER",
    "DatasetLine",
    "FieldError",
    "LineError",
    "LineLimits",
    "LongLine",
    "check_line",
    "document_reference",
    "parse_line",
    "read_lines",
    "trusted_line",
    "valid_id_key",
]

MAX_DOCUMENTS = 10_000
MAX_ID_CHARS = 512
RAW_SHOWN = 1024
READ_BUFFER = 1 << 20
"""How much of an over-long line the rejects file keeps."""
OPTIONAL_FIELDS = (
    "model",
    "top_n",
    "rank_fields",
    "return_documents",
    "max_chunks_per_doc",
    "max_tokens_per_doc",
    "provider_params",
    "metadata",
)
KNOWN_FIELDS = frozenset(("id", "query", "documents", *OPTIONAL_FIELDS))
ID_FIELDS = frozenset(("id", "_id", "docid", "doc_id"))
"""Fields that name a document rather than hold text to rank (corpus files' spellings)."""
ONLY_IDS = (
    "are only ids, with no text to rank; give each document's text (a string, or an object "
    "with a text field), or pass --corpus FILE to look the ids up; rankers never see ids"
)


@dataclass(frozen=True, slots=True)
class LongLine:
    """A line longer than the limit: its size and its start, never the whole of it."""

    size: int
    head: bytes


@dataclass(frozen=True, slots=True)
class LineError:
    line_no: int
    errors: tuple[FieldError, ...]
    raw: bytes

    def describe(self) -> list[str]:
        return [f"line {self.line_no}: {e.field}: {e.reason}" for e in self.errors]

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line_no,
            "errors": [{"field": e.field, "reason": e.reason} for e in self.errors],
            "raw": self.raw.decode("utf-8", errors="replace"),
        }


@dataclass(slots=True)  # not frozen: built once per line, and frozen init costs ~3x
class DatasetLine:
    line_no: int
    id: str | int
    query: str
    documents: list[Document]
    model: str | None = None
    top_n: int | None = None
    rank_fields: list[str] | None = None
    return_documents: bool = False
    max_chunks_per_doc: int | None = None
    max_tokens_per_doc: int | None = None
    provider_params: dict[str, Any] | None = None
    metadata: Any = None
    has_metadata: bool = field(default=False, compare=False)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _positive_int(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be a positive integer, got {_kind(value)}"
    if value < 1:
        return f"must be a positive integer, got {value}"
    return None


def _check_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return f"must be a string or an integer, got {_kind(value)}"
    if isinstance(value, str) and not value.strip():
        return "must not be empty"
    if len(str(value)) > MAX_ID_CHARS:
        return f"is longer than {MAX_ID_CHARS} characters"
    return None


def _rankable(value: Any) -> bool:
    """A value a ranker can read: text (or structured data, rendered as JSON), never a bare
    number, boolean or null (a retrieval score, a rank, a flag)."""
    return (isinstance(value, str) and bool(value.strip())) or isinstance(value, dict | list)


def _only_ids(doc: Any) -> bool:
    return isinstance(doc, dict) and not any(_rankable(v) for k, v in doc.items() if k not in ID_FIELDS)


def document_reference(doc: Any) -> str | None:
    """The id a document is given by (an object with an id and nothing to rank), else None."""
    if not _only_ids(doc):
        return None
    found = next((doc[name] for name in ID_FIELDS if name in doc), None)
    if found is None or _check_id(found):
        return None
    return keys.line_key(found)


def _check_document(
    index: int, doc: Any, rank_fields: Any, corpus: Container[str] | None
) -> FieldError | None:
    where = f"documents[{index}]"
    if isinstance(doc, str):
        return None
    if not isinstance(doc, dict):
        return FieldError(where, f"must be a string or an object, got {_kind(doc)}")
    if "id" in doc and (reason := _check_id(doc["id"])):
        return FieldError(f"{where}.id", reason)
    if "text" in doc and not isinstance(doc["text"], str):
        return FieldError(f"{where}.text", f"must be a string, got {_kind(doc['text'])}")
    if corpus is not None and _only_ids(doc):
        key = document_reference(doc)
        if key is None:
            return FieldError(where, "has no text to rank and no id to look up in the corpus")
        return None if key in corpus else FieldError(where, f"id {key!r} is not in the corpus")
    if _only_ids(doc):
        fields = ", ".join(sorted(doc)) or "none"
        return FieldError(where, f"has no text to rank besides its id (fields: {fields})")
    names = rank_fields if isinstance(rank_fields, list) else []
    if names and all(isinstance(f, str) for f in names) and not any(_rankable(doc.get(f)) for f in names):
        return FieldError(where, f"has none of rank_fields ({', '.join(names)}) to rank")
    return None


def _check_documents(
    value: Any, rank_fields: Any = None, corpus: Container[str] | None = None
) -> list[FieldError]:
    if not isinstance(value, list):
        return [FieldError("documents", f"must be an array, got {_kind(value)}")]
    if not value:
        return [FieldError("documents", "must not be empty")]
    if len(value) > MAX_DOCUMENTS:
        return [FieldError("documents", f"has {len(value)} items; at most {MAX_DOCUMENTS} per line")]
    if set(map(type, value)) == {str}:  # the common case, checked at C speed
        return []
    if corpus is None and all(_only_ids(d) for d in value):  # one error, not one per document
        return [FieldError("documents", f"all {len(value)} documents {ONLY_IDS}")]
    return [e for i, d in enumerate(value) if (e := _check_document(i, d, rank_fields, corpus))]


def _check_optional(name: str, value: Any) -> str | None:
    if name in ("top_n", "max_chunks_per_doc", "max_tokens_per_doc"):
        return _positive_int(value)
    if name == "return_documents":
        return None if isinstance(value, bool) else f"must be true or false, got {_kind(value)}"
    if name == "model":
        if not isinstance(value, str) or not value.strip():
            return "must be a non-empty string"
        return None
    if name == "provider_params":
        # which keys and values are taken depends on the line's provider (jobs.validation)
        return None if isinstance(value, dict) else f"must be an object, got {_kind(value)}"
    if name == "rank_fields":
        if not isinstance(value, list) or not value:
            return "must be a non-empty array of field names"
        if not all(isinstance(f, str) and f for f in value):
            return "must contain only non-empty strings"
    return None


def parse_line(
    line_no: int,
    raw: bytes | LongLine,
    model_problem: Callable[[str], str | None] | None = None,
    limits: LineLimits = DEFAULT_LIMITS,
) -> DatasetLine | LineError:
    """Check one line and build it; ``model_problem`` says what is wrong with a model name."""
    checked = check_line(line_no, raw, model_problem, limits)
    return checked if isinstance(checked, LineError) else _line_from(line_no, checked)


def check_line(
    line_no: int,
    raw: bytes | LongLine,
    model_problem: Callable[[str], str | None] | None = None,
    limits: LineLimits = DEFAULT_LIMITS,
    corpus: Container[str] | None = None,
) -> dict[str, Any] | LineError:
    """The line's JSON object when every field is right, else all its problems; with a
    corpus (its ids), documents may be given by id."""
    if isinstance(raw, LongLine) or len(raw) > limits.max_line_bytes:
        size, head = (raw.size, raw.head) if isinstance(raw, LongLine) else (len(raw), raw[:RAW_SHOWN])
        why = f"is {size} bytes; at most {limits.max_line_bytes} per line (--max-line-bytes)"
        return LineError(line_no, (FieldError("(line)", why),), head)
    obj = _json_object(line_no, raw)
    if isinstance(obj, LineError):
        return obj
    if len(raw) <= limits.max_document_bytes and _plain(obj, model_problem):
        return obj
    errors = [
        *_required_field_errors(obj, corpus),
        *_other_field_errors(obj, model_problem),
        *shape_errors(raw, obj, limits),
    ]
    return LineError(line_no, tuple(errors), raw) if errors else obj


_PLAIN_FIELDS = frozenset(("id", "query", "documents", "model", "top_n"))


def _plain(obj: dict[str, Any], model_problem: Callable[[str], str | None] | None) -> bool:
    """Whether the line is the common one, right in every field: an id, a query, documents
    that are all strings, perhaps a model and ``top_n``.  Such a line nests two levels and
    holds no integer orjson did not read exactly (one past 64 bits is read as a float, which
    no field here accepts), so the field-by-field checks and :func:`shape_errors`, which cost
    more than the JSON decode, would find nothing.  False sends a line to them."""
    if not obj.keys() <= _PLAIN_FIELDS or not _plain_id(obj.get("id")):
        return False
    query, documents = obj.get("query"), obj.get("documents")
    if type(query) is not str or not query or query.isspace():
        return False
    if type(documents) is not list or not 0 < len(documents) <= MAX_DOCUMENTS:
        return False
    return set(map(type, documents)) == {str} and _plain_options(obj, model_problem)


def _plain_id(value: Any) -> bool:
    if type(value) is str:
        return bool(value) and not value.isspace() and len(value) <= MAX_ID_CHARS
    return type(value) is int  # a bool is no int here


def _plain_options(obj: dict[str, Any], model_problem: Callable[[str], str | None] | None) -> bool:
    top_n = obj.get("top_n")
    if top_n is not None and (type(top_n) is not int or top_n < 1):
        return False
    model = obj.get("model")
    if model is None:
        return True
    if type(model) is not str or not model or model.isspace():
        return False
    return model_problem is None or model_problem(model) is None


def _json_object(line_no: int, raw: bytes) -> dict[str, Any] | LineError:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return LineError(line_no, (FieldError("(line)", f"invalid JSON: {exc}"),), raw)
    if not isinstance(obj, dict):
        return LineError(line_no, (FieldError("(line)", f"must be a JSON object, got {_kind(obj)}"),), raw)
    return obj


def _required_field_errors(obj: dict[str, Any], corpus: Container[str] | None) -> Iterator[FieldError]:
    if "id" not in obj:
        yield FieldError("id", "is required")
    elif reason := _check_id(obj["id"]):
        yield FieldError("id", reason)
    query = obj.get("query")
    if "query" not in obj:
        yield FieldError("query", "is required")
    elif not isinstance(query, str) or not query.strip():
        yield FieldError("query", "must be a non-empty string")
    if "documents" not in obj:
        yield FieldError("documents", "is required")
    else:
        yield from _check_documents(obj["documents"], obj.get("rank_fields"), corpus)


def _other_field_errors(
    obj: dict[str, Any], model_problem: Callable[[str], str | None] | None
) -> Iterator[FieldError]:
    for name in OPTIONAL_FIELDS:
        if name in obj and obj[name] is not None and (reason := _check_optional(name, obj[name])):
            yield FieldError(name, reason)
    model = obj.get("model")
    if model_problem and isinstance(model, str) and model.strip() and (reason := model_problem(model)):
        yield FieldError("model", reason)
    for name in obj.keys() - KNOWN_FIELDS:
        yield FieldError(name, "is not a known field (put extra data under metadata)")


def trusted_line(line_no: int, raw: bytes) -> DatasetLine:
    """A line that already passed :func:`parse_line`, rebuilt without re-checking it."""
    return _line_from(line_no, orjson.loads(raw))


def _line_from(line_no: int, obj: dict[str, Any]) -> DatasetLine:
    return DatasetLine(
        line_no=line_no,
        id=obj["id"],
        query=obj["query"],
        documents=obj["documents"],
        model=obj.get("model"),
        top_n=obj.get("top_n"),
        rank_fields=obj.get("rank_fields"),
        return_documents=bool(obj.get("return_documents") or False),
        max_chunks_per_doc=obj.get("max_chunks_per_doc"),
        max_tokens_per_doc=obj.get("max_tokens_per_doc"),
        provider_params=obj.get("provider_params") or None,
        metadata=obj.get("metadata"),
        has_metadata="metadata" in obj,
    )


def valid_id_key(raw_id: Any) -> str | None:
    """The id's key when the id itself is valid (whatever else is wrong with the line)."""
    return None if _check_id(raw_id) else keys.line_key(raw_id)


def read_lines(path: Path, max_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | LongLine]]:
    """(line number, bytes) for every non-blank line, streaming; a line longer than
    ``max_bytes`` comes as a :class:`LongLine`, read past without being held."""
    room = max_bytes + 2  # the line and its line break (\r\n)
    # 1 MB of buffer: with the default 8 KB, most lines of several KB straddle a refill, and
    # readline then takes its slow path (twice the time of the whole read)
    with path.open("rb", buffering=READ_BUFFER) as handle:
        line_no = 0
        while raw := handle.readline(room):
            line_no += 1
            if len(raw) == room and not raw.endswith(b"\n"):
                size = len(raw)
                while rest := handle.readline(1 << 20):
                    size += len(rest)
                    if rest.endswith(b"\n"):
                        break
                yield line_no, LongLine(size, raw[:RAW_SHOWN])
            elif stripped := raw.strip():
                yield line_no, stripped
