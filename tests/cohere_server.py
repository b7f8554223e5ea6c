"""A local stand-in for Cohere's rerank API (v1 and v2 wire formats) on a real socket.

Scores are the fraction of the query's words found in a document, so every
ranking is predictable.  Failures are injected per request (``fail_next``) or
for the first attempts of one query (``fail_query``), and every request is recorded.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

Reply = tuple[int, dict[str, str], dict[str, Any]]
V2_FIELDS = {"model", "query", "documents", "top_n", "max_tokens_per_doc", "priority"}
V1_FIELDS = {"model", "query", "documents", "top_n", "rank_fields", "return_documents", "max_chunks_per_doc"}


@dataclass(frozen=True)
class Fault:
    """An answer to give instead of a ranking (``status`` None: rank normally, after ``delay``)."""

    status: int | None = None
    retry_after: str | None = None
    retry_after_date_in: float | None = None
    """Send ``Retry-After`` as an HTTP date this many seconds from now."""
    delay: float = 0.0
    message: str = "injected failure"


def rate_limited(retry_after: str | None = "0") -> Fault:
    return Fault(429, retry_after, message="You are past the per minute request limit, please wait")


def unavailable(retry_after: str | None = None) -> Fault:
    return Fault(503, retry_after, message="service unavailable")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 0
    request_id: str = ""
    response_id: str | None = None


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def score(query: str, text: str) -> float:
    """The fraction of the query's distinct words that occur in the text, in [0, 1]."""
    wanted = words(query)
    return len(wanted & words(text)) / len(wanted) if wanted else 0.0


def v1_text(document: str | dict[str, Any], rank_fields: list[str] | None) -> str:
    """What Cohere v1 ranks on: a string, or the object's ``rank_fields`` (default ``text``)."""
    if isinstance(document, str):
        return document
    return " ".join(str(document[name]) for name in rank_fields or ["text"])


def _check(body: dict[str, Any], version: int) -> str | None:
    """Cohere's 400 message for a bad body, or None."""
    allowed = V2_FIELDS if version == 2 else V1_FIELDS
    if unknown := sorted(set(body) - allowed):
        return f"invalid request: unknown field: parameter {unknown[0]} is not a valid field"
    if version == 2 and not isinstance(body.get("model"), str):
        return "invalid request: model must be specified"
    if not isinstance(body.get("query"), str) or not body["query"].strip():
        return "invalid request: query must be a non-empty string"
    documents = body.get("documents")
    if not isinstance(documents, list) or not 1 <= len(documents) <= 10_000:
        return "invalid request: documents must be a list of 1 to 10000 items"
    for name in ("top_n", "max_tokens_per_doc", "max_chunks_per_doc", "priority"):
        value = body.get(name)
        if value is not None and (type(value) is not int or value < (name != "priority")):
            return f"invalid request: {name} must be a positive integer"
    if version == 2:
        if not all(isinstance(d, str) for d in documents):
            return "invalid request: documents must be a list of strings"
        return None
    fields = body.get("rank_fields") or ["text"]
    for i, doc in enumerate(documents):
        if not isinstance(doc, str | dict):
            return f"invalid request: document {i} must be a string or an object"
        if isinstance(doc, dict) and any(not isinstance(doc.get(f), str) for f in fields):
            return f"invalid request: document {i} is missing a string for rank fields {fields}"
    if len(documents) * int(body.get("max_chunks_per_doc") or 10) > 10_000:
        return "invalid request: total number of chunks (documents * max_chunks_per_doc) exceeds 10000"
    return None


class CohereServer:
    def __init__(self, api_key: str = "test-cohere-key") -> None:
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self._next: deque[Fault] = deque()
        self._by_query: dict[str, list[Fault]] = {}
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._http: _HTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._http is not None, "server not started"
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def fail_next(self, *faults: Fault) -> None:
        """Answer the next requests (whatever they ask) with these faults, in order."""
        with self._lock:
            self._next.extend(faults)

    def fail_query(self, query: str, *faults: Fault) -> None:
        """Answer the first ``len(faults)`` authorised requests for ``query`` with these faults."""
        with self._lock:
            self._by_query[query] = list(faults)

    def reply(self, record: Recorded, raw: bytes) -> Reply:
        version = {"/v1/rerank": 1, "/v2/rerank": 2}.get(record.path.split("?")[0])
        if version is None:
            return 404, {}, {"message": f"no route for {record.method} {record.path}"}
        if record.method != "POST":
            return 405, {}, {"message": "method not allowed"}
        try:
            body = record.body = json.loads(raw)
        except ValueError:
            body = None
        if record.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {}, {"message": "invalid api token"}
        if not isinstance(body, dict):
            return 400, {}, {"message": "invalid request: body must be a JSON object"}
        with self._lock:
            query, fault = str(body.get("query")), self._next.popleft() if self._next else None
            if fault is None and (plan := self._by_query.get(query, [])) and self._seen[query] < len(plan):
                fault = plan[self._seen[query]]
                self._seen[query] += 1
        if fault is not None:
            time.sleep(fault.delay)
            if fault.status is not None:
                headers = {"retry-after": fault.retry_after} if fault.retry_after is not None else {}
                if fault.retry_after_date_in is not None:
                    when = time.time() + fault.retry_after_date_in
                    headers["retry-after"] = email.utils.formatdate(when, usegmt=True)
                return fault.status, headers, {"message": fault.message}
        if problem := _check(body, version):
            return 400, {}, {"message": problem}
        return 200, {}, self.rank(body, version)

    def rank(self, body: dict[str, Any], version: int) -> dict[str, Any]:
        documents, fields = body["documents"], body.get("rank_fields")
        scored = sorted((-score(body["query"], v1_text(d, fields)), i) for i, d in enumerate(documents))
        results: list[dict[str, Any]] = []
        for negated, index in scored[: body.get("top_n") or len(documents)]:
            value = -negated
            result: dict[str, Any] = {"index": index, "relevance_score": value}
            if version == 1 and body.get("return_documents"):
                doc = documents[index]
                result["document"] = {"text": doc} if isinstance(doc, str) else doc
            results.append(result)
        meta = {"api_version": {"version": str(version)}, "billed_units": {"search_units": 1}}
        return {"id": str(uuid.uuid4()), "results": results, "meta": meta}

    def start(self) -> CohereServer:
        self._http = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._http.app = self
        threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    app: CohereServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        app = cast(_HTTPServer, self.server).app
        headers = {name.lower(): value for name, value in self.headers.items()}
        record = Recorded(self.command, self.path, headers, None, request_id=str(uuid.uuid4()))
        with app._lock:
            app.requests.append(record)
        record.status, extra, payload = app.reply(record, raw)
        record.response_id = payload.get("id")
        data = json.dumps(payload).encode()
        self.send_response(record.status)
        for name, value in {**extra, "x-request-id": record.request_id}.items():
            self.send_header(name, value)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(ConnectionError):  # the client gave up (a timeout test)
            self.wfile.write(data)

    do_POST = do_GET = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def cohere_server(api_key: str = "test-cohere-key") -> Iterator[CohereServer]:
    server = CohereServer(api_key).start()
    try:
        yield server
    finally:
        server.stop()
