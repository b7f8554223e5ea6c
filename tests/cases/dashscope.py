"""DashScope (Model Studio): the compatible-api ``/reranks`` route, strings only."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx

from tests.cases.case import Batch, Deployer, ProviderCase, bearer, strings_body, word_count
from tests.servers.dashscope import DashScopeServer

KEY = "sk-test-dashscope"
WIRE_MODEL = "qwen3-rerank"
DEFAULT_URL = "https://dashscope.aliyuncs.com/compatible-api/v1/reranks"


dep = Deployer("dashscope", WIRE_MODEL, key=KEY)


def ok(results: list[tuple[int, float]], usage: Any = None) -> httpx.Response:
    body = {
        "id": "5f8c1a2e",
        "object": "list",
        "model": WIRE_MODEL,
        "results": [{"index": i, "relevance_score": s} for i, s in results],
        "usage": usage if usage is not None else {"total_tokens": 25},
    }
    return httpx.Response(200, json=body)


def envelope(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message, "request_id": "b3a1c9e0-req"}


MESSAGE = "Requests rate limit exceeded, please try again later."
MALFORMED = ({"results": [{"index": 2, "relevance_score": 0.5}]},)
CASE = ProviderCase(
    deployment=dep(),
    answer=ok,
    url=DEFAULT_URL,
    authorization=bearer(KEY),
    envelope=envelope("Throttling.RateQuota", MESSAGE),
    message=MESSAGE,
    error_request_id="b3a1c9e0-req",
    missing=((dep(key=None), ("DASHSCOPE_API_KEY",)),),
    key_vars=("DASHSCOPE_API_KEY",),
    base_vars=("DASHSCOPE_API_BASE_RERANK",),
    ignored_vars={"DASHSCOPE_API_BASE": "https://dashscope.aliyuncs.com/compatible-mode/v1"},
    native=frozenset({"top_n"}),
    max_documents=500,
    malformed=MALFORMED,
    batch=Batch(
        server=lambda: DashScopeServer(KEY, [WIRE_MODEL]),
        env=lambda server, _: {
            "DASHSCOPE_API_KEY": KEY,
            "DASHSCOPE_API_BASE_RERANK": f"{server.base_url}/compatible-api/v1",
        },
        path="/compatible-api/v1/reranks",
        authorization=lambda _: bearer(KEY),
        body=lambda line: strings_body(WIRE_MODEL, line),
        usage=lambda line: {"tokens": {"total_tokens": word_count(line)}},
    ),
)


def alias_case(provider: str, key_var: str, base_var: str, default_url: str) -> ProviderCase:
    """The case of an alias of DashScope (same API, its own variables and default base)."""
    alias = Deployer(provider, WIRE_MODEL, key=KEY)
    batch = replace(
        CASE.batch,
        env=lambda server, _: {key_var: KEY, base_var: f"{server.base_url}/compatible-api/v1"},
    )
    return replace(
        CASE,
        deployment=alias(),
        url=default_url,
        missing=((alias(key=None), (key_var,)),),
        key_vars=(key_var,),
        base_vars=(base_var,),
        ignored_vars={"DASHSCOPE_API_KEY": "sk-other-region", "DASHSCOPE_API_BASE_RERANK": "http://other"},
        batch=batch,
    )
