"""Make any unified request fit an endpoint, and put the answers back together.

Where an endpoint lacks something the line asks for, it is done here instead of
being dropped: object documents are rendered to text (using ``rank_fields``);
``max_tokens_per_doc`` truncates; ``max_chunks_per_doc`` splits each document
into windows, ranks the windows and keeps each document's best score (max-pooling);
image documents go through untouched where the endpoint takes them and are refused where not;
candidate lists longer than the endpoint's limit are split into several requests.
Client-side "tokens" are whitespace-separated words: an approximation, since each
model has its own tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from providers.adapter import Capabilities
from providers.errors import ConfigurationError
from providers.render import document_text, is_image
from providers.types import Document, RankedDocument, RerankRequest, sort_and_cut

__all__ = ["DEFAULT_CHUNK_WORDS", "Part", "merge", "plan"]

DEFAULT_CHUNK_WORDS = 512
"""Window size when ``max_chunks_per_doc`` is given without ``max_tokens_per_doc``."""


@dataclass(frozen=True, slots=True)
class Part:
    request: RerankRequest
    owners: list[int]
    """For each document of ``request``, the index of the caller's document it came from."""


def _words(text: str) -> list[str]:
    return text.split()


def _windows(text: str, size: int, count: int) -> list[str]:
    words = _words(text)
    if not words:
        return [text]
    return [" ".join(words[i : i + size]) for i in range(0, len(words), size)][:count]


def _refuse_images(documents: list[Document], caps: Capabilities) -> None:
    if caps.image_documents:
        return
    found = next((i for i, d in enumerate(documents) if is_image(d)), None)
    if found is not None:
        raise ConfigurationError(
            f"documents[{found}] is an image (a data:image/ URL); this endpoint ranks text only "
            "(image documents: NVIDIA NIM's /v1/ranking, see docs/providers.md)"
        )


def _as_text(document: Document, rank_fields: list[str] | None) -> Document:
    return document if is_image(document) else document_text(document, rank_fields)


def _pieces(document: Document, size: int, count: int) -> list[Document]:
    return [document] if isinstance(document, dict) else list(_windows(document, size, count))


def _cut(document: Document, limit: int) -> Document:
    return document if isinstance(document, dict) else " ".join(_words(document)[:limit]) or document


def plan(request: RerankRequest, caps: Capabilities) -> list[Part]:
    """The requests a line takes on an endpoint; raises ConfigurationError for a line holding
    image documents the endpoint cannot take."""
    documents: list[Document] = list(request.documents)
    owners = list(range(len(documents)))
    rank_fields, top_n = request.rank_fields, request.top_n
    max_chunks, max_tokens = request.max_chunks_per_doc, request.max_tokens_per_doc
    chunk_here = max_chunks is not None and not caps.max_chunks_per_doc
    truncate_here = max_tokens is not None and not caps.max_tokens_per_doc and not chunk_here
    has_objects = any(isinstance(d, dict) for d in documents)
    if has_objects:
        _refuse_images(documents, caps)
    if has_objects and (not caps.object_documents or chunk_here or truncate_here):
        documents = [_as_text(d, rank_fields) for d in documents]
        rank_fields = None
    if chunk_here:
        size, count = max_tokens or DEFAULT_CHUNK_WORDS, max_chunks or 1
        chunked: list[Document] = []
        owners = []
        for index, text in enumerate(documents):
            for window in _pieces(text, size, count):
                chunked.append(window)
                owners.append(index)
        documents = chunked
        # a document's windows compete with each other, so the endpoint's top_n would cut wrongly
        max_chunks = max_tokens = top_n = None
    elif truncate_here:
        limit = max_tokens or 0
        documents = [_cut(d, limit) for d in documents]
        max_tokens = None
    if not caps.top_n:
        top_n = None
    size = caps.max_documents or len(documents)
    return [
        Part(
            replace(
                request,
                documents=documents[start : start + size],
                rank_fields=rank_fields,
                top_n=top_n,
                max_chunks_per_doc=max_chunks,
                max_tokens_per_doc=max_tokens,
                return_documents=False,
            ),
            owners[start : start + size],
        )
        for start in range(0, len(documents), size)
    ]


def merge(answers: list[tuple[Part, list[RankedDocument]]], top_n: int | None) -> list[RankedDocument]:
    """Map each part's results back to the caller's documents, keep each one's best
    score, sort, cut to ``top_n``."""
    best: dict[int, float] = {}
    for part, results in answers:
        for result in results:
            owner = part.owners[result.index]
            if owner not in best or result.relevance_score > best[owner]:
                best[owner] = result.relevance_score
    merged = [RankedDocument(index=i, relevance_score=s) for i, s in best.items()]
    return sort_and_cut(merged, top_n)
