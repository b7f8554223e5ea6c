"""Vertex AI ranking (Discovery Engine's Ranking API): records, a Google token, the project header."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from providers.adapters import vertex_ai
from providers.deployment import Credentials, Deployment
from tests.cases.case import Batch, Line, ProviderCase, Record, bearer, config_for
from tests.servers.vertex_ai import VertexServer, record_text

TOKEN, PROJECT, MODEL = "ya29.test-token", "test-project", "semantic-ranker-default@latest"
RANK = "/v1/projects/test-project/locations/global/rankingConfigs/default_ranking_config:rank"


def dep(base: str | None = None, **params: Any) -> Deployment:
    settings = {"vertex_project": PROJECT, "vertex_access_token": SecretStr(TOKEN), **params}
    return Deployment(
        model=f"vertex_ai/{MODEL}",
        provider="vertex_ai",
        wire_model=MODEL,
        credentials=Credentials(api_base=base, params={k: v for k, v in settings.items() if v is not None}),
    )


def head(records: list[dict[str, Any]], query: str = "solar power", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "query": query, "records": records, "ignoreRecordDetailsInResponse": True} | extra


def ok(records: list[dict[str, Any]]) -> httpx.Response:
    return httpx.Response(200, json={"records": records})


def records(line: Line) -> list[dict[str, Any]]:
    return [vertex_ai.record(i, d, line.get("rank_fields")) for i, d in enumerate(line["documents"])]


def line_body(line: Line) -> dict[str, Any]:
    return head(records(line), line["query"]) | ({"topN": line["top_n"]} if "top_n" in line else {})


def project_header_and_titles(server: VertexServer, lines: list[Line], results: list[Record]) -> None:
    assert {r.headers["x-goog-user-project"] for r in server.requests} == {PROJECT}
    assert any("title" in record for r in server.requests for record in r.body["records"])


MESSAGE = "Quota exceeded for ranking requests."
MALFORMED = tuple(
    {"records": records}  # records that do not map back to the request's documents
    for records in (
        [{"id": "7", "score": 0.5}],
        [{"id": "x", "score": 0.5}],
        [{"score": 0.5}],
        [{"id": "0"}, {"id": "0"}],
    )
)
CASE = ProviderCase(
    deployment=dep(),
    answer=lambda pairs: ok([{"id": str(i), "score": s} for i, s in pairs]),
    url=f"https://discoveryengine.googleapis.com{RANK}",
    authorization=bearer(TOKEN),
    envelope={"error": {"code": 429, "message": MESSAGE, "status": "RESOURCE_EXHAUSTED"}},
    message=MESSAGE,
    missing=(
        (
            dep(vertex_project=None),
            ("VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT", "vertex_project"),
        ),
    ),
    setting_vars={
        "vertex_project": ("VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT"),
        "vertex_credentials": ("VERTEXAI_CREDENTIALS",),
        "vertex_access_token": ("VERTEX_AI_ACCESS_TOKEN",),
    },
    secret_settings=frozenset({"vertex_credentials", "vertex_access_token"}),
    ignored_vars={"VERTEXAI_LOCATION": "us-central1"},  # a compute region is not a Ranking API location
    native=frozenset({"object_documents", "top_n"}),
    max_documents=200,
    malformed=MALFORMED,
    batch=Batch(
        server=lambda: VertexServer(token=TOKEN, project=PROJECT),
        config=lambda server: config_for(f"vertex_ai/{MODEL}", server.base_url, vertex_project=PROJECT),
        env=lambda _server, _tmp: {"VERTEX_AI_ACCESS_TOKEN": TOKEN},
        path=RANK,
        authorization=lambda _: bearer(TOKEN),
        body=line_body,
        usage=lambda _: None,
        sent=lambda sent: [r["content"] for r in sent["records"]],
        texts=lambda line: [record_text(r) for r in records(line)],
        check=project_header_and_titles,
    ),
)
