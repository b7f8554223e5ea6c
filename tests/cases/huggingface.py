"""Hugging Face text-embeddings-inference (TEI): ``{base}/rerank``, ``texts``, a bare list back."""

from __future__ import annotations

from typing import Any

import httpx

from providers.deployment import Deployment
from providers.types import RankedDocument, RerankRequest
from tests.adapter_kit import deployment
from tests.cases.case import Batch, Line, ProviderCase, Record, bearer
from tests.ranking_lines import rendered
from tests.servers.huggingface import TeiServer, tei_server

BASE = "http://tei:8080"
MODEL = "BAAI/bge-reranker-v2-m3"
TEXTS = ["solar power plants", "coffee"]
BATCH_SIZE = 32
"""TEI's default ``--max-client-batch-size``."""


def dep(base: str | None = BASE, key: str | None = None) -> Deployment:
    return deployment("huggingface", MODEL, key=key, base=base)


def req(**overrides: Any) -> RerankRequest:
    return RerankRequest(**{"query": "solar power", "documents": list(TEXTS), **overrides})


def body(texts: list[str], query: str = "solar power") -> dict[str, Any]:
    return {"query": query, "texts": texts, "raw_scores": False, "return_text": False, "truncate": True}


def ranks(*pairs: tuple[int, float]) -> httpx.Response:
    return httpx.Response(
        200, json=[{"index": i, "score": s} for i, s in pairs], headers={"x-compute-tokens": "9"}
    )


def many(model: str) -> list[Line]:
    """More documents than TEI takes in one request."""
    return [{"id": "many", "model": model, "query": "needle", "top_n": 3,
             "documents": [f"hay {i}" for i in range(45)] + ["a needle", "needle"]}]  # fmt: skip


def split_in_two(server: TeiServer, lines: list[Line], results: list[Record]) -> None:
    assert [item["index"] for item in results[0]["results"]] == [45, 46, 0]
    assert results[0]["requests"] == 2
    assert all(len(r.body["texts"]) <= BATCH_SIZE for r in server.requests)


TEI_ERROR = {
    "error": "Input validation error: `inputs` must have less than 512 tokens",
    "error_type": "validation",
}
CASE = ProviderCase(
    provider="huggingface",
    wire_model=MODEL,
    deployment=dep(key="hf_secret"),
    request=req(),
    ok=lambda: ranks((1, 0.9), (0, 0.1)),
    ranked=[RankedDocument(1, 0.9), RankedDocument(0, 0.1)],
    url=f"{BASE}/rerank",
    authorization=bearer("hf_secret"),
    keyless=dep(),
    envelope=TEI_ERROR,
    message=TEI_ERROR["error"],
    missing=((dep(base=None), ("HF_API_BASE", "HUGGINGFACE_API_BASE")),),
    key_vars=("HUGGINGFACE_API_KEY",),
    base_vars=("HF_API_BASE", "HUGGINGFACE_API_BASE"),
    ignored_vars={"HF_TOKEN": "hf_y"},  # LiteLLM does not read it
    batch=Batch(
        server=tei_server,
        env=lambda server, _: {
            "HF_API_BASE": server.base_url,
            "HUGGINGFACE_API_BASE": "",
            "HUGGINGFACE_API_KEY": "",
        },
        path="/rerank",
        authorization=lambda _: None,
        body=lambda line: body(rendered(line), line["query"]),
        usage=lambda _: None,
        sent=lambda sent: list(sent["texts"]),
        extra_lines=many,
        check=split_in_two,
    ),
)
