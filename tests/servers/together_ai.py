"""A local Together AI rerank API: ``POST /v1/rerank``.

``{model, query, documents: [str], top_n?, return_documents?}`` for serverless models; JSON
documents and ``rank_fields`` are refused except for a Llama-Rank model (Together takes them
there only, ranking an object by its ``rank_fields``, every field by default), and unknown
fields are refused.  Answers ``{object: "rerank", id,
model, results: [{index, relevance_score, document?}], usage: {prompt_tokens,
completion_tokens, total_tokens}}``; errors use Together's ``{"error": {"message", "type",
"param", "code"}}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from tests.servers.rules import counts, first_problem, known_fields, listed, text, unless
from tests.wire_server import Recorded, Reply, WireServer, results, words

FIELDS = {"model", "query", "documents", "top_n", "return_documents", "rank_fields"}
CODES = {401: "invalid_api_key", 404: "model_not_available", 429: "rate_limit_exceeded"}
RULES = (
    known_fields(FIELDS, "Unrecognized request argument supplied: {name}"),
    text("query", "query: must be a non-empty string"),
    listed("documents", "documents: must be a non-empty list"),
    unless(
        lambda body: (
            not _llama_rank(body)
            and ("rank_fields" in body or not all(isinstance(d, str) for d in body["documents"]))
        ),
        "JSON documents and rank_fields are only supported on dedicated Llama-Rank-V1 endpoints",
    ),
    unless(
        lambda body: not all(isinstance(d, str | dict) for d in body["documents"]),
        "documents: each must be a string or a JSON object",
    ),
    counts(("top_n",), "top_n: must be a positive integer"),
)


def _llama_rank(body: dict[str, Any]) -> bool:
    return "llama-rank" in str(body.get("model", "")).lower()


def _text(document: str | dict[str, Any], rank_fields: list[str] | None) -> str:
    """What a Llama-Rank model reads of a JSON document: its ``rank_fields`` (every field by default)."""
    if isinstance(document, str):
        return document
    return " ".join(str(document[f]) for f in (rank_fields or list(document)) if f in document)


def check(body: Any) -> str | None:
    """Together's 400 message for a body, or None."""
    return first_problem(body, "Request body must be a JSON object", RULES)


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
        query = body["query"]
        documents = [_text(d, body.get("rank_fields")) for d in body["documents"]]
        returned = [{"text": d} for d in documents] if body.get("return_documents") else None
        ranking = results(query, documents, body.get("top_n"), returned)
        tokens = sum(len(words(query)) + len(words(d)) for d in documents)
        usage = {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens}
        return (
            200,
            {},
            {"object": "rerank", "id": str(uuid.uuid4()), "model": model, "results": ranking, "usage": usage},
        )
