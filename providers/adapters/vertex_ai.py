"""Vertex AI ranking (``vertex_ai/<model>``, e.g. ``semantic-ranker-default@latest``): the
Discovery Engine Ranking API.

``POST {base}/v1/projects/{project}/locations/{location}/rankingConfigs/default_ranking_config:rank``
with ``Authorization: Bearer <Google token>`` (:class:`providers.auth.google_oauth.GoogleAuth`) and
``X-Goog-User-Project: {project}``.  Unlike LiteLLM, ``api_base`` is honoured (private endpoints,
tests): it replaces ``https://discoveryengine.googleapis.com``; a base ending in ``/v1`` is not
doubled and a full ``...:rank`` URL is used as is.  Project: ``vertex_project`` param /
``VERTEXAI_PROJECT`` / ``VERTEX_PROJECT`` / ``GOOGLE_CLOUD_PROJECT`` (required).  Location:
``vertex_location`` in the model list, default ``global`` (``us``/``eu`` use the
``{location}-discoveryengine`` host); ``VERTEXAI_LOCATION`` is not read, as it names Vertex AI
compute regions that this API does not serve.

Records are ``{id: "<index>", title?, content}``: a string is the content; an object's
``title`` field (when it is among ``rank_fields``, or there are none) becomes the record title
and its other fields (``rank_fields`` or all but ``id``) are rendered into the content.  No
title is made up.  ``ignoreRecordDetailsInResponse`` is always true (documents are filled in
client-side).  The answer ``records[{id, score}]`` maps back by its id (exactly one of the
ids sent); a missing score is 0.0 (proto3 JSON omits zero values), never 1.0.  Scores are in
[0, 1]; the API reports no usage, so usage is None.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from providers import contract
from providers.adapter import Capabilities, HttpAdapter, ParsedResponse, WireRequest, static
from providers.auth.google_oauth import CREDENTIALS, TOKEN, GoogleAuth
from providers.deployment import Deployment
from providers.errors import ConfigurationError
from providers.render import document_text
from providers.types import Document, RankedDocument, RerankRequest

__all__ = [
    "ADAPTER",
    "HOST",
    "MAX_DOCUMENTS",
    "PROJECT_ENV",
    "build_request",
    "default_base",
    "location",
    "parse_response",
    "project",
    "rank_url",
    "record",
]

HOST = "discoveryengine.googleapis.com"
PROJECT, LOCATION = "vertex_project", "vertex_location"
PROJECT_ENV = ("VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT")
MAX_DOCUMENTS = 200
"""Ranking API reference (RankRequest.records): "At most 200 records to rank"."""


def location(deployment: Deployment) -> str:
    return deployment.credentials.param(LOCATION) or "global"


def project(deployment: Deployment) -> str:
    found = deployment.credentials.param(PROJECT)
    if not found:
        raise ConfigurationError(
            f"no Google Cloud project for {deployment.model!r}: set {' or '.join(PROJECT_ENV)} "
            f"(or {PROJECT} in the model list)",
            provider=deployment.provider,
        )
    return found


def default_base(deployment: Deployment) -> str:
    where = location(deployment)
    return f"https://{HOST}" if where == "global" else f"https://{where}-{HOST}"


def rank_url(base: str, project_id: str, where: str) -> str:
    if urlsplit(base).path.endswith(":rank"):
        return base
    prefix = base if base.endswith("/v1") else f"{base}/v1"
    return f"{prefix}/projects/{project_id}/locations/{where}/rankingConfigs/default_ranking_config:rank"


def record(index: int, document: Document, rank_fields: list[str] | None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": str(index)}
    if isinstance(document, str):
        return {**item, "content": document}
    fields = rank_fields or [name for name in document if name != "id"]
    if "title" in fields and isinstance(document.get("title"), str):
        item["title"] = document["title"]
        fields = [name for name in fields if name != "title"]
    if any(name in document for name in fields):
        item["content"] = document_text(document, fields)
    return item


def build_request(base: str, deployment: Deployment, request: RerankRequest) -> WireRequest:
    project_id = project(deployment)
    body: dict[str, Any] = {
        "model": deployment.wire_model,
        "query": request.query,
        "records": [record(i, d, request.rank_fields) for i, d in enumerate(request.documents)],
        "ignoreRecordDetailsInResponse": True,
    }
    if request.top_n is not None:
        body["topN"] = request.top_n
    url = rank_url(base, project_id, location(deployment))
    return WireRequest(url=url, body=body, headers={"x-goog-user-project": project_id})


def parse_response(body: Any, request: RerankRequest) -> ParsedResponse:
    records = body["records"]
    if not isinstance(records, list):
        raise contract.ContractError(f"'records' is a {type(records).__name__}, not a list")
    return ParsedResponse(
        results=[
            RankedDocument(
                index=contract.index_from_id(r["id"]), relevance_score=contract.score(r.get("score", 0.0))
            )
            for r in records
        ]
    )


ADAPTER = HttpAdapter(
    provider="vertex_ai",
    build_request=build_request,
    parse_response=parse_response,
    capabilities=static(Capabilities(object_documents=True, max_documents=MAX_DOCUMENTS)),
    auth=GoogleAuth(),
    auth_kind="Google token (given, else google-auth credentials or ADC); extra `rerank-runner[vertex]`",
    param_env={
        PROJECT: PROJECT_ENV,
        LOCATION: (),
        CREDENTIALS: ("VERTEXAI_CREDENTIALS",),
        TOKEN: ("VERTEX_AI_ACCESS_TOKEN",),
    },
    default_base=default_base,
    score_kind="relevance score in [0, 1]",
    usage_kind="none (the Ranking API reports no usage)",
)
