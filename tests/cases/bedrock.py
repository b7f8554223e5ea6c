"""Amazon Bedrock's Agent Runtime ``Rerank``: SigV4-signed, TEXT and JSON sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from providers.adapters import bedrock
from providers.deployment import Credentials, Deployment
from tests.cases.case import Batch, Line, ProviderCase, Record
from tests.servers.bedrock import BedrockServer, source_text

ARN = "arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0"
KEY_ID, SECRET, TOKEN = "AKIDTESTBEDROCK", "test-secret-key", "test-session-token"
KEYS = {"aws_access_key_id": SecretStr(KEY_ID), "aws_secret_access_key": SecretStr(SECRET)}
URL = "https://bedrock-agent-runtime.us-west-2.amazonaws.com/rerank"
SIGNED = (
    r"AWS4-HMAC-SHA256 Credential={key}/\d{{8}}/us-west-2/bedrock/aws4_request, "
    r"SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{{64}}"
)


def dep(
    base: str | None = None, model: str = ARN, headers: dict[str, str] | None = None, **params: Any
) -> Deployment:
    return Deployment(
        model=f"bedrock/{model}",
        provider="bedrock",
        wire_model=model,
        credentials=Credentials(api_base=base, params={**KEYS, **params}),
        headers=headers or {},
    )


def text(value: str) -> dict[str, Any]:
    return {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": value}}}


def json_doc(value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "INLINE", "inlineDocumentSource": {"type": "JSON", "jsonDocument": value}}


def body(
    sources: list[dict[str, Any]], count: int, model: str = ARN, query: str = "solar power"
) -> dict[str, Any]:
    return {
        "queries": [{"type": "TEXT", "textQuery": {"text": query}}],
        "rerankingConfiguration": {
            "type": "BEDROCK_RERANKING_MODEL",
            "bedrockRerankingConfiguration": {
                "modelConfiguration": {"modelArn": model},
                "numberOfResults": count,
            },
        },
        "sources": sources,
    }


def ok(results: list[tuple[int, float]], **extra: Any) -> httpx.Response:
    answer = {"results": [{"index": i, "relevanceScore": s} for i, s in results], **extra}
    return httpx.Response(200, json=answer, headers={"x-amzn-RequestId": "aws-req-1"})


def sources(line: Line) -> list[dict[str, Any]]:
    """String documents as TEXT, objects as JSON documents (their ``rank_fields``)."""
    return [bedrock.source(d, line.get("rank_fields")) for d in line["documents"]]


def line_body(line: Line) -> dict[str, Any]:
    return body(sources(line), line.get("top_n") or len(line["documents"]), query=line["query"])


def worker_env(server: BedrockServer, tmp_path: Path) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN,
        "BEDROCK_API_BASE": server.base_url, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }  # fmt: skip


def both_kinds_sent(server: BedrockServer, lines: list[Line], results: list[Record]) -> None:
    kinds = {s["inlineDocumentSource"]["type"] for r in server.requests for s in r.body["sources"]}
    assert kinds == {"TEXT", "JSON"}


ENVELOPE = {"message": "Too many requests, please wait before trying again."}
MALFORMED = ({"results": [{"index": 2, "relevanceScore": 0.5}]},)
CASE = ProviderCase(
    deployment=dep(),
    answer=ok,
    url=URL,
    authorization=SIGNED.format(key=KEY_ID),
    envelope=ENVELOPE,
    message=ENVELOPE["message"],
    missing=(
        (
            dep(model="cohere.rerank-v3-5:0"),
            ("aws_region_name", "AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION"),
        ),
    ),
    base_vars=("BEDROCK_API_BASE",),
    setting_vars={
        "aws_env_region": ("AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION"),
        "aws_bedrock_runtime_endpoint": ("AWS_BEDROCK_RUNTIME_ENDPOINT",),
        "aws_env_access_key_id": ("AWS_ACCESS_KEY_ID",),
        "aws_env_secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
        "aws_env_session_token": ("AWS_SESSION_TOKEN",),
    },
    secret_settings=frozenset(
        {"aws_env_access_key_id", "aws_env_secret_access_key", "aws_env_session_token"}
    ),
    native=frozenset({"object_documents", "top_n"}),
    max_documents=1000,
    malformed=MALFORMED,
    batch=Batch(
        server=lambda: BedrockServer(session_token=TOKEN),
        env=worker_env,
        path="/rerank",
        authorization=lambda _: SIGNED.format(key=KEY_ID),
        body=line_body,
        usage=lambda _: None,
        sent=lambda sent: [source_text(s) for s in sent["sources"]],
        texts=lambda line: [source_text(s) for s in sources(line)],
        check=both_kinds_sent,
    ),
)
