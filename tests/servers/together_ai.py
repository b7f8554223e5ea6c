"""A local Together AI rerank API: ``POST /v1/rerank``.

A serverless endpoint: ``{model, query, documents: [str], top_n?, return_documents?}``;
JSON documents and ``rank_fields`` are refused (Together takes them only on dedicated
Llama-Rank-V1 endpoints) and unknown fields are refused.  Answers ``{object: "rerank", id,
model, results: [{index, relevance_score, document?}], usage: {prompt_tokens,
completion_tokens, total_tokens}}``; errors use Together's ``{"error": {"message", "type",
"param", "code"}}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.wire_server import Recorded, Reply, WireServer, ranked, words

FIELDS = {"model", "query", "documents", "top_n", "return_documents", "rank_fields"}
CODES = {401: "invalid_api_key", 404: "model_not_available", 429: "rate_limit_exceeded"}


def check(body: Any) -> str | None:
    """Together's 400 message for a body, or None."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object"
    if unknown := sorted(set(body) - FIELDS):
        return f"Unrecognized request argument supplied: {unknown[0]}"
    if not isinstance(body.get("query"), str) or not body["query"]:
        return "query: must be a non-empty string"
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        return "documents: must be a non-empty list"
    if "rank_fields" in body or not all(isinstance(d, str) for d in documents):
        return "JSON documents and rank_fields are only supported on dedicated Llama-Rank-V1 endpoints"
    top_n = body.get("top_n")
    if top_n is not None and (type(top_n) is not int or top_n < 1):
        return "top_n: must be a positive integer"
    return None


class TogetherServer(WireServer):
    def __init__(
        self, api_key: str = "test-together-key", models: Iterable[str] = ("test/reranker",)
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = set(models)

    def error_body(self, status: int, message: str) -> Any:
        return {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": CODES.get(status),
            }
        }

    def _error(self, status: int, message: str) -> Reply:
        return status, {}, self.error_body(status, message)

    def answer(self, record: Recorded) -> Reply:
        if record.method != "POST" or record.path.split("?")[0] != "/v1/rerank":
            return self._error(404, f"Not found: {record.method} {record.path}")
        if record.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(
                401,
                "Invalid API key provided. You can find your API key at https://api.together.xyz/settings/api-keys.",
            )
        body = record.body
        if problem := check(body):
            return self._error(400, problem)
        model = body.get("model")
        if model not in self.models:
            return self._error(
                404, f"Unable to access model {model}. Please visit https://api.together.ai/models."
            )
        query, documents = body["query"], body["documents"]
        results: list[dict[str, Any]] = []
        for index, value in ranked(query, documents, body.get("top_n")):
            result: dict[str, Any] = {"index": index, "relevance_score": value}
            if body.get("return_documents"):
                result["document"] = {"text": documents[index]}
            results.append(result)
        tokens = sum(len(words(query)) + len(words(d)) for d in documents)
        usage = {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens}
        return (
            200,
            {},
            {"object": "rerank", "id": str(uuid.uuid4()), "model": model, "results": results, "usage": usage},
        )


@contextmanager
def together_server(
    api_key: str = "test-together-key", models: Iterable[str] = ("test/reranker",)
) -> Iterator[TogetherServer]:
    with TogetherServer(api_key, models) as server:
        yield server
