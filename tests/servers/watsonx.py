"""A local IBM watsonx.ai rerank API (``POST /ml/v1/text/rerank?version=...``, and for a deployed
model ``POST /ml/v1/deployments/<id>/text/rerank?version=...``, whose body has no ``model_id``,
``project_id`` or ``space_id``: an unknown id is 404) and a local IBM IAM token endpoint
(``POST /identity/token``).

watsonx.ai accepts ``Bearer`` tokens this IAM server issued (or fixed ones) and ``ZenApiKey``
keys; takes ``{model_id, query, inputs: [{text}], parameters?: {truncate_input_tokens?,
return_options?: {top_n?, inputs?, query?}}, project_id | space_id}`` and nothing else; keeps
the first ``truncate_input_tokens`` words of each input; answers ``{model_id, results: [{index,
score}], created_at, input_token_count}`` best first with logit-like scores (negative for poor
matches).  Errors are ``{errors: [{code, message, more_info}], trace, status_code}``; the request
id header is ``x-global-transaction-id``.  IAM exchanges a known API key, form-encoded, for a
token living ``lifetime`` seconds, and counts its exchanges; its errors are ``{errorCode,
errorMessage, context}``.
"""

from __future__ import annotations

import datetime
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from tests.servers.rules import each, first_problem, known_fields, listed, text, unless
from tests.wire_server import Recorded, Reply, WireServer, ranked, words

GRANT_TYPE = "urn:ibm:params:oauth:grant-type:apikey"
DEPLOYED = re.compile(r"^/ml/v1/deployments/(?P<id>[^/]+)/text/rerank$")
FIELDS = {"model_id", "query", "inputs", "parameters", "project_id", "space_id"}
MODEL = "cross-encoder/ms-marco-minilm-l-12-v2"
INVALID = "Json document validation error"


def logit(value: float) -> float:
    """The server's score for a word-overlap fraction: like a cross-encoder's, unbounded and signed."""
    return round(8.0 * value - 4.0, 6)


def _positive(value: Any) -> bool:
    return type(value) is int and value >= 1


def _text_input(item: Any) -> bool:
    return isinstance(item, dict) and set(item) == {"text"} and isinstance(item["text"], str)


def _parameters_problem(body: dict[str, Any]) -> str | None:
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict) or set(parameters) - {"truncate_input_tokens", "return_options"}:
        return f"{INVALID}: unknown field in 'parameters'"
    options = parameters.get("return_options", {})
    if not isinstance(options, dict) or set(options) - {"top_n", "inputs", "query"}:
        return f"{INVALID}: unknown field in 'parameters.return_options'"
    for name, value in (
        ("top_n", options.get("top_n", 1)),
        ("truncate", parameters.get("truncate_input_tokens", 1)),
    ):
        if not _positive(value):
            return f"{INVALID}: '{name}' must be a positive integer"
    return None


RULES = (
    known_fields(FIELDS, f"{INVALID}: '{{name}}' is not a valid field"),
    unless(
        lambda body: ("project_id" in body) == ("space_id" in body),
        "Either space_id or project_id has to be provided",
    ),
    text("query", f"{INVALID}: 'query' is required"),
    listed("inputs", f"{INVALID}: 'inputs' must be a non-empty list of {{text}} objects"),
    each("inputs", f"{INVALID}: 'inputs' must be a non-empty list of {{text}} objects", _text_input),
    _parameters_problem,
)


def problem(body: Any) -> str | None:
    """watsonx.ai's json_validation_error message for a body, or None."""
    return first_problem(body, f"{INVALID}: body must be an object", RULES)


class IamServer(WireServer):
    request_id_header = "transaction-id"

    def __init__(self, api_keys: Iterable[str] = ("test-ibm-api-key",), lifetime: int = 3600) -> None:
        super().__init__()
        self.api_keys = set(api_keys)
        self.lifetime = lifetime
        self.issued: list[str] = []

    def error_body(self, status: int, message: str) -> Any:
        return {
            "errorCode": "BXNIM0415E",
            "errorMessage": message,
            "context": {"requestId": uuid.uuid4().hex},
        }

    def answer(self, record: Recorded) -> Reply:
        if record.method != "POST" or record.path != "/identity/token":
            return 404, {}, self.error_body(404, "Not Found")
        form = parse_qs(record.raw.decode())
        if record.headers.get("content-type") != "application/x-www-form-urlencoded":
            return 400, {}, self.error_body(400, "Operation not supported: content type must be form")
        if form.get("grant_type") != [GRANT_TYPE]:
            return (
                400,
                {},
                self.error_body(400, "Property missing or empty. Operation not supported: grant_type"),
            )
        if form.get("apikey", [""])[0] not in self.api_keys:
            return 400, {}, self.error_body(400, "Provided API key could not be found.")
        with self._lock:
            token = f"iam-token-{len(self.issued)}-{uuid.uuid4().hex[:8]}"
            self.issued.append(token)
        expiration = int(time.time()) + self.lifetime
        answer = {"access_token": token, "refresh_token": "not_supported", "token_type": "Bearer"}
        return (
            200,
            {},
            {**answer, "expires_in": self.lifetime, "expiration": expiration, "scope": "ibm openid"},
        )


class WatsonxServer(WireServer):
    request_id_header = "x-global-transaction-id"

    def __init__(
        self,
        iam: IamServer | None = None,
        tokens: Iterable[str] = (),
        zen_keys: Iterable[str] = (),
        project_id: str = "test-project",
        deployments: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.deployments = set(deployments)
        """Ids of deployed rerank models."""
        self.iam = iam
        self.tokens, self.zen_keys = set(tokens), set(zen_keys)
        self.project_id = project_id

    def error_body(self, status: int, message: str) -> Any:
        code = {401: "authentication_token_not_valid", 404: "not_found", 429: "too_many_requests"}
        error = {"code": code.get(status, "json_validation_error" if status == 400 else "internal_error")}
        error |= {"message": message, "more_info": "https://cloud.ibm.com/apidocs/watsonx-ai#text-rerank"}
        return {"errors": [error], "trace": uuid.uuid4().hex, "status_code": status}

    def _error(self, status: int, message: str) -> Reply:
        return status, {}, self.error_body(status, message)

    def authorized(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme == "ZenApiKey":
            return value in self.zen_keys
        issued = self.iam.issued if self.iam is not None else []
        return scheme == "Bearer" and (value in self.tokens or value in issued)

    def answer(self, record: Recorded) -> Reply:
        path, _, query_string = record.path.partition("?")
        deployed = DEPLOYED.match(path)
        if record.method != "POST" or (path != "/ml/v1/text/rerank" and deployed is None):
            return self._error(404, f"Route {path} not found")
        if not parse_qs(query_string).get("version"):
            return self._error(400, "Missing query parameter `version`")
        if not self.authorized(record.headers.get("authorization", "")):
            return self._error(401, "Failed to authenticate the request due to invalid token")
        body = record.body
        if deployed is not None:
            return self._deployed(deployed["id"], body)
        if message := problem(body):
            return self._error(400, message)
        return self._rank(body)

    def _deployed(self, deployment_id: str, body: Any) -> Reply:
        if deployment_id not in self.deployments:
            return self._error(404, f"Deployment with id '{deployment_id}' does not exist")
        if isinstance(body, dict) and (given := sorted({"model_id", "project_id", "space_id"} & set(body))):
            return self._error(400, f"{INVALID}: '{given[0]}' is not a valid field for a deployment")
        if message := problem({**body, "model_id": MODEL, "project_id": self.project_id}):
            return self._error(400, message)
        return self._rank({**body, "model_id": MODEL})

    def _rank(self, body: dict[str, Any]) -> Reply:
        if body["model_id"] != MODEL:
            return self._error(404, f"Model '{body['model_id']}' is not supported")
        if body.get("project_id", self.project_id) != self.project_id:
            return self._error(403, f"User does not have access to project {body['project_id']}")
        parameters = body.get("parameters", {})
        keep = parameters.get("truncate_input_tokens")
        texts = [" ".join(i["text"].split()[:keep]) if keep else i["text"] for i in body["inputs"]]
        top = parameters.get("return_options", {}).get("top_n")
        results = [{"index": i, "score": logit(s)} for i, s in ranked(body["query"], texts, top)]
        tokens = sum(len(words(body["query"])) + len(words(t)) for t in texts)
        created = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        return (
            200,
            {},
            {"model_id": MODEL, "results": results, "created_at": created, "input_token_count": tokens},
        )
