"""The dataset format: one JSON object per line, checked field by field.

Every problem is reported as (line number, field, reason); a line can have
several.  Parsing is streaming: one line in memory at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from jobs import keys
from providers.types import Document

MAX_DOCUMENTS = 10_000
MAX_ID_CHARS = 512
OPTIONAL_FIELDS = (
    "model",
    "top_n",
    "rank_fields",
    "return_documents",
    "max_chunks_per_doc",
    "max_tokens_per_doc",
    "metadata",
)
KNOWN_FIELDS = frozenset(("id", "query", "documents", *OPTIONAL_FIELDS))


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    reason: str


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


def _check_document(index: int, doc: Any) -> FieldError | None:
    where = f"documents[{index}]"
    if isinstance(doc, str):
        return None
    if not isinstance(doc, dict):
        return FieldError(where, f"must be a string or an object, got {_kind(doc)}")
    if "id" in doc and (reason := _check_id(doc["id"])):
        return FieldError(f"{where}.id", reason)
    if "text" in doc and not isinstance(doc["text"], str):
        return FieldError(f"{where}.text", f"must be a string, got {_kind(doc['text'])}")
    if not any(k != "id" for k in doc):
        return FieldError(where, "has no fields to rank besides id")
    return None


def _check_documents(value: Any) -> list[FieldError]:
    if not isinstance(value, list):
        return [FieldError("documents", f"must be an array, got {_kind(value)}")]
    if not value:
        return [FieldError("documents", "must not be empty")]
    if len(value) > MAX_DOCUMENTS:
        return [FieldError("documents", f"has {len(value)} items; at most {MAX_DOCUMENTS} per line")]
    if set(map(type, value)) == {str}:  # the common case, checked at C speed
        return []
    return [e for i, d in enumerate(value) if (e := _check_document(i, d))]


def _check_optional(name: str, value: Any) -> str | None:
    if name in ("top_n", "max_chunks_per_doc", "max_tokens_per_doc"):
        return _positive_int(value)
    if name == "return_documents":
        return None if isinstance(value, bool) else f"must be true or false, got {_kind(value)}"
    if name == "model":
        if not isinstance(value, str) or not value.strip():
            return "must be a non-empty string"
        return None
    if name == "rank_fields":
        if not isinstance(value, list) or not value:
            return "must be a non-empty array of field names"
        if not all(isinstance(f, str) and f for f in value):
            return "must contain only non-empty strings"
    return None


def parse_line(
    line_no: int, raw: bytes, model_problem: Callable[[str], str | None] | None = None
) -> DatasetLine | LineError:
    """Check one line and build it; ``model_problem`` says what is wrong with a model name."""
    checked = check_line(line_no, raw, model_problem)
    return checked if isinstance(checked, LineError) else _line_from(line_no, checked)


def check_line(
    line_no: int, raw: bytes, model_problem: Callable[[str], str | None] | None = None
) -> dict[str, Any] | LineError:
    """The line's JSON object when every field is right, else all its problems."""
    obj = _json_object(line_no, raw)
    if isinstance(obj, LineError):
        return obj
    errors = [*_required_field_errors(obj), *_other_field_errors(obj, model_problem)]
    return LineError(line_no, tuple(errors), raw) if errors else obj


def _json_object(line_no: int, raw: bytes) -> dict[str, Any] | LineError:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return LineError(line_no, (FieldError("(line)", f"invalid JSON: {exc}"),), raw)
    if not isinstance(obj, dict):
        return LineError(line_no, (FieldError("(line)", f"must be a JSON object, got {_kind(obj)}"),), raw)
    return obj


def _required_field_errors(obj: dict[str, Any]) -> Iterator[FieldError]:
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
        yield from _check_documents(obj["documents"])


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
        metadata=obj.get("metadata"),
        has_metadata="metadata" in obj,
    )


def valid_id_key(raw_id: Any) -> str | None:
    """The id's key when the id itself is valid (whatever else is wrong with the line)."""
    return None if _check_id(raw_id) else keys.line_key(raw_id)


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) for every non-blank line, streaming."""
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            stripped = raw.strip()
            if stripped:
                yield line_no, stripped
