"""A local DeepInfra native inference API for rerankers: ``POST /v1/inference/<model>``.

Body ``{queries: [str], documents: [str], instruction?, service_tier?, webhook?}`` with one
query per document (a length mismatch is 422); unknown fields are 422 as in a pydantic
schema.  The answer is ``{scores, input_tokens, request_id, inference_status}`` with the
scores in **input order** (neither sorted nor cut).  Errors use DeepInfra's
``{"detail": {"error": ...}}`` envelope (validation errors FastAPI's ``{"detail": [...]}``).
"""

from __future__ import annotations

from typing import Any

from tests.wire_server import Recorded, Reply, WireServer, score

PREFIX = "/v1/inference/"
FIELDS = {"queries", "documents", "instruction", "service_tier", "webhook"}


def check(body: Any) -> list[dict[str, Any]] | None:
    """FastAPI's validation ``detail`` for a body the schema rejects, or None."""

    def problem(field: str, message: str) -> list[dict[str, Any]]:
        return [{"loc": ["body", field], "msg": message, "type": "value_error"}]

    if not isinstance(body, dict):
        return problem("body", "value is not a valid dict")
    if unknown := sorted(set(body) - FIELDS):
        return problem(unknown[0], "extra fields not permitted")
    for name in ("queries", "documents"):
        value = body.get(name)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            return problem(name, "value is not a non-empty list of strings")
    if len(body["queries"]) != len(body["documents"]):
        return problem("queries", "queries and documents must have the same length")
    if body.get("service_tier", "default") not in ("default", "priority"):
        return problem(
            "service_tier", "value is not a valid enumeration member; permitted: 'default', 'priority'"
        )
    if not isinstance(body.get("instruction", ""), str):
        return problem("instruction", "str type expected")
    return None


class DeepInfraServer(WireServer):
    def __init__(self, api_key: str = "test-deepinfra-key", models: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = models or frozenset({"Qwen/Qwen3-Reranker-4B"})

    def error_body(self, status: int, message: str) -> Any:
        return {"detail": {"error": message}}

    def query_of(self, body: Any) -> str | None:
        queries = body.get("queries") if isinstance(body, dict) else None
        return str(queries[0]) if isinstance(queries, list) and queries else None

    def answer(self, record: Recorded) -> Reply:
        path = record.path.split("?")[0]
        if record.method != "POST" or not path.startswith(PREFIX):
            return 404, {}, {"detail": "Not Found"}
        if record.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {}, self.error_body(401, "Authentication failed: invalid API key")
        if (model := path.removeprefix(PREFIX)) not in self.models:
            return 404, {}, self.error_body(404, f"Model is not available: {model}")
        body = record.body
        if (detail := check(body)) is not None:
            return 422, {}, {"detail": detail}
        pairs = list(zip(body["queries"], body["documents"], strict=True))
        tokens = sum(len(q.split()) + len(d.split()) for q, d in pairs)
        status = {
            "status": "succeeded",
            "runtime_ms": 3,
            "cost": 0.0,
            "tokens_input": tokens,
            "tokens_generated": 0,
        }
        return (
            200,
            {},
            {
                "scores": [score(q, d) for q, d in pairs],
                "input_tokens": tokens,
                "request_id": record.request_id,
                "inference_status": status,
            },
        )
