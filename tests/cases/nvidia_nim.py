"""NVIDIA NIM: the hosted retrieval route and a container's ``/v1/ranking``; raw logits back."""

from __future__ import annotations

from typing import Any

import httpx

from providers.deployment import Deployment
from tests.adapter_kit import deployment
from tests.cases.case import Batch, Forwarded, Line, ProviderCase, Record, bearer, split_count
from tests.ranking_lines import rendered
from tests.servers.nvidia_nim import NimServer, check, logit

KEY = "nvapi-test"
HOSTED = "nvidia/llama-3_2-nv-rerankqa-1b-v2"
RANKING = "ranking/nvidia/llama-3.2-nv-rerankqa-1b-v2"
HOSTED_URL = f"https://ai.api.nvidia.com/v1/retrieval/{HOSTED}/reranking"
SENT_MODEL = "nvidia/llama-3.2-nv-rerankqa-1b-v2"


def dep(wire_model: str = HOSTED, base: str | None = None, key: str | None = KEY) -> Deployment:
    return deployment("nvidia_nim", wire_model, key=key, base=base)


def body(documents: list[str], model: str = SENT_MODEL, query: str = "solar power") -> dict[str, Any]:
    return {"model": model, "query": {"text": query}, "passages": [{"text": d} for d in documents],
            "truncate": "END"}  # fmt: skip


def rankings(*pairs: tuple[int, float], usage: dict[str, Any] | None = None) -> httpx.Response:
    payload: dict[str, Any] = {"rankings": [{"index": i, "logit": s} for i, s in pairs]}
    if usage is not None:
        payload["usage"] = usage
    return httpx.Response(200, json=payload, headers={"nvcf-reqid": "nvcf-1"})


def tokens(line: Line) -> dict[str, Any]:
    count = split_count(line)
    return {"tokens": {"prompt_tokens": count, "total_tokens": count}}


OWN_QUERY = "passages cut by nim"


def own_parameters(model: str) -> list[Line]:
    """A line with NIM's own ``truncate``, enqueued and sent by a worker."""
    line = {"id": "own", "model": model, "query": OWN_QUERY, "documents": ["nim passages", "coffee"]}
    return [{**line, "provider_params": {"truncate": "NONE"}}]


def schema_accepts_every_body_and_the_lines_truncate_reaches_nim(
    server: NimServer, lines: list[Line], results: list[Record]
) -> None:
    assert all(check(r.body) is None for r in server.requests)
    assert [r.body["truncate"] for r in server.requests if server.query_of(r.body) == OWN_QUERY] == ["NONE"]
    assert [r["index"] for r in results[0]["results"]] == [0, 1]


NVCF_ERROR = {"type": "about:blank", "status": 400, "title": "Bad Request", "detail": "passages: too many",
              "requestId": "nvcf-err-1"}  # fmt: skip
MALFORMED = (
    {"rankings": [{"index": 5, "logit": 1.0}]},
    {"rankings": [{"index": 0, "score": 1.0}]},  # no logit
    {"results": [{"index": 0, "relevance_score": 1.0}]},  # Cohere's shape
    {"rankings": [{"index": 0, "logit": 1.0}, {"index": 0, "logit": 2.0}]},  # a repeated index
)
CASE = ProviderCase(
    deployment=dep(),
    answer=lambda pairs: rankings(*pairs),
    url=HOSTED_URL,
    authorization=bearer(KEY),
    keyless=dep(RANKING, base="http://nim:8000", key=None),  # a self-hosted NIM
    envelope=NVCF_ERROR,
    message="passages: too many",
    error_request_id="nvcf-err-1",  # the problem details' requestId
    missing=tuple(
        (dep(wire_model, base, key=None), ("NVIDIA_NIM_API_KEY",))
        for wire_model, base in [
            (HOSTED, None),
            (RANKING, None),
            (RANKING, "https://ai.api.nvidia.com"),
            (HOSTED, "https://x.api.nvidia.com/"),
        ]
    ),
    key_vars=("NVIDIA_NIM_API_KEY",),
    base_vars=("NVIDIA_NIM_API_BASE",),
    native=frozenset(),
    max_documents=512,
    malformed=MALFORMED,
    forwarded=(Forwarded({"truncate": "NONE"}, {"truncate": "NONE"}),),
    schema=check,
    refused_params=({"truncate": "START"}, {"truncate": "end"}, {"truncate": True}),
    batch=Batch(  # a self-hosted NIM: no key anywhere
        server=lambda: NimServer(api_key=None),
        env=lambda server, _: {"NVIDIA_NIM_API_BASE": f"{server.base_url}/v1", "NVIDIA_NIM_API_KEY": ""},
        wire_model=RANKING,
        path="/v1/ranking",
        authorization=lambda _: None,
        body=lambda line: body(rendered(line), query=line["query"]),
        usage=tokens,
        sent=lambda sent: [p["text"] for p in sent["passages"]],
        score=logit,
        extra_lines=own_parameters,
        check=schema_accepts_every_body_and_the_lines_truncate_reaches_nim,
    ),
)
