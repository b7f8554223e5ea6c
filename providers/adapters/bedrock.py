"""AWS Bedrock rerank (``bedrock/<model ARN>``): the Bedrock Agent Runtime ``Rerank`` operation.

``POST https://bedrock-agent-runtime.{region}.amazonaws.com/rerank``, SigV4-signed for service
``bedrock`` (:class:`providers.auth.sigv4.SigV4Auth`).  The base is ``aws_bedrock_runtime_endpoint``
/ ``AWS_BEDROCK_RUNTIME_ENDPOINT`` if set, else ``api_base`` / ``BEDROCK_API_BASE``, else the
regional default; a ``bedrock-runtime`` host becomes ``bedrock-agent-runtime`` and ``/rerank`` is
appended (unless already there).  Region: ``aws_region_name`` param, else the model ARN's region,
else ``AWS_REGION_NAME`` / ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else a configuration error.

The wire model (everything after ``bedrock/``) is sent verbatim as ``modelArn``.  String
documents go as ``TEXT`` sources.  Object documents go natively as ``JSON`` sources holding the
``rank_fields`` (in that order) or, without them, every field but ``id`` -- the same fields the
text rendering of other providers would use; when documents are truncated or chunked
client-side they are rendered to text first.  ``numberOfResults`` is ``top_n`` (or every
document).  Scores are ``relevanceScore`` in [0, 1].  The response reports no usage, so usage
is None (nothing is invented).  A response paged with ``nextToken`` before all wanted results
is followed: the same request again with the token, until the pages hold every wanted result
(a token that repeats, or more pages than documents, is a bad response).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from providers.adapter import Capabilities, HttpAdapter, ParsedResponse, WireRequest, static
from providers.adapters.shapes import parse_results
from providers.auth.sigv4 import CREDENTIAL_PARAMS, SigV4Auth
from providers.deployment import Deployment
from providers.errors import ConfigurationError
from providers.types import Document, RerankRequest

__all__ = [
    "ADAPTER",
    "ENV_REGION",
    "MAX_DOCUMENTS",
    "arn_region",
    "build_request",
    "default_base",
    "next_page",
    "number_of_results",
    "parse_response",
    "region",
    "rerank_url",
    "source",
]

REGION, ENDPOINT = "aws_region_name", "aws_bedrock_runtime_endpoint"
ENV_REGION = "aws_env_region"
"""The environment's region; its own key because it ranks below the ARN's, unlike ``aws_region_name``."""
MAX_DOCUMENTS = 1000
"""Rerank API reference: ``sources`` holds 1 to 1,000 items (``numberOfResults`` 1 to 1,000)."""


def arn_region(model: str) -> str | None:
    """``arn:aws:bedrock:us-west-2::foundation-model/...`` -> ``us-west-2``."""
    parts = model.split(":")
    return (parts[3] or None) if len(parts) >= 6 and parts[0] == "arn" else None


def region(deployment: Deployment) -> str:
    param = deployment.credentials.param
    found = param(REGION) or arn_region(deployment.wire_model) or param(ENV_REGION)
    if not found:
        raise ConfigurationError(
            f"no AWS region for {deployment.model!r}: use a model ARN with a region, or set "
            "aws_region_name in the model list, or AWS_REGION_NAME, AWS_REGION or AWS_DEFAULT_REGION",
            provider=deployment.provider,
        )
    return found


def default_base(deployment: Deployment) -> str:
    name = region(deployment)
    return f"https://bedrock-agent-runtime.{name}.amazonaws.com{'.cn' if name.startswith('cn-') else ''}"


def rerank_url(base: str) -> str:
    parts = urlsplit(base.rstrip("/"))
    netloc = parts.netloc.replace("bedrock-runtime", "bedrock-agent-runtime")
    path = parts.path if parts.path.endswith("/rerank") else f"{parts.path}/rerank"
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


def number_of_results(request: RerankRequest) -> int:
    count = len(request.documents)
    return min(request.top_n, count) if request.top_n else count


def source(document: Document, rank_fields: list[str] | None) -> dict[str, Any]:
    if isinstance(document, str):
        inline: dict[str, Any] = {"type": "TEXT", "textDocument": {"text": document}}
    else:
        fields = rank_fields or [name for name in document if name != "id"]
        inline = {"type": "JSON", "jsonDocument": {k: document[k] for k in fields if k in document}}
    return {"type": "INLINE", "inlineDocumentSource": inline}


def build_request(base: str, deployment: Deployment, request: RerankRequest) -> WireRequest:
    endpoint = deployment.credentials.param(ENDPOINT) or base
    model = {"modelConfiguration": {"modelArn": deployment.wire_model}}
    body = {
        "queries": [{"type": "TEXT", "textQuery": {"text": request.query}}],
        "rerankingConfiguration": {
            "type": "BEDROCK_RERANKING_MODEL",
            "bedrockRerankingConfiguration": {**model, "numberOfResults": number_of_results(request)},
        },
        "sources": [source(d, request.rank_fields) for d in request.documents],
    }
    return WireRequest(url=rerank_url(endpoint), body=body)


def parse_response(body: Any, request: RerankRequest) -> ParsedResponse:
    token = body.get("nextToken")
    if token is not None and not isinstance(token, str):
        raise ValueError(f"nextToken is a {type(token).__name__}, not a string")
    return ParsedResponse(results=parse_results(body, score="relevanceScore"), page_token=token or None)


def next_page(sent: WireRequest, token: str) -> WireRequest:
    return replace(sent, body={**sent.body, "nextToken": token})


ADAPTER = HttpAdapter(
    provider="bedrock",
    independent_scores=True,  # a cross-encoder: each document scored on its own
    build_request=build_request,
    parse_response=parse_response,
    next_page=next_page,
    capabilities=static(Capabilities(object_documents=True, max_documents=MAX_DOCUMENTS)),
    auth=SigV4Auth(service="bedrock", region=region),
    auth_kind="AWS SigV4 (botocore signs; key pair, profile or AWS chain); extra `rerank-runner[bedrock]`",
    base_env=("BEDROCK_API_BASE",),
    param_env={
        REGION: (),
        ENV_REGION: ("AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION"),
        ENDPOINT: ("AWS_BEDROCK_RUNTIME_ENDPOINT",),
        **CREDENTIAL_PARAMS,
    },
    default_base=default_base,
    score_kind="probability in [0, 1] (relevanceScore)",
    usage_kind="none (Bedrock reports no usage)",
)
