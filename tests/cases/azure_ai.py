"""Azure AI Foundry's Cohere deployments: the route picks Cohere v1 or v2."""

from __future__ import annotations

from typing import Any

import httpx

from tests.cases.case import Batch, Deployer, Forwarded, Line, ProviderCase, Record, bearer, strings_body
from tests.ranking_lines import check_records
from tests.servers.azure_ai import AzureAIServer

KEY = "test-azure-key"
WIRE_MODEL = "cohere-rerank-v3.5"
SERVERLESS = "https://rerank-x.eastus2.models.ai.azure.com"
FOUNDRY = "https://res.services.ai.azure.com/providers/cohere/v2"
VERSION = "?api-version=2024-05-01-preview"
SEARCH_UNIT = {"billed_units": {"search_units": 1}}


dep = Deployer("azure_ai", WIRE_MODEL, key=KEY, base=SERVERLESS)


def ok(results: list[tuple[int, float]], meta: dict[str, Any] | None = None) -> httpx.Response:
    body = {
        "id": "resp-az",
        "results": [{"index": i, "relevance_score": s} for i, s in results],
        "meta": meta if meta is not None else {"api_version": {"version": "1"}, **SEARCH_UNIT},
    }
    return httpx.Response(200, json=body, headers={"x-request-id": "req-az"})


def capped(model: str) -> list[Line]:
    """A line with ``max_tokens_per_doc``, which the v2 route takes natively."""
    return [{"id": "capped", "model": model, "query": "wind farm", "documents": ["coffee", "wind farm"],
             "max_tokens_per_doc": 256}]  # fmt: skip


def capped_is_sent_as_is(server: AzureAIServer, lines: list[Line], results: list[Record]) -> None:
    check_records(lines, results)
    assert results[0]["usage"] == SEARCH_UNIT
    (seen,) = [r for r in server.requests if r.body["query"] == "wind farm"]
    assert seen.body == strings_body(WIRE_MODEL, lines[0], max_tokens_per_doc=256)


MESSAGE = "Rate limit is exceeded. Try again in 7 seconds."
MALFORMED = ({"id": "x", "results": [{"index": 2, "relevance_score": 0.5}]},)
CASE = ProviderCase(
    deployment=dep(f"{FOUNDRY}{VERSION}"),
    answer=ok,
    url=f"{FOUNDRY}/rerank{VERSION}",
    authorization=bearer(KEY),
    envelope={"error": {"code": "429", "message": MESSAGE}},
    message=MESSAGE,
    missing=((dep(base=None), ("AZURE_AI_API_BASE",)), (dep(key=None), ("AZURE_AI_API_KEY",))),
    key_vars=("AZURE_AI_API_KEY",),
    setting_vars={
        "azure_ad_token": ("AZURE_AD_TOKEN",),
        "tenant_id": ("AZURE_TENANT_ID",),
        "client_id": ("AZURE_CLIENT_ID",),
        "client_secret": ("AZURE_CLIENT_SECRET",),
    },
    secret_settings=frozenset({"azure_ad_token", "client_secret"}),
    base_vars=("AZURE_AI_API_BASE",),
    ignored_vars={"AZURE_API_KEY": "openai-key"},
    native=frozenset({"top_n", "max_tokens_per_doc"}),
    max_documents=1000,
    malformed=MALFORMED,
    forwarded=(Forwarded({"api-version": "2024-05-01-preview"}, query="api-version=2024-05-01-preview"),),
    refused_params=({"api-version": 2024},),
    batch=Batch(
        server=lambda: AzureAIServer(KEY),
        env=lambda server, _: {
            "AZURE_AI_API_KEY": KEY,
            "AZURE_AI_API_BASE": f"{server.base_url}/providers/cohere/v2{VERSION}",
        },
        path=f"/providers/cohere/v2/rerank{VERSION}",
        authorization=lambda _: bearer(KEY),
        body=lambda line: strings_body(WIRE_MODEL, line),
        usage=lambda _: SEARCH_UNIT,
        extra_lines=capped,
        check=capped_is_sent_as_is,
    ),
)
