"""A local Infinity server (``infinity_emb v2``): ``POST {url_prefix}/rerank``.

Infinity's ``RerankInput``: ``{query, documents: [1..2048 str], return_documents, raw_scores,
model, top_n > 0}``; pydantic ignores other fields (so they are recorded but have no effect)
and answers type errors with FastAPI's 422 ``{"detail": [{loc, msg, type}]}``.  An unknown
model is a 400 in Infinity's OpenAI-style ``{"error": {"message", "type", "param", "code"}}``,
the envelope of its other errors too.  With an ``api_key`` the server wants ``Authorization:
Bearer <key>`` (else 401 ``{"detail": "Unauthorized"}``); without one it takes any request.
Answers ``{object: "rerank", results: [{relevance_score, index, document?}], model,
usage: {prompt_tokens, total_tokens}, id: "infinity-…", created}``, best first.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from tests.wire_server import Recorded, Reply, WireServer, results, words

MAX_DOCUMENTS = 2048


def _issue(loc: list[Any], msg: str, kind: str, value: Any) -> dict[str, Any]:
    return {"type": kind, "loc": ["body", *loc], "msg": msg, "input": value}


def check(body: Any) -> list[dict[str, Any]]:
    """FastAPI's 422 issues for a body, empty when it validates."""
    if not isinstance(body, dict):
        return [_issue([], "Input should be a valid dictionary", "model_attributes_type", body)]
    issues = []
    if not isinstance(body.get("query"), str):
        issues.append(_issue(["query"], "Input should be a valid string", "string_type", body.get("query")))
    documents = body.get("documents")
    if not isinstance(documents, list) or not 1 <= len(documents) <= MAX_DOCUMENTS:
        msg = f"List should have at least 1 item and at most {MAX_DOCUMENTS} items"
        issues.append(_issue(["documents"], msg, "too_long", None))
    else:
        for i, doc in enumerate(documents):
            if not isinstance(doc, str):
                issues.append(_issue(["documents", i], "Input should be a valid string", "string_type", doc))
    top_n = body.get("top_n")
    if top_n is not None and (type(top_n) is not int or top_n < 1):
        issues.append(_issue(["top_n"], "Input should be greater than 0", "greater_than", top_n))
    return issues


class InfinityServer(WireServer):
    def __init__(
        self, api_key: str | None = None, models: Iterable[str] = ("test/reranker",), url_prefix: str = ""
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = set(models)
        self.url_prefix = url_prefix

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"message": message, "type": None, "param": None, "code": status}}

    def answer(self, record: Recorded) -> Reply:
        if record.method != "POST" or record.path.split("?")[0] != f"{self.url_prefix}/rerank":
            return 404, {}, {"detail": "Not Found"}
        if self.api_key is not None and record.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"www-authenticate": "Bearer"}, {"detail": "Unauthorized"}
        body = record.body
        if issues := check(body):
            return 422, {}, {"detail": issues}
        model = body.get("model", "default/not-specified")
        if model not in self.models:
            return 400, {}, self.error_body(400, f"Invalid model: model {model} not found")
        query, documents = body["query"], body["documents"]
        returned = documents if body.get("return_documents") else None
        tokens = sum(len(words(query)) + len(words(d)) for d in documents)
        return (
            200,
            {},
            {
                "object": "rerank",
                "results": results(query, documents, body.get("top_n"), returned),
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                "id": f"infinity-{uuid.uuid4()}",
                "created": int(time.time()),
            },
        )
