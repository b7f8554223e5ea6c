"""A real HTTP server on 127.0.0.1 for speaking a provider's wire format in tests.

Every fake provider (``tests/servers/<provider>.py``) is a :class:`WireServer`: it implements
:meth:`WireServer.answer` (the provider's routes, auth and body checks, scoring) and, when
some answers must come before any injected fault, :meth:`WireServer.refuse`.  This base
records every request (its JSON body parsed on arrival, so in-flight requests are
countable), injects faults (per request with ``fail_next``, or for the first attempts at
one query with ``fail_query``) and adds a request-id header.  Scores come from
:func:`score`, the fraction of the query's words found in a text, so every ranking is
predictable.
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
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, cast

Reply = tuple[int, dict[str, str], Any]
"""(status, extra headers, JSON body)."""


@dataclass(frozen=True)
class Fault:
    """An answer to give instead of the real one (``status`` None: answer normally, after ``delay``)."""

    status: int | None = None
    retry_after: str | None = None
    retry_after_date_in: float | None = None
    """Send ``Retry-After`` as an HTTP date this many seconds from now."""
    delay: float = 0.0
    body: Any = None
    """The error body (the provider's envelope); default ``{"message": "injected failure"}``."""


def rate_limited(retry_after: str | None = "0", body: Any = None) -> Fault:
    return Fault(429, retry_after, body=body)


def unavailable(retry_after: str | None = None, body: Any = None) -> Fault:
    return Fault(503, retry_after, body=body)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any = None
    status: int = 0
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    response_id: str | None = None
    """The ``id`` of the JSON object answered, when it has one."""


def parsed(raw: bytes) -> Any:
    """A request's JSON body, or None when it is empty or not JSON."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def score(query: str, text: str) -> float:
    """The fraction of the query's distinct words that occur in the text, in [0, 1]."""
    wanted = words(query)
    return len(wanted & words(text)) / len(wanted) if wanted else 0.0


def ranked(query: str, texts: list[str], top_n: int | None = None) -> list[tuple[int, float]]:
    """(index, score) pairs, best first (ties by index), cut to ``top_n``."""
    order = sorted(((-score(query, t), i) for i, t in enumerate(texts)))
    return [(i, -s) for s, i in order[: top_n or len(texts)]]


def results(
    query: str, texts: list[str], top_n: int | None = None, returned: list[Any] | None = None
) -> list[dict[str, Any]]:
    """``[{index, relevance_score, document?}]`` best first and cut to ``top_n``: the result
    shape most rerank APIs share (``returned[index]`` as each ``document``, when given)."""
    found: list[dict[str, Any]] = []
    for index, value in ranked(query, texts, top_n):
        item: dict[str, Any] = {"index": index, "relevance_score": value}
        if returned is not None:
            item["document"] = returned[index]
        found.append(item)
    return found


class WireServer:
    request_id_header = "x-request-id"

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._next: deque[Fault] = deque()
        self._by_query: dict[str, list[Fault]] = {}
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._http: _HTTPServer | None = None

    # -- what a provider's server defines -------------------------------------------------
    def answer(self, record: Recorded) -> Reply:
        raise NotImplementedError

    def refuse(self, record: Recorded) -> Reply | None:
        """An answer that comes before any injected fault (a wrong route or key, say), or None."""
        return None

    def query_of(self, body: Any) -> str | None:
        """The query a request is about (for ``fail_query``)."""
        return str(body.get("query")) if isinstance(body, dict) else None

    def error_body(self, status: int, message: str) -> Any:
        return {"message": message}

    # -- shared machinery ------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._http is not None, "server not started"
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def fail_next(self, *faults: Fault) -> None:
        with self._lock:
            self._next.extend(faults)

    def fail_query(self, query: str, *faults: Fault) -> None:
        with self._lock:
            self._by_query[query] = list(faults)

    def _fault_for(self, body: Any) -> Fault | None:
        with self._lock:
            if self._next:
                return self._next.popleft()
            query = self.query_of(body)
            plan = self._by_query.get(query or "", [])
            if query is not None and self._seen[query] < len(plan):
                self._seen[query] += 1
                return plan[self._seen[query] - 1]
        return None

    def handle(self, record: Recorded) -> Reply:
        if (refused := self.refuse(record)) is not None:
            return refused
        fault = self._fault_for(record.body)
        if fault is not None:
            time.sleep(fault.delay)
            if fault.status is not None:
                headers = {"retry-after": fault.retry_after} if fault.retry_after is not None else {}
                if fault.retry_after_date_in is not None:
                    when = time.time() + fault.retry_after_date_in
                    headers["retry-after"] = email.utils.formatdate(when, usegmt=True)
                body = (
                    fault.body
                    if fault.body is not None
                    else self.error_body(fault.status, "injected failure")
                )
                return fault.status, headers, body
        return self.answer(record)

    def start(self) -> Self:
        self._http = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._http.app = self
        threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    app: WireServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        app = cast(_HTTPServer, self.server).app
        headers = {name.lower(): value for name, value in self.headers.items()}
        record = Recorded(self.command, self.path, headers, raw, parsed(raw))
        with app._lock:
            app.requests.append(record)
        record.status, extra, payload = app.handle(record)
        if isinstance(payload, dict) and isinstance(payload.get("id"), str):
            record.response_id = payload["id"]
        data = json.dumps(payload).encode()
        self.send_response(record.status)
        for name, value in {app.request_id_header: record.request_id, **extra}.items():
            self.send_header(name, value)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(ConnectionError):  # the client gave up (a timeout test)
            self.wfile.write(data)

    do_POST = do_GET = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass
