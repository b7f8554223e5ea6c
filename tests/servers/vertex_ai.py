"""A local Discovery Engine Ranking API:
``POST /v1/projects/{project}/locations/{location}/rankingConfigs/default_ranking_config:rank``.

Requires ``Authorization: Bearer <token>`` and ``X-Goog-User-Project`` naming the URL's
project.  Takes ``{model, query, records: [{id, title?, content?}], topN?,
ignoreRecordDetailsInResponse?, userLabels?}`` and rejects unknown fields the way Google's JSON
parser does; at most 200 records, each with a unique id and a title or content.  Ranks
``title + content`` and answers ``{records: [{id, score, title?, content?}]}`` best first, cut to
``topN`` when positive.  Like any proto3 JSON, a score of 0 is left out.  Errors are
``{"error": {code, message, status}}``.  :class:`GoogleTokenServer` is a local OAuth2 token
endpoint for refreshing Google credentials.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

from google.auth import jwt

from tests.servers.rules import first_problem, known_fields, listed, text
from tests.wire_server import Recorded, Reply, WireServer, ranked

ROUTE = re.compile(r"/v1/projects/([^/]+)/locations/([^/]+)/rankingConfigs/([^/:]+):rank")
FIELDS = {"model", "query", "records", "topN", "ignoreRecordDetailsInResponse", "userLabels"}
RECORD_FIELDS = {"id", "title", "content"}
MAX_RECORDS = 200
EMAIL = "ranker@test-project.iam.gserviceaccount.com"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
AUDIENCE = "https://oauth2.googleapis.com/token"
"""A service account's grant is addressed to Google's token endpoint whatever its token_uri."""
STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def record_text(record: dict[str, Any]) -> str:
    """What the server ranks for a record."""
    return "\n".join(record[k] for k in ("title", "content") if k in record)


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "Invalid value at 'records': each record must be an object."
    if extra := sorted(set(record) - RECORD_FIELDS):
        return f"Invalid JSON payload received. Unknown name \"{extra[0]}\" at 'records': Cannot find field."
    if not isinstance(record.get("id"), str) or not record["id"]:
        return "Record id must be set."
    if not any(isinstance(record.get(k), str) and record[k] for k in ("title", "content")):
        return f"Record {record['id']} must have a title or content."
    return None


def _records_problem(body: dict[str, Any]) -> str | None:
    records = body["records"]
    if problem := next((p for r in records if (p := _record_problem(r))), None):
        return problem
    return None if len({r["id"] for r in records}) == len(records) else "Record ids must be unique."


def _top_problem(body: dict[str, Any]) -> str | None:
    top = body.get("topN")
    return None if top is None or type(top) is int else f"Invalid value at 'top_n' (TYPE_INT32), {top!r}"


RULES = (
    known_fields(FIELDS, 'Invalid JSON payload received. Unknown name "{name}": Cannot find field.'),
    listed("records", "records must be set."),
    listed(
        "records", f"Too many records: {{count}}. At most {MAX_RECORDS} records are allowed.", 0, MAX_RECORDS
    ),
    _records_problem,
    _top_problem,
    text("query", "query must be set."),
)


def problem(body: Any) -> str | None:
    """Google's INVALID_ARGUMENT message for a body, or None."""
    return first_problem(body, "Invalid JSON payload received. Expected an object.", RULES)


class VertexServer(WireServer):
    def __init__(self, token: str = "ya29.test-token", project: str = "test-project") -> None:
        super().__init__()
        self.token = token
        self.project = project

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"code": status, "message": message, "status": STATUSES.get(status, "UNKNOWN")}}

    def _error(self, status: int, message: str) -> Reply:
        return status, {}, self.error_body(status, message)

    def answer(self, record: Recorded) -> Reply:
        route = ROUTE.fullmatch(record.path)
        if record.method != "POST" or route is None:
            return self._error(404, f"The requested URL {record.path} was not found on this server.")
        project, location, config = route.groups()
        if record.headers.get("authorization") != f"Bearer {self.token}":
            return self._error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            )
        if project != self.project or record.headers.get("x-goog-user-project") != project:
            return self._error(403, f"Caller does not have required permission to use project {project}.")
        if location != "global" or config != "default_ranking_config":
            return self._error(404, f"RankingConfig {config} in location {location} not found.")
        body = record.body
        if message := problem(body):
            return self._error(400, message)
        records = body["records"]
        top = body.get("topN") or None
        answered = []
        for index, value in ranked(body["query"], [record_text(r) for r in records], top):
            item: dict[str, Any] = {"id": records[index]["id"]}
            if value:
                item["score"] = value
            if not body.get("ignoreRecordDetailsInResponse"):
                item |= {k: records[index][k] for k in ("title", "content") if k in records[index]}
            answered.append(item)
        return 200, {}, {"records": answered}


class GoogleTokenServer(WireServer):
    """A local Google OAuth2 token endpoint (``POST /token``) for service-account credentials:
    verifies the JWT-bearer assertion (signature against the account's public key, issuer,
    audience, cloud-platform scope) and answers ``token``, counting grants; errors are
    ``{error, error_description}``."""

    def __init__(self, public_key_pem: str, token: str = "ya29.test-token", email: str = EMAIL) -> None:
        super().__init__()
        self.public_key_pem = public_key_pem
        self.token = token
        self.email = email
        self.grants: list[dict[str, Any]] = []

    def error_body(self, status: int, message: str) -> Any:
        return {"error": "invalid_grant", "error_description": message}

    def answer(self, record: Recorded) -> Reply:
        if record.method != "POST" or record.path != "/token":
            return 404, {}, self.error_body(404, "Not Found")
        form = parse_qs(record.raw.decode())
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return 400, {}, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}
        try:
            assertion = form["assertion"][0]
            claims = jwt.decode(  # type: ignore[no-untyped-call]
                assertion, certs=self.public_key_pem, audience=AUDIENCE
            )
        except (KeyError, ValueError) as exc:
            return 400, {}, self.error_body(400, f"Invalid JWT Signature: {exc}")
        if claims.get("iss") != self.email or SCOPE not in str(claims.get("scope", "")).split():
            return 400, {}, self.error_body(400, "Invalid JWT: issuer or scope")
        with self._lock:
            self.grants.append(claims)
        return 200, {}, {"access_token": self.token, "expires_in": 3599, "token_type": "Bearer"}

    def credentials(self, private_key_pem: str) -> dict[str, str]:
        """Service-account credentials whose token grants come here."""
        return {
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "test-key-1",
            "private_key": private_key_pem,
            "client_email": self.email,
            "client_id": "1234567890",
            "token_uri": f"{self.base_url}/token",
        }
