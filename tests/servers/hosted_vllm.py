"""A local vLLM rerank server (``vllm serve <reranker>``): ``POST /rerank``, ``/v1/rerank``, ``/v2/rerank``.

As vLLM's ``RerankRequest``: ``{model?, query: str, documents: [str], top_n: int = 0
(all), truncate_prompt_tokens? (>= -1), truncation_side? (left/right), instruction?,
max_tokens_per_query?, priority?, ...}``; an unknown field is *accepted and
ignored* (vLLM only logs it; every such field is recorded in ``ignored`` so tests can
prove nothing is silently dropped), a wrong type is 400, a model other than the served
one is 404, all in vLLM's ``{error: {message, type, param, code}}`` envelope.  With
``--api-key`` a missing or wrong key is 401 ``{"error": "Unauthorized"}``.  The answer
is ``{id, model, usage: {prompt_tokens, total_tokens}, results: [{index, document: {text},
relevance_score}]}`` sorted by score and cut to ``top_n``.
"""

from __future__ import annotations

from typing import Any

from tests.servers.rules import each, first_problem, one_of, string, unless
from tests.wire_server import Recorded, Reply, WireServer, ranked

ROUTES = ("/rerank", "/v1/rerank", "/v2/rerank")
FIELDS = {
    "model", "query", "documents", "top_n", "truncate_prompt_tokens", "mm_processor_kwargs",
    "priority", "softmax", "activation", "use_activation", "instruction", "truncation_side",
    "max_tokens_per_query",
}  # fmt: skip
ERROR_TYPES = {400: "BadRequestError", 404: "NotFoundError", 429: "TooManyRequests"}
RULES = (
    string("query", "query: Input should be a valid string"),
    each("documents", "documents: Input should be a valid list of strings"),
    unless(lambda body: type(body.get("top_n", 0)) is not int, "top_n: Input should be a valid integer"),
    unless(lambda body: not _at_least(body.get("truncate_prompt_tokens"), -1),
           "truncate_prompt_tokens: Input should be greater than or equal to -1"),
    one_of("truncation_side", ("left", "right", None), "truncation_side: Input should be 'left' or 'right'"),
    unless(lambda body: type(body.get("priority", 0)) is not int,
           "priority: Input should be a valid integer"),
    unless(lambda body: not isinstance(body.get("instruction", ""), str),
           "instruction: Input should be a valid string"),
)  # fmt: skip


def _at_least(value: Any, low: int) -> bool:
    return value is None or (type(value) is int and value >= low)


def check(body: Any) -> str | None:
    """vLLM's 400 message for a body its schema rejects, or None."""
    return first_problem(body, "Input should be a valid dictionary", RULES)


class VllmServer(WireServer):
    def __init__(self, model: str = "BAAI/bge-reranker-v2-m3", api_key: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.api_key = api_key
        self.ignored: list[str] = []
        """Fields vLLM would have accepted and ignored, over all requests."""

    def error_body(self, status: int, message: str) -> Any:
        kind = ERROR_TYPES.get(status, "InternalServerError")
        return {"error": {"message": message, "type": kind, "param": None, "code": status}}

    def _error(self, status: int, message: str) -> Reply:
        return status, {}, self.error_body(status, message)

    def answer(self, record: Recorded) -> Reply:
        if record.path.split("?")[0] not in ROUTES:
            return 404, {}, {"detail": "Not Found"}
        if record.method != "POST":
            return 405, {}, {"detail": "Method Not Allowed"}
        if self.api_key is not None and record.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {}, {"error": "Unauthorized"}
        body = record.body
        if problem := check(body):
            return self._error(400, problem)
        with self._lock:
            self.ignored.extend(sorted(set(body) - FIELDS))
        if body.get("model", self.model) != self.model:
            return self._error(404, f"The model `{body['model']}` does not exist.")
        query, documents = body["query"], body["documents"]
        top_n = body.get("top_n", 0)
        results = [
            {"index": i, "document": {"text": documents[i], "multi_modal": None}, "relevance_score": s}
            for i, s in ranked(query, documents, top_n if top_n > 0 else None)
        ]
        tokens = sum(len(query.split()) + len(d.split()) for d in documents)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return (
            200,
            {},
            {"id": f"rerank-{record.request_id}", "model": self.model, "usage": usage, "results": results},
        )
