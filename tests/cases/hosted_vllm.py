"""A vLLM server (``vllm serve <reranker>``): ``/rerank`` routes, a key only when it wants one."""

from __future__ import annotations

from typing import Any

import httpx

from tests.cases.case import (
    Batch,
    Deployer,
    Forwarded,
    Line,
    ProviderCase,
    Record,
    bearer,
    split_count,
    strings_body,
)
from tests.servers.hosted_vllm import VllmServer, check

BASE = "http://vllm:8000"
MODEL = "BAAI/bge-reranker-v2-m3"


dep = Deployer("hosted_vllm", MODEL, base=BASE)


def body(documents: list[str], **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "query": "solar power", "documents": documents, **extra}


def results(*pairs: tuple[int, float], usage: dict[str, Any] | None = None) -> httpx.Response:
    payload = {
        "id": "rerank-abc",
        "model": MODEL,
        "usage": usage if usage is not None else {"total_tokens": 12},
        "results": [{"index": i, "document": {"text": "t"}, "relevance_score": s} for i, s in pairs],
    }
    return httpx.Response(200, json=payload, headers={"x-request-id": "req-1"})


def tokens(line: Line) -> dict[str, Any]:
    count = split_count(line)
    return {"tokens": {"prompt_tokens": count, "total_tokens": count}}


def long_line(model: str) -> list[Line]:
    """``max_tokens_per_doc``, which vLLM would ignore: truncated here."""
    return [{"id": "long", "model": model, "query": "omega alpha", "max_tokens_per_doc": 2,
             "documents": ["alpha beta gamma omega", {"text": "omega alpha"}]}]  # fmt: skip


def truncated_here(server: VllmServer, lines: list[Line], results: list[Record]) -> None:
    assert [(r["index"], r["relevance_score"]) for r in results[0]["results"]] == [(1, 1.0), (0, 0.5)]
    (seen,) = [r for r in server.requests if r.body["query"] == "omega alpha"]
    assert seen.body["documents"] == ["alpha beta", "omega alpha"]
    assert server.ignored == []  # every field sent is one vLLM honours


MESSAGE = "The model `x` does not exist."
MALFORMED = (
    {"id": "x", "results": [{"index": 2, "relevance_score": 0.1}]},
    {"id": "x", "data": []},  # no results
    [{"index": 0, "score": 0.1}],  # TEI's shape
)
CASE = ProviderCase(
    deployment=dep(key="sk-vllm"),
    answer=lambda pairs: results(*pairs),
    url=f"{BASE}/rerank",
    authorization=bearer("sk-vllm"),
    keyless=dep(),
    envelope={"error": {"message": MESSAGE, "type": "NotFoundError", "param": None, "code": 404}},
    message=MESSAGE,
    missing=((dep(base=None), ("HOSTED_VLLM_API_BASE",)),),
    key_vars=("HOSTED_VLLM_API_KEY",),
    base_vars=("HOSTED_VLLM_API_BASE",),
    native=frozenset({"top_n"}),
    max_documents=None,
    malformed=MALFORMED,
    forwarded=(
        Forwarded(
            {"instruction": "Find the passage about energy"}, {"instruction": "Find the passage about energy"}
        ),
        Forwarded({"truncate_prompt_tokens": 256}, {"truncate_prompt_tokens": 256}),
        Forwarded({"truncation_side": "left"}, {"truncation_side": "left"}),
        Forwarded({"max_tokens_per_query": 64}, {"max_tokens_per_query": 64}),
        Forwarded({"priority": 3}, {"priority": 3}),
    ),
    schema=check,
    refused_params=({"truncation_side": "middle"}, {"truncate_prompt_tokens": -2}, {"priority": 1.5}),
    batch=Batch(
        server=lambda: VllmServer(MODEL, api_key="sk-e2e"),
        env=lambda server, _: {
            "HOSTED_VLLM_API_BASE": f"{server.base_url}/v1",
            "HOSTED_VLLM_API_KEY": "sk-e2e",
        },
        path="/v1/rerank",
        authorization=lambda _: bearer("sk-e2e"),
        body=lambda line: strings_body(MODEL, line),
        usage=tokens,
        extra_lines=long_line,
        check=truncated_here,
    ),
)
