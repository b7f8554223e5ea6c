"""The terms the key-free local models see, and the collection statistics they score with.

One tokenizer for ``local/bm25`` and ``local/ql``, for the candidates of a line and for a whole
corpus alike (statistics computed with another tokenizer would describe other terms):
lower-cased runs of two or more word characters, English stopwords removed (bm25s's list),
each stemmed with the English Snowball stemmer (Porter2, PyStemmer: the pure-Python
``snowballstemmer`` takes a millisecond a word, too slow for a corpus).

:class:`CollectionStats` holds what both models need from a collection: the number of
documents, their total length, and per term its document frequency and collection frequency.
:func:`collect` computes them, :meth:`CollectionStats.to_bytes` / :meth:`CollectionStats.from_bytes`
carry them through Redis.  Nothing here does I/O.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
import Stemmer

from providers.types import Document

__all__ = [
    "STATS_FORMAT",
    "CollectionStats",
    "StatsFormatError",
    "collect",
    "plain_text",
    "tokenize",
]

STATS_FORMAT = 1
"""Bumped whenever the tokenizer or the blob changes, so stored statistics are never misread."""

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_STEMMER = Stemmer.Stemmer("english")
_STEMS: dict[str, str] = {}
_MAX_MEMO = 1_000_000


def _stem(word: str) -> str:
    # Vocabularies repeat: memoised, a corpus stems each distinct word once.
    stem = _STEMS.get(word)
    if stem is None:
        stem = str(_STEMMER.stemWord(word))
        if len(_STEMS) < _MAX_MEMO:
            _STEMS[word] = stem
    return stem


@functools.cache
def _stopwords() -> frozenset[str]:
    # Imported on first use: bm25s's package import pulls in scipy (~0.13 s), which enqueue,
    # importing this module through the provider table, never needs.
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize(text: str) -> list[str]:
    stopwords = _stopwords()
    return [_stem(word) for word in _TOKEN.findall(text.lower()) if word not in stopwords]


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_scalar(v) for v in value)
    return "" if isinstance(value, dict | bool) or value is None else str(value)


def plain_text(document: Document, rank_fields: list[str] | None) -> str:
    """A document's text for a lexical model: field values only (a field's name is not a word of
    the document), the ``rank_fields`` in order, else every field but ``id``."""
    if isinstance(document, str):
        return document
    fields = rank_fields if rank_fields else [k for k in document if k != "id"]
    return "\n".join(_scalar(document[name]) for name in fields if name in document)


class StatsFormatError(ValueError):
    """A statistics blob this version cannot read."""


@dataclass(frozen=True, slots=True)
class CollectionStats:
    documents: int
    length: int
    """Tokens in the whole collection."""
    df: Mapping[str, int]
    """Term -> documents containing it."""
    cf: Mapping[str, int]
    """Term -> occurrences in the collection."""
    digest: str = ""
    """What the statistics describe (the corpus digest); part of a cached score's key."""

    @property
    def average_length(self) -> float:
        return self.length / self.documents if self.documents else 0.0

    def to_bytes(self) -> bytes:
        terms = sorted(self.df)
        body = [STATS_FORMAT, self.digest, self.documents, self.length, terms]
        body += [[self.df[t] for t in terms], [self.cf[t] for t in terms]]
        return zlib.compress(msgpack.packb(body), 6)

    @classmethod
    def from_bytes(cls, blob: bytes) -> CollectionStats:
        try:
            version, digest, documents, length, terms, dfs, cfs = msgpack.unpackb(zlib.decompress(blob))
        except (zlib.error, ValueError, TypeError, msgpack.UnpackException) as exc:
            raise StatsFormatError(f"unreadable collection statistics ({exc})") from exc
        if version != STATS_FORMAT:
            raise StatsFormatError(
                f"collection statistics of format {version}, this version reads {STATS_FORMAT}"
            )
        return cls(
            documents, length, dict(zip(terms, dfs, strict=True)), dict(zip(terms, cfs, strict=True)), digest
        )


def collect(token_lists: Iterable[list[str]], digest: str = "") -> CollectionStats:
    df: Counter[str] = Counter()
    cf: Counter[str] = Counter()
    documents = length = 0
    for tokens in token_lists:
        documents += 1
        length += len(tokens)
        cf.update(tokens)
        df.update(set(tokens))
    return CollectionStats(documents, length, dict(df), dict(cf), digest)
