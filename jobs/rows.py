"""What the readers of IR files share: a JSONL row as an object, and an id field of it, with the
error of the caller's own type naming the line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

__all__ = ["id_field", "json_object"]


def json_object(number: int, raw: bytes, error: type[ValueError]) -> dict[str, Any]:
    try:
        obj: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise error(f"line {number}: invalid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise error(f"line {number}: must be a JSON object")
    return obj


def id_field(
    obj: dict[str, Any], names: Sequence[str], number: int, error: type[ValueError], what: str
) -> str:
    """The first of ``names`` the object has, as a string: it must be a non-blank string or an
    integer (else ``error`` saying ``needs WHAT (names)``)."""
    found = next((obj[name] for name in names if name in obj), None)
    if isinstance(found, bool) or not isinstance(found, str | int) or not str(found).strip():
        raise error(f"line {number}: needs {what} ({', '.join(names)}): a string or an integer")
    return str(found)
