"""A local Cohere rerank deployment on Azure AI Foundry.

Routes: ``POST /v1/rerank`` (Cohere v1: objects with ``rank_fields``, ``max_chunks_per_doc``)
and ``POST /v2/rerank`` or ``/providers/cohere/v2/rerank`` (Cohere v2: strings,
``max_tokens_per_doc``), any query string (``?api-version=…``) accepted.  Auth
``Authorization: Bearer <key>``, or ``Bearer <an Entra ID token it knows>``.  Bodies are
checked as Cohere checks them (:func:`tests.servers.cohere.problem`: unknown fields, strings on
v2, rank fields on v1) and refused with Cohere's ``{"message"}``; Azure's gateway answers auth
failures and injected faults with ``{"error": {"code", "message"}}``.  Answers are Cohere's
``{id, results: [{index, relevance_score}], meta}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from tests.servers.cohere import problem, v1_text
from tests.wire_server import Recorded, Reply, WireServer, results

ROUTES = {"/v1/rerank": 1, "/v2/rerank": 2, "/providers/cohere/v2/rerank": 2}
CODES = {401: "Unauthorized", 429: "429", 500: "InternalServerError", 503: "ServiceUnavailable"}


class AzureAIServer(WireServer):
    def __init__(self, api_key: str = "test-azure-key", tokens: Iterable[str] = ()) -> None:
        super().__init__()
        self.api_key = api_key
        self.tokens = set(tokens)
        """Entra ID access tokens it accepts."""

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"code": CODES.get(status, str(status)), "message": message}}

    def answer(self, record: Recorded) -> Reply:
        version = ROUTES.get(record.path.split("?")[0])
        if record.method != "POST" or version is None:
            return 404, {}, self.error_body(404, "Resource not found")
        scheme, _, credential = record.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or (credential != self.api_key and credential not in self.tokens):
            denied = "Access denied due to invalid subscription key or wrong API endpoint."
            return 401, {}, self.error_body(401, denied)
        body = record.body
        if message := problem(body, version):
            return 400, {}, {"message": message}
        texts = [v1_text(d, body.get("rank_fields")) for d in body["documents"]]
        ranking = results(body["query"], texts, body.get("top_n"))
        meta = {"api_version": {"version": str(version)}, "billed_units": {"search_units": 1}}
        return 200, {}, {"id": str(uuid.uuid4()), "results": ranking, "meta": meta}
