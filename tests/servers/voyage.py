"""A local Voyage AI rerank API: ``POST /v1/rerank``.

Body ``{query, documents: [str], model, top_k?, return_documents?, truncation?}``: at
most 1,000 documents, ``top_n`` is not a Voyage field (``top_k`` is), unknown fields
and wrong types are 400 in Voyage's ``{"detail": ...}`` envelope, a bad key 401.
With ``truncation: false`` a document longer than the model's context is 400.  The
answer is ``{object: "list", data: [{relevance_score, index, document?}], model,
usage: {total_tokens}}`` sorted and cut to ``top_k``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.wire_server import Recorded, Reply, WireServer, ranked

FIELDS = {"query", "documents", "model", "top_k", "return_documents", "truncation"}
MODELS = frozenset({"rerank-2.5", "rerank-2.5-lite", "rerank-2", "rerank-2-lite"})
MAX_DOCUMENTS = 1000
CONTEXT_WORDS = 8000


def check(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "Request body must be a JSON object."
    if unknown := sorted(set(body) - FIELDS):
        return f"Unexpected argument '{unknown[0]}'."
    if not isinstance(body.get("query"), str) or not body["query"]:
        return "The query must be a non-empty string."
    documents = body.get("documents")
    if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
        return "The documents must be a list of strings."
    if not 1 <= len(documents) <= MAX_DOCUMENTS:
        return f"The number of documents must be between 1 and {MAX_DOCUMENTS}, got {len(documents)}."
    if body.get("model") not in MODELS:
        return f"Model {body.get('model')} is not supported. Supported models are {sorted(MODELS)}."
    top_k = body.get("top_k", 1)
    if type(top_k) is not int or top_k < 1:
        return "top_k must be a positive integer."
    for name in ("return_documents", "truncation"):
        if not isinstance(body.get(name, False), bool):
            return f"{name} must be a boolean."
    return None


class VoyageServer(WireServer):
    def __init__(self, api_key: str = "test-voyage-key") -> None:
        super().__init__()
        self.api_key = api_key

    def error_body(self, status: int, message: str) -> Any:
        return {"detail": message}

    def answer(self, record: Recorded) -> Reply:
        if (record.method, record.path.split("?")[0]) != ("POST", "/v1/rerank"):
            return 404, {}, {"detail": "Not Found"}
        if record.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {}, {"detail": "Provided API key is invalid."}
        body = record.body
        if problem := check(body):
            return 400, {}, {"detail": problem}
        query, documents = body["query"], body["documents"]
        lengths = [len(query.split()) + len(d.split()) for d in documents]
        if not body.get("truncation", True) and max(lengths) > CONTEXT_WORDS:
            return 400, {}, {"detail": "Input exceeds the context length and truncation is disabled."}
        data: list[dict[str, Any]] = []
        for index, value in ranked(query, documents, body.get("top_k")):
            item: dict[str, Any] = {"relevance_score": value, "index": index}
            if body.get("return_documents"):
                item["document"] = documents[index]
            data.append(item)
        usage = {"total_tokens": sum(min(n, CONTEXT_WORDS) for n in lengths)}
        return 200, {}, {"object": "list", "data": data, "model": body["model"], "usage": usage}


@contextmanager
def voyage_server(api_key: str = "test-voyage-key") -> Iterator[VoyageServer]:
    with VoyageServer(api_key) as server:
        yield server
