"""A local Jina AI rerank API: ``POST /v1/rerank``.

Takes ``{model, query, documents, top_n?, return_documents?}`` and nothing else (``rank_fields``
is refused); documents are strings, or ``{"text"}``/``{"image"}`` objects for multimodal models,
never arbitrary objects.  Answers ``{model, usage: {total_tokens}, results: [{index,
relevance_score, document?: {text}}]}`` best first, each document echoed back unless
``return_documents`` is false (Jina's default is true).  Errors are ``{"detail": "[RID: …] message"}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from tests.servers.rules import counts, each, first_problem, known_fields, listed, string, text
from tests.wire_server import Recorded, Reply, WireServer, results, words

FIELDS = {"model", "query", "documents", "top_n", "return_documents"}


def _is_text(document: Any) -> bool:
    return _text(document) is not None


def _text(document: Any) -> str | None:
    if isinstance(document, str):
        return document
    if isinstance(document, dict) and set(document) == {"text"} and isinstance(document["text"], str):
        return str(document["text"])
    return None


RULES = (
    known_fields(FIELDS, "Extra inputs are not permitted: {name}"),
    string("model", "model: Field required"),
    text("query", "query: Field required"),
    listed("documents", "documents: List should have at least 1 item"),
    each("documents", "documents: each must be a string or a {text} or {image} object", _is_text),
    counts(("top_n",), "top_n: Input should be greater than 0"),
)


def check(body: Any) -> str | None:
    """Jina's 422 message for a body, or None."""
    return first_problem(body, "Input should be a valid dictionary", RULES)


class JinaServer(WireServer):
    def __init__(
        self, api_key: str = "jina_test_key", models: Iterable[str] = ("jina-reranker-test",)
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = set(models)

    def error_body(self, status: int, message: str) -> Any:
        return {"detail": f"[RID: {uuid.uuid4().hex}] {message}"}

    def _error(self, status: int, message: str) -> Reply:
        return status, {}, self.error_body(status, message)

    def answer(self, record: Recorded) -> Reply:
        if record.method != "POST" or record.path.split("?")[0] != "/v1/rerank":
            return self._error(404, "Not Found")
        if record.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Invalid API key, please check your API key at https://jina.ai")
        body = record.body
        if problem := check(body):
            return self._error(422, problem)
        if body["model"] not in self.models:
            return self._error(400, f"Model {body['model']} is not available")
        query = body["query"]
        texts = [str(_text(d)) for d in body["documents"]]
        # Jina's default is to echo every document back
        returned = [{"text": t} for t in texts] if body.get("return_documents", True) else None
        ranking = results(query, texts, body.get("top_n"), returned)
        tokens = sum(len(words(query)) + len(words(t)) for t in texts)
        return 200, {}, {"model": body["model"], "usage": {"total_tokens": tokens}, "results": ranking}
