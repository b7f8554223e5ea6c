"""Hugging Face text-embeddings-inference (TEI): ``{base}/rerank``, ``texts``, a bare list back."""

from __future__ import annotations

from typing import Any

import httpx

from tests.cases.case import Batch, Deployer, Forwarded, Line, ProviderCase, Record, bearer, split_count
from tests.ranking_lines import rendered
from tests.servers.huggingface import TeiServer, deserialise_error

BASE = "http://tei:8080"
MODEL = "BAAI/bge-reranker-v2-m3"
BATCH_SIZE = 32
"""TEI's default ``--max-client-batch-size``."""


dep = Deployer("huggingface", MODEL, base=BASE)


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
    usage = {"tokens": {"compute_tokens": split_count(lines[0])}}  # both requests' headers, summed
    assert (results[0]["requests"], results[0]["usage"]) == (2, usage)
    assert all(len(r.body["texts"]) <= BATCH_SIZE for r in server.requests)


TEI_ERROR = {
    "error": "Input validation error: `inputs` must have less than 512 tokens",
    "error_type": "validation",
}
MALFORMED = (
    {"results": [{"index": 0, "score": 1.0}]},  # an object, not a list
    [{"index": 0, "relevance_score": 1.0}],  # Cohere's score name
    [{"index": 3, "score": 1.0}],
    [{"index": 0, "score": None}],
)
CASE = ProviderCase(
    deployment=dep(key="hf_secret"),
    answer=lambda pairs: ranks(*pairs),
    url=f"{BASE}/rerank",
    authorization=bearer("hf_secret"),
    keyless=dep(),
    envelope=TEI_ERROR,
    message=TEI_ERROR["error"],
    missing=((dep(base=None), ("HF_API_BASE", "HUGGINGFACE_API_BASE")),),
    key_vars=("HUGGINGFACE_API_KEY",),
    base_vars=("HF_API_BASE", "HUGGINGFACE_API_BASE"),
    ignored_vars={"HF_TOKEN": "hf_y"},  # LiteLLM does not read it
    native=frozenset(),
    max_documents=32,
    malformed=MALFORMED,
    forwarded=(
        Forwarded({"truncate": False}, {"truncate": False}),
        Forwarded({"truncation_direction": "Left"}, {"truncation_direction": "Left"}),
    ),
    schema=deserialise_error,
    refused_params=({"truncate": "yes"}, {"truncation_direction": "left"}),
    batch=Batch(
        server=TeiServer,
        env=lambda server, _: {
            "HF_API_BASE": server.base_url,
            "HUGGINGFACE_API_BASE": "",
            "HUGGINGFACE_API_KEY": "",
        },
        path="/rerank",
        authorization=lambda _: None,
        body=lambda line: body(rendered(line), line["query"]),
        usage=lambda line: {"tokens": {"compute_tokens": split_count(line)}},
        sent=lambda sent: list(sent["texts"]),
        extra_lines=many,
        check=split_in_two,
    ),
)
