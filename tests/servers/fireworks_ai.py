"""A local Fireworks AI rerank API: ``POST /inference/v1/rerank``.

Body ``{model, query, documents: [str], top_n?, return_documents?}``; the model must be
a served ``fireworks/<name>`` (or its ``accounts/fireworks/models/<name>`` form);
unknown fields and wrong types are 400 in Fireworks' ``{error: {object, type, message}}``
envelope, a bad key 401.  The answer is ``{object: "list", model, data: [{index,
relevance_score, document?}], usage: {prompt_tokens, total_tokens}}`` sorted and cut to
``top_n``.
"""

from __future__ import annotations

from typing import Any

from tests.servers.rules import counts, each, first_problem, flags, known_fields, listed, text
from tests.wire_server import Recorded, Reply, WireServer, results

FIELDS = {"model", "query", "documents", "top_n", "return_documents"}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "unauthorized",
    404: "not_found",
    429: "rate_limit_exceeded",
}
RULES = (
    known_fields(FIELDS, "Extra inputs are not permitted: {name}"),
    text("query", "query: must be a non-empty string"),
    listed("documents", "documents: must be a non-empty list of strings"),
    each("documents", "documents: must be a non-empty list of strings"),
    counts(("top_n",), "top_n: must be a positive integer", null=False),
    flags(("return_documents",), "return_documents: must be a boolean"),
)


def check(body: Any) -> str | None:
    """Fireworks' 400 message for a body, or None."""
    return first_problem(body, "request body must be a JSON object", RULES)


class FireworksServer(WireServer):
    def __init__(
        self, api_key: str = "test-fireworks-key", model: str = "fireworks/qwen3-reranker-8b"
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = {model, "accounts/fireworks/models/" + model.removeprefix("fireworks/")}

    def error_body(self, status: int, message: str) -> Any:
        return {
            "error": {
                "object": "error",
                "type": ERROR_TYPES.get(status, "internal_error"),
                "message": message,
            }
        }

    def _error(self, status: int, message: str) -> Reply:
        return status, {}, self.error_body(status, message)

    def answer(self, record: Recorded) -> Reply:
        if (record.method, record.path.split("?")[0]) != ("POST", "/inference/v1/rerank"):
            return self._error(404, f"no route for {record.method} {record.path}")
        if record.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "The API key you provided is invalid.")
        body = record.body
        if problem := check(body):
            return self._error(400, problem)
        if body.get("model") not in self.models:
            return self._error(
                404, f"Model not found, inaccessible, and/or not deployed: {body.get('model')}"
            )
        query, documents = body["query"], body["documents"]
        data = results(
            query, documents, body.get("top_n"), documents if body.get("return_documents") else None
        )
        tokens = sum(len(query.split()) + len(d.split()) for d in documents)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return 200, {}, {"object": "list", "model": body["model"], "data": data, "usage": usage}
