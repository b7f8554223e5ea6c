"""A local text-embeddings-inference (TEI) reranker: ``POST /rerank``.

As TEI's router: the body is ``{query, texts: [str], truncate?, raw_scores?, return_text?,
truncation_direction?}``; other fields (``top_n``...) are ignored by serde, a non-string
text fails deserialisation (422, plain text), an empty list is 400, more texts than
``--max-client-batch-size`` (default 32) or an over-long pair without ``truncate`` is 413,
all with TEI's ``{error, error_type}`` envelope.  The answer is a bare JSON list
``[{index, score, text?}]`` sorted by score, with TEI's ``x-compute-*`` headers (and the
``x-request-id`` an Inference Endpoint's gateway adds).  With
``--api-key`` a missing or wrong ``Authorization`` is 401; without one, no header is needed.
"""

from __future__ import annotations

import math
from typing import Any

from tests.wire_server import Recorded, Reply, WireServer, ranked

BOOL_FIELDS = ("truncate", "raw_scores", "return_text")
CONTEXT_WORDS = 512
ERROR_TYPES = {
    400: "empty",
    413: "validation",
    422: "tokenizer",
    424: "backend",
    429: "overloaded",
    503: "unhealthy",
}


def raw_score(score: float) -> float:
    """The pre-activation logit whose sigmoid is ``score`` (clamped at the ends)."""
    clamped = min(max(score, 1e-4), 1 - 1e-4)
    return math.log(clamped / (1 - clamped))


def deserialise_error(body: Any) -> str | None:
    """axum's message when the JSON body does not fit TEI's ``RerankRequest``."""
    prefix = "Failed to deserialize the JSON body into the target type: "
    if not isinstance(body, dict):
        return prefix + "invalid type: expected struct RerankRequest"
    if not isinstance(body.get("query"), str):
        return prefix + "missing field `query` or invalid type, expected a string"
    texts = body.get("texts")
    if not isinstance(texts, list):
        return prefix + "missing field `texts` or invalid type, expected a sequence"
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            return prefix + f"texts[{i}]: invalid type: {type(text).__name__}, expected a string"
    for name in BOOL_FIELDS:
        if name in body and not isinstance(body[name], bool):
            return prefix + f"{name}: invalid type, expected a boolean"
    if body.get("truncation_direction", "Right") not in ("Left", "Right"):
        return prefix + "truncation_direction: unknown variant, expected `Left` or `Right`"
    return None


class TeiServer(WireServer):
    def __init__(self, api_key: str | None = None, max_client_batch_size: int = 32) -> None:
        super().__init__()
        self.api_key = api_key
        self.max_client_batch_size = max_client_batch_size

    def error_body(self, status: int, message: str) -> Any:
        return {"error": message, "error_type": ERROR_TYPES.get(status, "backend")}

    def _error(self, status: int, message: str) -> Reply:
        return status, {}, self.error_body(status, message)

    def answer(self, record: Recorded) -> Reply:
        if (record.method, record.path.split("?")[0]) != ("POST", "/rerank"):
            return 404, {}, None
        if self.api_key is not None and record.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {}, None
        body = record.body
        if problem := deserialise_error(body):
            return 422, {}, problem
        query, texts = body["query"], body["texts"]
        if not texts:
            return self._error(400, "`texts` cannot be empty")
        if len(texts) > self.max_client_batch_size:
            return self._error(
                413, f"batch size {len(texts)} > maximum allowed batch size {self.max_client_batch_size}"
            )
        lengths = [len(query.split()) + len(t.split()) for t in texts]
        if not body.get("truncate", False) and max(lengths) > CONTEXT_WORDS:
            return self._error(
                413, f"Input validation error: `inputs` must have less than {CONTEXT_WORDS} tokens. "
                f"Given: {max(lengths)}",
            )  # fmt: skip
        ranks: list[dict[str, Any]] = []
        for index, value in ranked(query, texts):
            rank: dict[str, Any] = {"index": index}
            if body.get("return_text"):
                rank["text"] = texts[index]
            rank["score"] = raw_score(value) if body.get("raw_scores") else value
            ranks.append(rank)
        headers = {
            "x-compute-type": "cpu",
            "x-compute-characters": str(sum(len(query) + len(t) for t in texts)),
            "x-compute-tokens": str(sum(min(n, CONTEXT_WORDS) for n in lengths)),
        }
        return 200, headers, ranks
