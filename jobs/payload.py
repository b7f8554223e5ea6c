"""The JSON argument of one ``rerank_line`` job: written by enqueue, read by the worker, the
result records and the dead-letter store.

A ``TypedDict`` rather than a class: orjson encodes and decodes it at full speed, and the
same dict is what lands in Redis.  Optional fields are absent (not null) when unset, so a
payload carries only what the line said.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from jobs.dataset import DatasetLine
from providers.types import Document, RerankRequest

__all__ = ["LinePayload", "line_payload", "rerank_request"]


class LinePayload(TypedDict):
    batch: str
    line: int
    """The line's number in the dataset file (1-based)."""
    id: str | int
    """The user's own id, as written (its type survives to the export)."""
    model: str
    """The line's model, or the batch's default model when the line named none."""
    run: NotRequired[str]
    """The batch's run identity when enqueued (absent in jobs of older versions)."""
    query: str
    documents: list[Document]
    """The documents; in a queued job, those at the ``stored`` positions are content hashes."""
    stored: NotRequired[list[int]]
    """Positions of documents kept in the document store (:mod:`jobs.docstore`); absent once the
    worker has put them back, and in jobs whose documents are all inline."""
    top_n: NotRequired[int]
    rank_fields: NotRequired[list[str]]
    max_chunks_per_doc: NotRequired[int]
    max_tokens_per_doc: NotRequired[int]
    return_documents: NotRequired[bool]
    provider_params: NotRequired[dict[str, Any]]
    """The line's provider-specific parameters (absent when it gave none)."""
    metadata: NotRequired[Any]
    corpus: NotRequired[str]
    """The ``--corpus`` digest, whose statistics the local lexical models score with."""
    no_cache: NotRequired[bool]
    """``enqueue --no-cache``: request every document (fresh scores still refresh the cache)."""


def line_payload(
    batch: str, line: DatasetLine, model: str, run: str, corpus: str | None = None
) -> LinePayload:
    """Everything the worker and the result record need for one line, nothing else."""
    payload: LinePayload = {
        "batch": batch,
        "line": line.line_no,
        "id": line.id,
        "model": model,
        "run": run,
        "query": line.query,
        "documents": line.documents,
    }
    if line.top_n is not None:
        payload["top_n"] = line.top_n
    if line.rank_fields is not None:
        payload["rank_fields"] = line.rank_fields
    if line.max_chunks_per_doc is not None:
        payload["max_chunks_per_doc"] = line.max_chunks_per_doc
    if line.max_tokens_per_doc is not None:
        payload["max_tokens_per_doc"] = line.max_tokens_per_doc
    if line.return_documents:
        payload["return_documents"] = True
    if line.provider_params:
        payload["provider_params"] = line.provider_params
    if line.has_metadata:
        payload["metadata"] = line.metadata
    if corpus is not None:
        payload["corpus"] = corpus
    return payload


def rerank_request(payload: LinePayload) -> RerankRequest:
    """The unified rerank request a payload asks for."""
    return RerankRequest(
        query=payload["query"],
        documents=payload["documents"],
        top_n=payload.get("top_n"),
        rank_fields=payload.get("rank_fields"),
        return_documents=payload.get("return_documents", False),
        max_chunks_per_doc=payload.get("max_chunks_per_doc"),
        max_tokens_per_doc=payload.get("max_tokens_per_doc"),
        provider_params=payload.get("provider_params"),
    )
