"""IBM watsonx.ai: ``inputs``, a token, Zen key or IAM-exchanged API key; logit scores."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from pydantic import SecretStr

from providers.deployment import Credentials, Deployment
from providers.types import Document
from tests.cases.case import Batch, Line, ProviderCase, Record, bearer, word_count
from tests.ranking_lines import rendered
from tests.servers.watsonx import MODEL, IamServer, WatsonxServer, logit

API_KEY, TOKEN, ZEN = "test-ibm-api-key", "ready-bearer-token", "dXNlcjprZXk="
BASE, PROJECT = "https://us-south.ml.cloud.ibm.com", "test-project"
URL = f"{BASE}/ml/v1/text/rerank?version=2024-05-31"


def dep(base: str | None = BASE, key: str | None = None, **params: Any) -> Deployment:
    settings = {"project_id": PROJECT, "token": SecretStr(TOKEN), **params}
    return Deployment(
        model=f"watsonx/{MODEL}",
        provider="watsonx",
        wire_model=MODEL,
        credentials=Credentials(
            api_key=SecretStr(key) if key else None,
            api_base=base,
            params={k: v for k, v in settings.items() if v is not None},
        ),
    )


def inputs(*texts: Document) -> list[dict[str, Document]]:
    return [{"text": t} for t in texts]


def ok(results: list[tuple[int, float]], tokens: int | None = 12) -> httpx.Response:
    body: dict[str, Any] = {
        "model_id": MODEL,
        "results": [{"index": i, "score": s} for i, s in results],
        "created_at": "2026-01-02T03:04:05.678Z",
    }
    if tokens is not None:
        body["input_token_count"] = tokens
    return httpx.Response(200, json=body, headers={"x-global-transaction-id": "wx-txn-1"})


@contextmanager
def servers() -> Iterator[WatsonxServer]:
    """watsonx.ai with its IAM (``server.iam``), which knows ``API_KEY``."""
    with IamServer(api_keys=[API_KEY]) as iam, WatsonxServer(iam=iam, project_id=PROJECT) as server:
        yield server


def line_body(line: Line) -> dict[str, Any]:
    body = {
        "model_id": MODEL,
        "query": line["query"],
        "project_id": PROJECT,
        "inputs": inputs(*rendered(line)),
    }
    return body | ({"parameters": {"return_options": {"top_n": line["top_n"]}}} if "top_n" in line else {})


def issued(server: WatsonxServer) -> str:
    assert server.iam is not None
    return bearer(server.iam.issued[0])


def truncated(model: str) -> list[Line]:
    """``max_tokens_per_doc``, which watsonx.ai takes natively (``truncate_input_tokens``)."""
    return [{"id": "truncated", "model": model, "query": "omega alpha", "max_tokens_per_doc": 1,
             "documents": ["beta alpha omega", "omega alpha"]}]  # fmt: skip


def one_exchange_and_truncated(server: WatsonxServer, lines: list[Line], results: list[Record]) -> None:
    assert server.iam is not None and len(server.iam.issued) == 1  # one exchange for the whole batch
    # the server kept one word per input: "beta" and "omega" (untruncated, the first would win)
    assert results[0]["results"] == [
        {"index": 1, "relevance_score": logit(0.5)},
        {"index": 0, "relevance_score": logit(0.0)},
    ]
    (seen,) = [r for r in server.requests if r.body["query"] == "omega alpha"]
    assert seen.body["parameters"] == {"truncate_input_tokens": 1}


MESSAGE = "Rate limit of 8 requests per second exceeded"
MALFORMED = ({"results": [{"index": 2, "score": 0.5}]},)
CASE = ProviderCase(
    deployment=dep(),
    answer=ok,
    url=URL,
    authorization=bearer(TOKEN),
    envelope={
        "errors": [{"code": "too_many_requests", "message": MESSAGE}],
        "trace": "t-1",
        "status_code": 429,
    },
    message=MESSAGE,
    error_request_id="t-1",  # the envelope's trace
    missing=(
        (dep(base=None), ("WATSONX_API_BASE", "WATSONX_URL", "WX_URL", "WML_URL")),
        (
            dep(project_id=None),
            ("WATSONX_PROJECT_ID", "WX_PROJECT_ID", "PROJECT_ID", "WATSONX_DEPLOYMENT_SPACE_ID"),
        ),
        (
            dep(token=None),
            ("WATSONX_TOKEN", "WATSONX_ZENAPIKEY", "WATSONX_APIKEY", "WATSONX_API_KEY", "WX_API_KEY"),
        ),
    ),
    key_vars=("WATSONX_APIKEY", "WATSONX_API_KEY", "WX_API_KEY"),
    base_vars=("WATSONX_API_BASE", "WATSONX_URL", "WX_URL", "WML_URL"),
    setting_vars={
        "token": ("WATSONX_TOKEN",),
        "zen_api_key": ("WATSONX_ZENAPIKEY",),
        "watsonx_iam_url": ("WATSONX_IAM_URL",),
        "project_id": ("WATSONX_PROJECT_ID", "WX_PROJECT_ID", "PROJECT_ID"),
        "space_id": ("WATSONX_DEPLOYMENT_SPACE_ID", "WATSONX_SPACE_ID"),
    },
    secret_settings=frozenset({"token", "zen_api_key"}),
    native=frozenset({"top_n", "max_tokens_per_doc"}),
    max_documents=None,
    malformed=MALFORMED,
    batch=Batch(
        server=servers,
        env=lambda server, _: {
            "WATSONX_APIKEY": API_KEY,
            "WATSONX_URL": server.base_url,
            "WATSONX_IAM_URL": server.iam.base_url,
            "WATSONX_PROJECT_ID": PROJECT,
        },
        path="/ml/v1/text/rerank?version=2024-05-31",
        authorization=issued,
        body=line_body,
        usage=lambda line: {"tokens": {"input_tokens": word_count(line)}},
        sent=lambda sent: [i["text"] for i in sent["inputs"]],
        score=logit,
        extra_lines=truncated,
        check=one_exchange_and_truncated,
    ),
)
