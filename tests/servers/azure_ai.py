"""A local Cohere rerank deployment on Azure AI Foundry.

Routes: ``POST /v1/rerank`` (Cohere v1: objects with ``rank_fields``, ``max_chunks_per_doc``)
and ``POST /v2/rerank`` or ``/providers/cohere/v2/rerank`` (Cohere v2: strings,
``max_tokens_per_doc``), any query string (``?api-version=…``) accepted.  Auth
``Authorization: Bearer <key>``.  Bodies are checked as Cohere checks them (unknown fields,
strings on v2, rank fields on v1) and refused with Cohere's ``{"message"}``; Azure's gateway
answers auth failures and injected faults with ``{"error": {"code", "message"}}``.  Answers
are Cohere's ``{id, results: [{index, relevance_score}], meta}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.cohere_server import V1_FIELDS, V2_FIELDS, v1_text
from tests.wire_server import Recorded, Reply, WireServer, ranked

ROUTES = {"/v1/rerank": 1, "/v2/rerank": 2, "/providers/cohere/v2/rerank": 2}
CODES = {401: "Unauthorized", 429: "429", 500: "InternalServerError", 503: "ServiceUnavailable"}


def check(body: Any, version: int) -> str | None:
    """Cohere's 400 message for a body, or None."""
    if not isinstance(body, dict):
        return "invalid request: body must be a JSON object"
    if unknown := sorted(set(body) - (V2_FIELDS if version == 2 else V1_FIELDS)):
        return f"invalid request: unknown field: parameter {unknown[0]} is not a valid field"
    if not isinstance(body.get("query"), str) or not body["query"].strip():
        return "invalid request: query must be a non-empty string"
    documents = body.get("documents")
    if not isinstance(documents, list) or not 1 <= len(documents) <= 10_000:
        return "invalid request: documents must be a list of 1 to 10000 items"
    for name in ("top_n", "max_tokens_per_doc", "max_chunks_per_doc"):
        value = body.get(name)
        if value is not None and (type(value) is not int or value < 1):
            return f"invalid request: {name} must be a positive integer"
    if version == 2:
        return (
            None
            if all(isinstance(d, str) for d in documents)
            else "invalid request: documents must be strings"
        )
    fields = body.get("rank_fields") or ["text"]
    for i, doc in enumerate(documents):
        if isinstance(doc, dict) and any(not isinstance(doc.get(f), str) for f in fields):
            return f"invalid request: document {i} is missing a string for rank fields {fields}"
    return None


class AzureAIServer(WireServer):
    def __init__(self, api_key: str = "test-azure-key") -> None:
        super().__init__()
        self.api_key = api_key

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"code": CODES.get(status, str(status)), "message": message}}

    def answer(self, record: Recorded) -> Reply:
        version = ROUTES.get(record.path.split("?")[0])
        if record.method != "POST" or version is None:
            return 404, {}, self.error_body(404, "Resource not found")
        if record.headers.get("authorization") != f"Bearer {self.api_key}":
            message = "Access denied due to invalid subscription key or wrong API endpoint."
            return 401, {}, self.error_body(401, message)
        body = record.body
        if problem := check(body, version):
            return 400, {}, {"message": problem}
        texts = [v1_text(d, body.get("rank_fields")) for d in body["documents"]]
        results = [
            {"index": i, "relevance_score": s} for i, s in ranked(body["query"], texts, body.get("top_n"))
        ]
        meta = {"api_version": {"version": str(version)}, "billed_units": {"search_units": 1}}
        return 200, {}, {"id": str(uuid.uuid4()), "results": results, "meta": meta}


@contextmanager
def azure_ai_server(api_key: str = "test-azure-key") -> Iterator[AzureAIServer]:
    with AzureAIServer(api_key) as server:
        yield server
