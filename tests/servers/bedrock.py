"""A local Bedrock Agent Runtime ``Rerank`` API: ``POST /rerank``, SigV4-signed for ``bedrock``.

Every request's signature is verified as AWS does: the ``Authorization`` header's shape and
credential scope (key, date, region, service ``bedrock``), ``X-Amz-Date`` signed and within five
minutes, the session token, and the signature itself, recomputed with botocore's signer from
the signed headers, path and body the server received.  Bodies are validated like the real
API (one TEXT query, ``BEDROCK_RERANKING_MODEL`` with a foundation-model ARN, 1-1,000 INLINE
sources of TEXT or JSON, no unknown members).  Answers ``{results: [{index, relevanceScore}]}``
best first, cut to ``numberOfResults``, with no usage.  Errors are ``{"message": ...}`` with
``x-amzn-ErrorType``; the request id header is ``x-amzn-RequestId``.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from tests.servers.rules import first_problem, known_fields, listed
from tests.wire_server import Recorded, Reply, WireServer, ranked

AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})"
)
MODEL_ARN = re.compile(r"arn:aws(-[a-z]+)*:bedrock:[a-z0-9-]{1,20}::foundation-model/.+")
MAX_SOURCES = 1000
ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


def source_text(source: Any) -> str:
    """The text the server ranks for a source: a TEXT document's text, a JSON document's values."""
    inline = source["inlineDocumentSource"]
    if inline["type"] == "TEXT":
        return str(inline["textDocument"]["text"])
    return " ".join(_values(inline["jsonDocument"]))


def _values(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _values(item)
    elif isinstance(value, list):
        for item in value:
            yield from _values(item)
    else:
        yield str(value)


def _source_problem(at: str, source: Any) -> str | None:
    if not isinstance(source, dict) or set(source) != {"type", "inlineDocumentSource"}:
        return f"Value at '{at}' failed to satisfy constraint: Member must have type and inlineDocumentSource"
    if source["type"] != "INLINE":
        return f"Value '{source['type']}' at '{at}.type' failed to satisfy constraint: [INLINE]"
    inline = source["inlineDocumentSource"]
    if not isinstance(inline, dict):
        return (
            f"Value at '{at}.inlineDocumentSource' failed to satisfy constraint: Member must be a structure"
        )
    kind = inline.get("type")
    if kind == "TEXT" and set(inline) == {"type", "textDocument"}:
        document = inline["textDocument"]
        ok = isinstance(document, dict) and set(document) == {"text"} and isinstance(document["text"], str)
        return None if ok else f"Value at '{at}.inlineDocumentSource.textDocument' must have a text string"
    if kind == "JSON" and set(inline) == {"type", "jsonDocument"}:
        return None
    return (
        f"Value at '{at}.inlineDocumentSource' failed to satisfy constraint: [TEXT, JSON] with its document"
    )


def _query_problem(body: dict[str, Any]) -> str | None:
    queries = body.get("queries")
    if not isinstance(queries, list) or len(queries) != 1:
        return "Value at 'queries' failed to satisfy constraint: Member must have length equal to 1"
    query = queries[0]
    text_query = query.get("textQuery") if isinstance(query, dict) else None
    text = text_query.get("text") if isinstance(text_query, dict) else None
    shape_ok = isinstance(query, dict) and set(query) == {"type", "textQuery"} and query["type"] == "TEXT"
    if not shape_ok or not isinstance(text, str) or not text:
        return "Value at 'queries.1.member' failed to satisfy constraint: a TEXT query with textQuery.text"
    return None


def _configuration_problem(body: dict[str, Any]) -> str | None:
    config = body.get("rerankingConfiguration")
    if not isinstance(config, dict) or config.get("type") != "BEDROCK_RERANKING_MODEL":
        return (
            "Value at 'rerankingConfiguration.type' failed to satisfy constraint: [BEDROCK_RERANKING_MODEL]"
        )
    bedrock = config.get("bedrockRerankingConfiguration")
    if set(config) != {"type", "bedrockRerankingConfiguration"} or not isinstance(bedrock, dict):
        return "Value at 'rerankingConfiguration' failed to satisfy constraint: bedrockRerankingConfiguration"
    if set(bedrock) - {"modelConfiguration", "numberOfResults"}:
        return "Unknown member in BedrockRerankingConfiguration"
    return _model_problem(bedrock) or _count_problem(bedrock)


def _model_problem(bedrock: dict[str, Any]) -> str | None:
    model = bedrock.get("modelConfiguration")
    if not isinstance(model, dict) or set(model) - {"modelArn", "additionalModelRequestFields"}:
        return "Value at 'modelConfiguration' failed to satisfy constraint: Member must not be null"
    if not isinstance(model.get("modelArn"), str) or not MODEL_ARN.fullmatch(model["modelArn"]):
        return f"Value '{model.get('modelArn')}' at 'modelArn' failed to satisfy constraint: pattern"
    return None


def _count_problem(bedrock: dict[str, Any]) -> str | None:
    count = bedrock.get("numberOfResults")
    if count is not None and (type(count) is not int or not 1 <= count <= MAX_SOURCES):
        return f"Value '{count}' at 'numberOfResults' failed to satisfy constraint: range 1-1000"
    return None


def _sources_problem(body: dict[str, Any]) -> str | None:
    sources = body["sources"]
    return next((p for i, s in enumerate(sources) if (p := _source_problem(f"sources.{i + 1}", s))), None)


PAGE = "page-after-"
"""How this server's (opaque) ``nextToken`` begins."""

RULES = (
    known_fields(
        {"queries", "rerankingConfiguration", "sources", "nextToken"},
        "Unknown member '{name}' in RerankRequest",
    ),
    _query_problem,
    _configuration_problem,
    listed(
        "sources",
        "Value at 'sources' failed to satisfy constraint: Member must have length between 1 and 1000",
        1,
        MAX_SOURCES,
    ),
    _sources_problem,
)


def problem(body: Any) -> str | None:
    """The ValidationException message for a body, or None."""
    return first_problem(body, "Start of structure or map found where not expected.", RULES)


class BedrockServer(WireServer):
    request_id_header = "x-amzn-RequestId"

    def __init__(
        self,
        access_key: str = "AKIDTESTBEDROCK",
        secret_key: str = "test-secret-key",
        session_token: str | None = None,
        region: str = "us-west-2",
        page_size: int | None = None,
    ) -> None:
        super().__init__()
        self.credentials = ReadOnlyCredentials(access_key, secret_key, session_token)
        self.region = region
        self.page_size = page_size
        """Results per answer; more come with a ``nextToken`` the next request must send back."""

    def error_body(self, status: int, message: str) -> Any:
        return {"message": message}

    def _error(self, status: int, message: str, kind: str | None = None) -> Reply:
        kind = kind or ERROR_TYPES.get(status, "InternalServerException")
        headers = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
        return status, headers, self.error_body(status, message)

    def signature_problem(self, record: Recorded) -> tuple[str, str] | None:
        """(error type, message) when the request is not validly signed for this server."""
        found = AUTHORIZATION.fullmatch(record.headers.get("authorization", ""))
        if found is None:
            return "IncompleteSignatureException", "Authorization header requires a valid SigV4 value"
        if found["key"] != self.credentials.access_key:
            return "UnrecognizedClientException", "The security token included in the request is invalid."
        stamp, signed = record.headers.get("x-amz-date", ""), found["signed"].split(";")
        if not {"host", "x-amz-date"} <= set(signed) or not stamp.startswith(found["date"]):
            return "IncompleteSignatureException", "host and x-amz-date must be signed, on the scope's date"
        if (found["region"], found["service"]) != (self.region, "bedrock"):
            return "InvalidSignatureException", f"Credential should be scoped to {self.region}/bedrock"
        when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
        if abs((datetime.datetime.now(datetime.UTC) - when).total_seconds()) > 300:
            return "InvalidSignatureException", f"Signature expired: {stamp} is outside the 5 minute window"
        if record.headers.get("x-amz-security-token") != self.credentials.token:
            return "UnrecognizedClientException", "The security token included in the request is invalid."
        headers = {name: record.headers[name] for name in signed if name in record.headers}
        request = AWSRequest(
            record.method, f"http://{record.headers['host']}{record.path}", headers, record.raw
        )
        request.context["timestamp"] = stamp
        signer = SigV4Auth(self.credentials, "bedrock", self.region)
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        if expected != found["signature"]:
            return "InvalidSignatureException", (
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method."
            )
        return None

    def answer(self, record: Recorded) -> Reply:
        if record.method != "POST" or record.path != "/rerank":
            return self._error(404, "The requested resource does not exist", "UnknownOperationException")
        if denied := self.signature_problem(record):
            return self._error(403, denied[1], denied[0])
        body = record.body
        if message := problem(body):
            return self._error(400, message)
        sources = body["sources"]
        texts = [source_text(s) for s in sources]
        top = body["rerankingConfiguration"]["bedrockRerankingConfiguration"].get("numberOfResults")
        query = body["queries"][0]["textQuery"]["text"]
        results = [{"index": i, "relevanceScore": s} for i, s in ranked(query, texts, top)]
        return self._page(results, body.get("nextToken"))

    def _page(self, results: list[dict[str, Any]], token: Any) -> Reply:
        start = 0
        if token is not None:
            if not isinstance(token, str) or not token.startswith(PAGE) or not token[len(PAGE) :].isdigit():
                return self._error(400, "Invalid nextToken")
            start = int(token[len(PAGE) :])
        end = len(results) if self.page_size is None else start + self.page_size
        answer: dict[str, Any] = {"results": results[start:end]}
        if end < len(results):
            answer["nextToken"] = f"{PAGE}{end}"
        return 200, {}, answer

    def query_of(self, body: Any) -> str | None:
        try:
            return str(body["queries"][0]["textQuery"]["text"])
        except (KeyError, IndexError, TypeError):
            return None
