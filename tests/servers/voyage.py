"""A local Voyage AI rerank API: ``POST /v1/rerank``.

Body ``{query, documents: [str], model, top_k?, return_documents?, truncation?}``: at
most 1,000 documents, ``top_n`` is not a Voyage field (``top_k`` is), unknown fields
and wrong types are 400 in Voyage's ``{"detail": ...}`` envelope, a bad key 401.
With ``truncation: false`` a document longer than the model's context is 400.  The
answer is ``{object: "list", data: [{relevance_score, index, document?}], model,
usage: {total_tokens}}`` sorted and cut to ``top_k``.
"""

from __future__ import annotations

from typing import Any

from tests.servers.rules import counts, each, first_problem, flags, known_fields, listed, one_of, text
from tests.wire_server import Recorded, Reply, WireServer, results

FIELDS = {"query", "documents", "model", "top_k", "return_documents", "truncation"}
MODELS = frozenset({"rerank-2.5", "rerank-2.5-lite", "rerank-2", "rerank-2-lite"})
MAX_DOCUMENTS = 1000
CONTEXT_WORDS = 8000
RULES = (
    known_fields(FIELDS, "Unexpected argument '{name}'."),
    text("query", "The query must be a non-empty string."),
    each("documents", "The documents must be a list of strings."),
    listed(
        "documents",
        f"The number of documents must be between 1 and {MAX_DOCUMENTS}, got {{count}}.",
        1,
        MAX_DOCUMENTS,
    ),
    one_of("model", MODELS, f"Model {{value}} is not supported. Supported models are {sorted(MODELS)}."),
    counts(("top_k",), "top_k must be a positive integer.", null=False),
    flags(("return_documents", "truncation"), "{name} must be a boolean."),
)


def check(body: Any) -> str | None:
    """Voyage's 400 ``detail`` for a body, or None."""
    return first_problem(body, "Request body must be a JSON object.", RULES)


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
        data = results(
            query, documents, body.get("top_k"), documents if body.get("return_documents") else None
        )
        usage = {"total_tokens": sum(min(n, CONTEXT_WORDS) for n in lengths)}
        return 200, {}, {"object": "list", "data": data, "model": body["model"], "usage": usage}
