"""TREC document files (``<DOC> <DOCNO>id</DOCNO> ... <TEXT>...</TEXT> </DOC>``), read streaming.

A document's text is every ``<TEXT>`` section joined (markup inside removed, whitespace
collapsed); its title the first ``<TITLE>``, ``<HEADLINE>`` or ``<HEAD>`` section.  Files may be
gzipped (``.gz``).  Errors give the line where the document starts.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, cast

__all__ = ["TITLE_TAGS", "TrecDocError", "is_trec_documents", "trec_documents"]

TITLE_TAGS = ("title", "headline", "head")
_SECTION = re.compile(r"<(docno|text|title|headline|head)\b[^>]*>(.*?)</\1\s*>", re.S | re.I)
_MARKUP = re.compile(r"<[^>]*>")


class TrecDocError(ValueError):
    """A malformed TREC document; the message names the line."""


def _open(path: Path) -> IO[bytes]:
    if path.suffix.lower() == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def is_trec_documents(path: Path) -> bool:
    """Whether the file's first tag is ``<DOC>``."""
    with _open(path) as handle:
        head = handle.read(4096).lstrip()
    return head[:5].upper() == b"<DOC>"


def _document(start: int, body: str) -> tuple[str, dict[str, str], int]:
    sections: dict[str, list[str]] = {}
    for found in _SECTION.finditer(body):
        text = " ".join(_MARKUP.sub(" ", found.group(2)).split())
        sections.setdefault(found.group(1).lower(), []).append(text)
    docno = sections.get("docno", [""])[0]
    if not docno:
        raise TrecDocError(f"line {start}: <DOC> without a <DOCNO>")
    text = " ".join(t for t in sections.get("text", []) if t)
    if not text:
        raise TrecDocError(f"line {start}: document {docno!r} has no <TEXT>")
    entry = {"text": text}
    title = next((sections[tag][0] for tag in TITLE_TAGS if sections.get(tag, [""])[0]), None)
    if title:
        entry = {"title": title, **entry}
    return docno, entry, start


def trec_documents(
    path: Path, update: Callable[[bytes], object]
) -> Iterator[tuple[str, dict[str, str], int]]:
    """(docno, {title?, text}, line where the document starts); every raw line is passed to
    ``update`` (the corpus digest)."""
    start = 0
    body: list[str] | None = None
    with _open(path) as handle:
        for number, raw in enumerate(handle, start=1):
            update(raw)
            text = raw.decode("utf-8")
            if text.lstrip().upper().startswith("<DOC>"):
                if body is not None:
                    raise TrecDocError(f"line {number}: <DOC> inside the document of line {start}")
                start, body = number, []
                text = text[text.upper().index("<DOC>") + 5 :]
            closing = text.upper().find("</DOC>")
            if body is None:
                if text.strip():
                    raise TrecDocError(f"line {number}: text outside <DOC> ... </DOC>")
            elif closing >= 0:
                yield _document(start, "".join(body) + text[:closing])
                body = None
            else:
                body.append(text)
    if body is not None:
        raise TrecDocError(f"line {start}: <DOC> never closed")
