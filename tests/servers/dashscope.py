"""A local DashScope (Model Studio) OpenAI-compatible rerank API: ``POST /compatible-api/v1/reranks``.

Takes ``{model, query, documents: [1..500 str], top_n?, return_documents?, instruct?}`` and
refuses other fields; answers ``{id, object: "list", model, results: [{index, relevance_score,
document?: {text}}], usage: {total_tokens}}`` best first.  Errors are DashScope's ``{code,
message, request_id}`` (``InvalidApiKey``, ``InvalidParameter``, ``Throttling.RateQuota`` …).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from tests.servers.rules import counts, each, first_problem, known_fields, listed, text
from tests.wire_server import Recorded, Reply, WireServer, results, words

ROUTE = "/compatible-api/v1/reranks"
FIELDS = {"model", "query", "documents", "top_n", "return_documents", "instruct"}
MAX_DOCUMENTS = 500
CODES = {
    400: "InvalidParameter",
    401: "InvalidApiKey",
    404: "NotFound",
    429: "Throttling.RateQuota",
    500: "InternalError",
    503: "ServiceUnavailable",
}
RULES = (
    known_fields(FIELDS, "Unrecognized parameter: {name}"),
    text("query", "Required parameter 'query' missing or empty."),
    listed("documents", f"Range of documents should be [1, {MAX_DOCUMENTS}]", 1, MAX_DOCUMENTS),
    each("documents", "documents should be a list of strings"),
    counts(("top_n",), "top_n should be a positive integer"),
)


def check(body: Any) -> str | None:
    """DashScope's InvalidParameter message for a body, or None."""
    return first_problem(body, "The request body is not valid JSON.", RULES)


class DashScopeServer(WireServer):
    def __init__(self, api_key: str = "sk-test-dashscope", models: Iterable[str] = ("qwen3-rerank",)) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = set(models)

    def error_body(self, status: int, message: str, request_id: str | None = None) -> Any:
        return {
            "code": CODES.get(status, "InternalError"),
            "message": message,
            "request_id": request_id or str(uuid.uuid4()),
        }

    def _error(self, record: Recorded, status: int, message: str) -> Reply:
        return status, {}, self.error_body(status, message, record.request_id)

    def answer(self, record: Recorded) -> Reply:
        if record.method != "POST" or record.path.split("?")[0] != ROUTE:
            return self._error(record, 404, f"Path {record.path} not found")
        if record.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(record, 401, "Invalid API-key provided.")
        body = record.body
        if problem := check(body):
            return self._error(record, 400, problem)
        if body.get("model") not in self.models:
            return self._error(record, 400, "Model not exist.")
        query, documents = body["query"], body["documents"]
        returned = [{"text": d} for d in documents] if body.get("return_documents") else None
        tokens = sum(len(words(query)) + len(words(d)) for d in documents)
        return (
            200,
            {},
            {
                "id": record.request_id,
                "object": "list",
                "model": body["model"],
                "results": results(query, documents, body.get("top_n"), returned),
                "usage": {"total_tokens": tokens},
            },
        )
