"""DeepInfra's native inference route: one query per document, scores in input order."""

from __future__ import annotations

from typing import Any

import httpx

from tests.cases.case import Batch, Deployer, Forwarded, Line, ProviderCase, bearer, split_count
from tests.ranking_lines import rendered
from tests.servers.deepinfra import DeepInfraServer, check

KEY = "di-test"
MODEL = "Qwen/Qwen3-Reranker-4B"
URL = f"https://api.deepinfra.com/v1/inference/{MODEL}"


dep = Deployer("deepinfra", MODEL, key=KEY)


def body(documents: list[str], query: str = "solar power") -> dict[str, Any]:
    return {"queries": [query] * len(documents), "documents": documents}


def scores(*values: float, tokens: int = 21) -> httpx.Response:
    payload = {
        "scores": list(values),
        "input_tokens": tokens,
        "request_id": "di-req-1",
        "inference_status": {"status": "succeeded", "runtime_ms": 5, "cost": 0.0001, "tokens_input": tokens},
    }
    return httpx.Response(200, json=payload)


def line_body(line: Line) -> dict[str, Any]:
    return body(rendered(line), line["query"])


MALFORMED = (
    {"scores": [0.5], "input_tokens": 3},  # fewer scores than documents
    {"scores": [0.5, 0.1, 0.2]},  # more scores than documents
    {"scores": [0.5, None]},
    {"scores": [0.5, "NaN"]},
    {"results": [{"index": 0, "relevance_score": 0.5}]},  # Cohere's shape
)
CASE = ProviderCase(
    deployment=dep(),
    answer=lambda pairs: scores(*(s for _, s in sorted(pairs))),
    url=URL,
    authorization=bearer(KEY),
    envelope={"detail": {"error": "Model is not available"}},
    message="Model is not available",
    missing=((dep(key=None), ("DEEPINFRA_API_KEY",)),),
    key_vars=("DEEPINFRA_API_KEY",),
    base_vars=("DEEPINFRA_API_BASE",),
    native=frozenset(),
    max_documents=None,
    malformed=MALFORMED,
    forwarded=(
        Forwarded({"instruction": "Given a web search query"}, {"instruction": "Given a web search query"}),
        Forwarded({"service_tier": "priority"}, {"service_tier": "priority"}),
        Forwarded({"webhook": "https://example.com/hook"}, {"webhook": "https://example.com/hook"}),
    ),
    schema=check,
    refused_params=({"service_tier": "gold"}, {"instruction": 7}),
    batch=Batch(
        server=lambda: DeepInfraServer(KEY, frozenset({MODEL})),
        env=lambda server, _: {
            "DEEPINFRA_API_KEY": KEY,
            "DEEPINFRA_API_BASE": f"{server.base_url}/v1/openai",
        },
        path=f"/v1/inference/{MODEL}",
        authorization=lambda _: bearer(KEY),
        body=line_body,
        usage=lambda line: {"tokens": {"input_tokens": split_count(line)}},
        response_id=lambda seen: seen.request_id,  # DeepInfra's body carries the request id
    ),
)
