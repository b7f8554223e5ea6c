"""A local Cohere rerank API (v1 and v2 wire formats): ``POST /v1/rerank``, ``POST /v2/rerank``.

Auth ``Authorization: Bearer <key>`` (else 401 ``{"message": "invalid api token"}``).  v2 takes
``{model, query, documents: [str], top_n?, max_tokens_per_doc?, priority?}``; v1 takes
``{model?, query, documents: [str | object], top_n?, rank_fields?, return_documents?,
max_chunks_per_doc?}`` and ranks an object on its ``rank_fields`` (default ``text``).  Unknown
fields and wrong values are 400 with Cohere's ``{"message"}``.  Answers ``{id, results: [{index,
relevance_score, document?}], meta: {api_version, billed_units: {search_units: 1}}}``.  Wrong
routes, keys and bodies are answered before any injected fault: faults only hit requests
Cohere would have served.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.servers.rules import Rule, counts, each, first_problem, known_fields, listed, string, text, unless
from tests.wire_server import Recorded, Reply, WireServer, results

V2_FIELDS = {"model", "query", "documents", "top_n", "max_tokens_per_doc", "priority"}
V1_FIELDS = {"model", "query", "documents", "top_n", "rank_fields", "return_documents", "max_chunks_per_doc"}
ROUTES = {"/v1/rerank": 1, "/v2/rerank": 2}
NOT_AN_OBJECT = "invalid request: body must be a JSON object"
MAX_CHUNKS = 10_000


def v1_text(document: str | dict[str, Any], rank_fields: list[str] | None) -> str:
    """What Cohere v1 ranks on: a string, or the object's ``rank_fields`` (default ``text``)."""
    if isinstance(document, str):
        return document
    return " ".join(str(document[name]) for name in rank_fields or ["text"])


def _unknown(fields: set[str]) -> Rule:
    return known_fields(fields, "invalid request: unknown field: parameter {name} is not a valid field")


_COMMON = (
    text("query", "invalid request: query must be a non-empty string", strip=True),
    listed("documents", "invalid request: documents must be a list of 1 to 10000 items", 1, 10_000),
    counts(
        ("top_n", "max_tokens_per_doc", "max_chunks_per_doc"),
        "invalid request: {name} must be a positive integer",
    ),
    counts(("priority",), "invalid request: {name} must be a positive integer", minimum=0),
)


def _v1_document_problem(body: dict[str, Any]) -> str | None:
    fields = body.get("rank_fields") or ["text"]
    for i, doc in enumerate(body["documents"]):
        if not isinstance(doc, str | dict):
            return f"invalid request: document {i} must be a string or an object"
        if isinstance(doc, dict) and any(not isinstance(doc.get(f), str) for f in fields):
            return f"invalid request: document {i} is missing a string for rank fields {fields}"
    return None


def _chunks(body: dict[str, Any]) -> int:
    return len(body["documents"]) * int(body.get("max_chunks_per_doc") or 10)


RULES: dict[int, tuple[Rule, ...]] = {
    2: (
        _unknown(V2_FIELDS),
        string("model", "invalid request: model must be specified"),
        *_COMMON,
        each("documents", "invalid request: documents must be a list of strings"),
    ),
    1: (
        _unknown(V1_FIELDS),
        *_COMMON,
        _v1_document_problem,
        unless(
            lambda body: _chunks(body) > MAX_CHUNKS,
            "invalid request: total number of chunks (documents * max_chunks_per_doc) exceeds 10000",
        ),
    ),
}


def problem(body: Any, version: int) -> str | None:
    """Cohere's 400 message for a body sent to its ``version`` API, or None."""
    return first_problem(body, NOT_AN_OBJECT, RULES[version])


def _version(record: Recorded) -> int | None:
    return ROUTES.get(record.path.split("?")[0])


class CohereServer(WireServer):
    def __init__(self, api_key: str = "test-cohere-key") -> None:
        super().__init__()
        self.api_key = api_key

    def refuse(self, record: Recorded) -> Reply | None:
        if _version(record) is None:
            return 404, {}, {"message": f"no route for {record.method} {record.path}"}
        if record.method != "POST":
            return 405, {}, {"message": "method not allowed"}
        if record.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {}, {"message": "invalid api token"}
        if not isinstance(record.body, dict):
            return 400, {}, {"message": NOT_AN_OBJECT}
        return None

    def answer(self, record: Recorded) -> Reply:
        version = _version(record) or 2
        if message := problem(record.body, version):
            return 400, {}, {"message": message}
        return 200, {}, self.rank(record.body, version)

    def rank(self, body: dict[str, Any], version: int) -> dict[str, Any]:
        documents = body["documents"]
        texts = [v1_text(d, body.get("rank_fields")) for d in documents]
        returned = None
        if version == 1 and body.get("return_documents"):
            returned = [{"text": d} if isinstance(d, str) else d for d in documents]
        ranking = results(body["query"], texts, body.get("top_n"), returned)
        meta = {"api_version": {"version": str(version)}, "billed_units": {"search_units": 1}}
        return {"id": str(uuid.uuid4()), "results": ranking, "meta": meta}
