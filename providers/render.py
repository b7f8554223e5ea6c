"""Turn object documents into the text a string-only ranker sees."""

from __future__ import annotations

from typing import Any

import orjson

from providers.types import Document

__all__ = ["IMAGE_PREFIX", "document_text", "is_image"]

IMAGE_PREFIX = "data:image/"
"""An object document whose ``image`` is a data URL is an image, never text to rank."""


def is_image(document: Document) -> bool:
    image = document.get("image") if isinstance(document, dict) else None
    return isinstance(image, str) and image.startswith(IMAGE_PREFIX)


def _scalar_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def document_text(document: Document, rank_fields: list[str] | None) -> str:
    """A string document as is; an object as ``field: value`` lines.

    With ``rank_fields`` only those fields are rendered, in that order (missing
    ones are skipped); without, every field except ``id`` is.  This is the YAML-like
    form Cohere recommends for structured data on its string-only v2 endpoint.
    """
    if isinstance(document, str):
        return document
    fields = rank_fields if rank_fields else [k for k in document if k != "id"]
    if fields == ["text"] and "text" in document:
        return _scalar_text(document["text"])
    return "\n".join(f"{name}: {_scalar_text(document[name])}" for name in fields if name in document)
