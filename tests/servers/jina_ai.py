"""A local Jina AI rerank API: ``POST /v1/rerank``.

Takes ``{model, query, documents, top_n?, return_documents?}`` and nothing else (``rank_fields``
is refused); documents are strings, or ``{"text"}``/``{"image"}`` objects for multimodal models,
never arbitrary objects.  Answers ``{model, usage: {total_tokens}, results: [{index,
relevance_score, document?: {text}}]}`` best first.  Errors are ``{"detail": "[RID: …] message"}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.wire_server import Recorded, Reply, WireServer, ranked, words

FIELDS = {"model", "query", "documents", "top_n", "return_documents"}


def _text(document: Any) -> str | None:
    if isinstance(document, str):
        return document
    if isinstance(document, dict) and set(document) == {"text"} and isinstance(document["text"], str):
        return str(document["text"])
    return None


def check(body: Any) -> str | None:
    """Jina's 422 message for a body, or None."""
    if not isinstance(body, dict):
        return "Input should be a valid dictionary"
    if unknown := sorted(set(body) - FIELDS):
        return f"Extra inputs are not permitted: {unknown[0]}"
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    if not isinstance(body.get("query"), str) or not body["query"]:
        return "query: Field required"
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        return "documents: List should have at least 1 item"
    if any(_text(d) is None for d in documents):
        return "documents: each must be a string or a {text} or {image} object"
    top_n = body.get("top_n")
    if top_n is not None and (type(top_n) is not int or top_n < 1):
        return "top_n: Input should be greater than 0"
    return None


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
        results: list[dict[str, Any]] = []
        for index, value in ranked(query, texts, body.get("top_n")):
            result: dict[str, Any] = {"index": index, "relevance_score": value}
            if body.get("return_documents"):
                result["document"] = {"text": texts[index]}
            results.append(result)
        tokens = sum(len(words(query)) + len(words(t)) for t in texts)
        return 200, {}, {"model": body["model"], "usage": {"total_tokens": tokens}, "results": results}


@contextmanager
def jina_server(
    api_key: str = "jina_test_key", models: Iterable[str] = ("jina-reranker-test",)
) -> Iterator[JinaServer]:
    with JinaServer(api_key, models) as server:
        yield server
