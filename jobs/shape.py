"""The size and shape policy: whatever passes here, enqueue can serialize unchanged.

orjson writes at most 254 levels of nesting and integers in [-2**63, 2**64 - 1], and reads a
larger integer as a float; so nesting is capped at :data:`MAX_DEPTH` and every integer
in the line must fit 64 bits, besides the per-line and per-document byte limits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "DEFAULT_LIMITS",
    "DIGITS_AS_ZERO",
    "INT_RANGE",
    "LONG_NUMBER",
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_LINE_BYTES",
    "FieldError",
    "LineLimits",
    "shape_errors",
]

MAX_DEPTH = 64
"""Levels of nesting in a line, the line's own object being the first (orjson writes 254, and a
job wraps the line in three more)."""
MAX_LINE_BYTES = 8 * 1024 * 1024
"""Default per-line limit (``--max-line-bytes``, ``RR_MAX_LINE_BYTES``)."""
MAX_DOCUMENT_BYTES = 1024 * 1024
"""Default per-document limit, in UTF-8 bytes of the string or of the object's JSON
(``--max-document-bytes``, ``RR_MAX_DOCUMENT_BYTES``)."""
INT_RANGE = (-(2**63), 2**64 - 1)
"""Integers orjson reads and writes exactly."""
DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
LONG_NUMBER = b"0" * 19
"""With every digit written as 0: a run of digits that may be an integer past 64 bits (2**63
has 19 digits).  Two C-speed passes instead of a regex, which costs more than parsing."""


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    reason: str


@dataclass(frozen=True, slots=True)
class LineLimits:
    max_line_bytes: int = MAX_LINE_BYTES
    max_document_bytes: int = MAX_DOCUMENT_BYTES


DEFAULT_LIMITS = LineLimits()


def _too_deep(value: Any, levels: int) -> bool:
    """Whether ``value`` nests more than ``levels`` levels (a scalar is none)."""
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return False
    if levels < 1:
        return True
    return any(isinstance(c, dict | list) and _too_deep(c, levels - 1) for c in children)


def _wide_integer(value: Any, where: str) -> str | None:
    """Where in ``value`` (parsed keeping integers exact) an integer does not fit 64 bits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return where if not INT_RANGE[0] <= value <= INT_RANGE[1] else None
    if isinstance(value, dict):
        return next((w for k, v in value.items() if (w := _wide_integer(v, f"{where}.{k}"))), None)
    if isinstance(value, list):
        return next((w for i, v in enumerate(value) if (w := _wide_integer(v, f"{where}[{i}]"))), None)
    return None


def shape_errors(raw: bytes, obj: dict[str, Any], limits: LineLimits) -> list[FieldError]:
    """Nesting, document sizes and integer range: what enqueue could not write unchanged."""
    documents = obj.get("documents")
    docs = documents if isinstance(documents, list) else []
    # fewer brackets than levels: nothing can nest too deep (counted at C speed)
    may_nest = raw.count(b"{") + raw.count(b"[") > MAX_DEPTH - 2
    errors = _nesting_errors(obj.get("metadata"), docs) if may_nest else []
    if not errors and (len(raw) > limits.max_document_bytes or may_nest):  # else each is smaller
        errors = _document_size_errors(docs, limits.max_document_bytes)
    if not errors and LONG_NUMBER in raw.translate(DIGITS_AS_ZERO):
        errors += _wide_integer_errors(raw)
    return errors


def _nesting_errors(metadata: Any, docs: list[Any]) -> list[FieldError]:
    errors = []
    if metadata is not None and _too_deep(metadata, MAX_DEPTH - 1):
        errors.append(FieldError("metadata", f"nests deeper than {MAX_DEPTH} levels (counting the line)"))
    for index, doc in enumerate(docs):
        if isinstance(doc, dict | list) and _too_deep(doc, MAX_DEPTH - 2):
            errors.append(FieldError(f"documents[{index}]", f"nests deeper than {MAX_DEPTH} levels"))
    return errors


def _document_size_errors(docs: list[Any], limit: int) -> list[FieldError]:
    if set(map(type, docs)) <= {str} and (not docs or max(map(len, docs)) * 4 <= limit):
        return []  # no string can be over: checked at C speed
    errors = []
    for index, doc in enumerate(docs):
        if isinstance(doc, str):
            size = len(doc.encode()) if len(doc) * 4 > limit else 0
        else:
            size = len(orjson.dumps(doc))
        if size > limit:
            reason = f"is {size} bytes; at most {limit} per document (--max-document-bytes)"
            errors.append(FieldError(f"documents[{index}]", reason))
    return errors


def _wide_integer_errors(raw: bytes) -> list[FieldError]:
    """orjson has read any integer past 64 bits as a float: look again, exactly."""
    try:
        exact = json.loads(raw)
    except RecursionError:
        return [FieldError("(line)", f"nests deeper than {MAX_DEPTH} levels")]
    return [
        FieldError(name, f"holds an integer outside the 64-bit range at {where}")
        for name, value in exact.items()
        if (where := _wide_integer(value, name))
    ]
