"""A local Fireworks AI rerank API: ``POST /inference/v1/rerank``.

Body ``{model, query, documents: [str], top_n?, return_documents?}``; the model must be
a served ``fireworks/<name>`` (or its ``accounts/fireworks/models/<name>`` form);
unknown fields and wrong types are 400 in Fireworks' ``{error: {object, type, message}}``
envelope, a bad key 401.  The answer is ``{object: "list", model, data: [{index,
relevance_score, document?}], usage: {prompt_tokens, total_tokens}}`` sorted and cut to
``top_n``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.wire_server import Recorded, Reply, WireServer, ranked

FIELDS = {"model", "query", "documents", "top_n", "return_documents"}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "unauthorized",
    404: "not_found",
    429: "rate_limit_exceeded",
}


def check(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    if unknown := sorted(set(body) - FIELDS):
        return f"Extra inputs are not permitted: {unknown[0]}"
    if not isinstance(body.get("query"), str) or not body["query"]:
        return "query: must be a non-empty string"
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        return "documents: must be a non-empty list of strings"
    top_n = body.get("top_n", 1)
    if type(top_n) is not int or top_n < 1:
        return "top_n: must be a positive integer"
    if not isinstance(body.get("return_documents", False), bool):
        return "return_documents: must be a boolean"
    return None


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
        data: list[dict[str, Any]] = []
        for index, value in ranked(query, documents, body.get("top_n")):
            item: dict[str, Any] = {"index": index, "relevance_score": value}
            if body.get("return_documents"):
                item["document"] = documents[index]
            data.append(item)
        tokens = sum(len(query.split()) + len(d.split()) for d in documents)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return 200, {}, {"object": "list", "model": body["model"], "data": data, "usage": usage}


@contextmanager
def fireworks_server(
    api_key: str = "test-fireworks-key", model: str = "fireworks/qwen3-reranker-8b"
) -> Iterator[FireworksServer]:
    with FireworksServer(api_key, model) as server:
        yield server
