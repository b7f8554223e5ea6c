"""Together AI: a serverless rerank endpoint taking strings only."""

from __future__ import annotations

from typing import Any

import httpx

from tests.cases.case import Batch, Deployer, Line, ProviderCase, bearer, strings_body, word_count
from tests.servers.together_ai import TogetherServer

KEY = "test-together-key"
WIRE_MODEL = "mixedbread-ai/Mxbai-Rerank-Large-V2"


dep = Deployer("together_ai", WIRE_MODEL, key=KEY)


def ok(results: list[tuple[int, float]], usage: Any = None) -> httpx.Response:
    body = {
        "object": "rerank",
        "id": "9dfa1a09",
        "model": WIRE_MODEL,
        "results": [{"index": i, "relevance_score": s, "document": {"text": None}} for i, s in results],
        "usage": usage,
    }
    return httpx.Response(200, json=body)


def tokens(line: Line) -> dict[str, Any]:
    count = word_count(line)
    return {"tokens": {"prompt_tokens": count, "completion_tokens": 0, "total_tokens": count}}


MESSAGE = "You have exceeded your rate limit for this model"
MALFORMED = ({"results": [{"index": 2, "relevance_score": 0.5}]},)
CASE = ProviderCase(
    deployment=dep(),
    answer=ok,
    url="https://api.together.ai/v1/rerank",
    authorization=bearer(KEY),
    envelope={"error": {"message": MESSAGE, "type": "invalid_request_error", "param": None, "code": None}},
    message=MESSAGE,
    missing=(
        (
            dep(key=None),
            ("TOGETHER_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHERAI_API_KEY", "TOGETHER_AI_TOKEN"),
        ),
    ),
    key_vars=("TOGETHER_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHERAI_API_KEY", "TOGETHER_AI_TOKEN"),
    base_vars=("TOGETHER_AI_API_BASE",),
    native=frozenset({"top_n"}),
    max_documents=None,
    malformed=MALFORMED,
    batch=Batch(
        server=lambda: TogetherServer(KEY, [WIRE_MODEL]),
        env=lambda server, _: {"TOGETHER_API_KEY": KEY, "TOGETHER_AI_API_BASE": f"{server.base_url}/v1"},
        path="/v1/rerank",
        authorization=lambda _: bearer(KEY),
        body=lambda line: strings_body(WIRE_MODEL, line),
        usage=tokens,
    ),
)
