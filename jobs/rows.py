"""What the readers of IR files share: a JSONL row as an object, an id field of it, and the
file's name put in front of every error (the caller's own type) about one of its lines."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

__all__ = ["id_field", "in_file", "json_object"]


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


@contextmanager
def in_file(path: Path, error: type[ValueError]) -> Iterator[None]:
    """Errors inside name the file: ``error("{path}: line N: ...")``; an unreadable file
    (missing, not UTF-8, a broken gzip stream) becomes ``error`` too."""
    try:
        yield
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise error(f"{path}: {exc}") from exc
    except error as exc:
        raise error(f"{path}: {exc}") from exc
