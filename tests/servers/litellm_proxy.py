"""A local LiteLLM proxy (``litellm --config``) answering ``/rerank``, ``/v1/rerank``, ``/v2/rerank``.

It stands for a proxy whose public model names are served by Cohere ``rerank-v3.5``, i.e.
Cohere's v2 API: the proxy hands the body's fields to ``litellm.arerank`` (ignoring ones it
does not know), and that backend takes string documents only and no ``rank_fields``.
Auth is ``Authorization: Bearer <master key>``.  Answers are LiteLLM's ``RerankResponse``
``{id, results: [{index, relevance_score}], meta}``; errors use the proxy's envelope
``{"error": {"message", "type", "param", "code"}}``; the call id header is ``x-litellm-call-id``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from tests.servers.rules import counts, each, first_problem, listed, text, unless
from tests.wire_server import Recorded, Reply, WireServer, results

ROUTES = {"/rerank", "/v1/rerank", "/v2/rerank"}
TYPES = {400: "invalid_request_error", 401: "auth_error", 429: "throttling_error"}
AUTH_MESSAGE = (
    "Authentication Error, Invalid proxy server token passed. Received API Key = sk-...{tail}. "
    "Unable to find token in cache or `LiteLLM_VerificationTokenTable`"
)


BACKEND_RULES = (
    unless(
        lambda body: "rank_fields" in body,
        "invalid request: unknown field: parameter rank_fields is not a valid field",
    ),
    text("query", "invalid request: query must be a non-empty string", strip=True),
    listed("documents", "invalid request: documents must be a list of 1 to 10000 items", 1, 10_000),
    each("documents", "invalid request: documents must be a list of strings"),
    counts(("top_n", "max_tokens_per_doc"), "invalid request: {name} must be a positive integer"),
)


def backend_problem(body: dict[str, Any]) -> str | None:
    """The Cohere v2 backend's 400 message for a body, or None."""
    return first_problem(body, "invalid request: body must be a JSON object", BACKEND_RULES)


class LiteLLMProxyServer(WireServer):
    request_id_header = "x-litellm-call-id"

    def __init__(self, master_key: str = "sk-test-master", models: Iterable[str] = ("my-reranker",)) -> None:
        super().__init__()
        self.master_key = master_key
        self.models = set(models)

    def error_body(self, status: int, message: str) -> Any:
        return {
            "error": {
                "message": message,
                "type": TYPES.get(status, "None"),
                "param": "None",
                "code": str(status),
            }
        }

    def _error(self, status: int, message: str) -> Reply:
        return status, {}, self.error_body(status, message)

    def answer(self, record: Recorded) -> Reply:
        if record.method != "POST" or record.path.split("?")[0] not in ROUTES:
            return 404, {}, {"detail": "Not Found"}
        token = record.headers.get("authorization", "").removeprefix("Bearer ")
        if token != self.master_key:
            return self._error(401, AUTH_MESSAGE.format(tail=token[-4:]))
        body = record.body
        if not isinstance(body, dict):
            return self._error(400, "Invalid JSON payload")
        if body.get("model") not in self.models:
            return self._error(
                400,
                f"/rerank: Invalid model name passed in model={body.get('model')}. "
                "Call `/v1/models` to view available models for your key.",
            )
        if problem := backend_problem(body):
            return self._error(400, f"litellm.BadRequestError: CohereException - {problem}")
        ranking = results(body["query"], body["documents"], body.get("top_n"))
        meta = {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}
        return 200, {}, {"id": str(uuid.uuid4()), "results": ranking, "meta": meta}
