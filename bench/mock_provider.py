"""A local mock rerank provider speaking Cohere's v2 wire format, with a STRICT rate limit.

    python bench/mock_provider.py --port 8081 --rps 20 --latency-ms 30 \\
        --fail-503 0.2 --fail-429 0.05 --stats stats.json

``POST /v2/rerank`` (Bearer auth) answers ``{id, results[{index, relevance_score}], meta}``
(scores: the fraction of the query's words found in each document; with ``--scores position``
1, 1/2, 1/3, ... by document index, precomputed per document count, which costs the mock
almost nothing).  ``GET /stats`` answers
the counters as JSON (``?events=1`` adds every request's arrival time and status), and
``--stats FILE`` writes the same JSON when the process exits (SIGTERM or SIGINT).  With
``--port 0`` a free port is taken; either way the process prints one line,
``mock-provider listening on http://127.0.0.1:PORT``, once it accepts connections.

The rate limit is a GCRA (the exact form of a token bucket) at ``--rps`` requests per
second with a burst of ``--burst`` requests (default 2): the request that would exceed it
is answered 429 at once, with ``Retry-After`` in whole seconds (the wait rounded up, at
least 1), and counted as a violation.  Each request is timed when it has been read
completely.  In order, a request meets: ``--down`` (503 to everything, at once), the API
key (401), the body check (400), the rate limit (429, a violation), then the injected
failures: a ``--fail-503`` fraction of 503s (after the latency, like an upstream that
gave up) and a ``--fail-429`` fraction of 429s with ``Retry-After: --retry-after`` (at
once; they are not limit violations, but they use up their token like any admitted
request).  Everything else is ranked after ``--latency-ms``.

In a thread of another program::

    mock = MockProvider(MockConfig(rps=20, latency_ms=30)).start_in_thread()
    ... mock.base_url ... mock.stats() ...
    mock.stop()

One event loop (uvloop where it is installed) serves every connection (HTTP/1.1 keep-alive,
``Content-Length`` bodies) through a plain ``asyncio.Protocol``; the latency is a timer, so slow
answers never hold up other requests.  The mock must never be what limits a benchmark:
``python -m bench.perf`` prints its CPU per line next to the workers' and Redis's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import math
import random
import re
import signal
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import orjson

from jobs import event_loop

MAX_BODY = 64 * 2**20
MAX_DOCUMENTS = 10_000
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    429: "Too Many Requests",
    503: "Service Unavailable",
}
Reply = tuple[int, dict[str, str], dict[str, Any]]
META = {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}


@dataclass(frozen=True)
class MockConfig:
    rps: float = 0.0
    """Requests per second the provider allows (0: no limit)."""
    burst: float = 2.0
    """Requests that may arrive at once (GCRA tolerance: (burst - 1) / rps seconds)."""
    latency_ms: float = 0.0
    fail_503: float = 0.0
    """Fraction of admitted requests answered 503 (after the latency)."""
    fail_429: float = 0.0
    """Fraction of admitted requests answered 429 with ``Retry-After`` (not violations)."""
    retry_after: int = 1
    """``Retry-After`` seconds on injected 429s and 503s."""
    down: bool = False
    """Answer every rerank request 503 at once."""
    api_key: str = "mock-key"
    seed: int | None = None
    scores: str = "words"
    """``words``: the fraction of the query's words in each document; ``position``: 1, 1/2, 1/3,
    ... by document index, the results precomputed per document count (no text is read)."""


class Gcra:
    """Generic cell rate algorithm: ``admit`` returns 0 when the request conforms (and
    counts it), else the seconds until it would conform."""

    def __init__(self, rps: float, burst: float) -> None:
        self.interval = 1.0 / rps
        self.tolerance = max(burst - 1.0, 0.0) * self.interval
        self.tat = -math.inf

    def admit(self, now: float) -> float:
        tat = max(self.tat, now)
        allowed_at = tat - self.tolerance
        if now < allowed_at:
            return allowed_at - now
        self.tat = tat + self.interval
        return 0.0


@dataclass
class Stats:
    requests: int = 0
    """Every ``POST /v2/rerank``, whatever its answer."""
    ok_2xx: int = 0
    violations_429: int = 0
    """Requests over the rate limit (answered 429)."""
    injected_429: int = 0
    injected_503: int = 0
    down_503: int = 0
    unauthorized_401: int = 0
    bad_request_400: int = 0
    first_request: float | None = None
    """Unix time the first request was read (``time.time()``, comparable across processes)."""
    last_request: float | None = None
    first_2xx: float | None = None
    last_2xx: float | None = None
    events: list[tuple[float, int]] = field(default_factory=list)
    """(unix time read, status answered) for every rerank request, in arrival order."""

    def to_json(self, *, events: bool = False) -> dict[str, Any]:
        data = asdict(self)
        data["events"] = [list(event) for event in self.events] if events else None
        if not events:
            del data["events"]
        return data


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def rank(body: dict[str, Any]) -> dict[str, Any]:
    wanted = words(body["query"])
    scored = sorted(
        (-(len(wanted & words(doc)) / len(wanted) if wanted else 0.0), index)
        for index, doc in enumerate(body["documents"])
    )
    top_n = body.get("top_n") or len(scored)
    results = [{"index": index, "relevance_score": -negated} for negated, index in scored[:top_n]]
    return {"id": str(uuid.uuid4()), "results": results, "meta": META}


@functools.cache
def _by_position(count: int, top_n: int) -> list[dict[str, Any]]:
    return [{"index": index, "relevance_score": 1 / (index + 1)} for index in range(min(count, top_n))]


def rank_by_position(body: dict[str, Any]) -> dict[str, Any]:
    """Scores 1, 1/2, 1/3, ... by document index: a real answer that costs the mock almost
    nothing (``words`` reads every document: ~0.2 ms for 20 documents of 200 characters)."""
    count = len(body["documents"])
    results = _by_position(count, body.get("top_n") or count)
    return {"id": str(uuid.uuid4()), "results": results, "meta": META}


RANKERS = {"words": rank, "position": rank_by_position}


def check_body(body: Any) -> str | None:
    """Cohere v2's 400 message for a bad body, or None."""
    if not isinstance(body, dict):
        return "invalid request: body must be a JSON object"
    if not isinstance(body.get("model"), str):
        return "invalid request: model must be specified"
    if not isinstance(body.get("query"), str) or not body["query"].strip():
        return "invalid request: query must be a non-empty string"
    documents = body.get("documents")
    if not isinstance(documents, list) or not 1 <= len(documents) <= MAX_DOCUMENTS:
        return f"invalid request: documents must be a list of 1 to {MAX_DOCUMENTS} items"
    if not all(isinstance(d, str) for d in documents):
        return "invalid request: documents must be a list of strings"
    top_n = body.get("top_n")
    if top_n is not None and (type(top_n) is not int or top_n < 1):
        return "invalid request: top_n must be a positive integer"
    return None


class MockProvider:
    def __init__(self, config: MockConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.counters = Stats()
        self.limiter = Gcra(config.rps, config.burst) if config.rps > 0 else None
        self.random = random.Random(config.seed)
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stats(self, *, events: bool = False) -> dict[str, Any]:
        data = self.counters.to_json(events=events)
        data["config"] = {k: v for k, v in asdict(self.config).items() if k != "api_key"}
        return data

    # -- serving -------------------------------------------------------------------------

    async def start(self) -> MockProvider:
        """Listen in the running loop (``self.port`` is the real port afterwards)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Connection(self), self.host, self.port, backlog=512)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._loop = loop
        self._stopped = asyncio.Event()
        return self

    async def serve_until_stopped(self) -> None:
        assert self._stopped is not None, "not started"
        await self._stopped.wait()
        await self.close()

    def request_stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    def start_in_thread(self) -> MockProvider:
        """Serve from a daemon thread with its own loop; returns once it accepts connections."""
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            try:
                await self.start()
            except BaseException as exc:
                failure.append(exc)
                raise
            finally:
                ready.set()
            await self.serve_until_stopped()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop a server started with ``start_in_thread``."""
        if self._loop is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self.request_stop)
            self._thread.join(10)
            self._thread = None

    # -- HTTP/1.1 ------------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[Reply, float]:
        """The reply to one request and the seconds to hold it back (the latency)."""
        url = urlsplit(target)
        if url.path == "/v2/rerank":
            if method != "POST":
                return (405, {}, {"message": "method not allowed"}), 0.0
            return self._rerank(headers, body)
        if url.path == "/stats":
            events = parse_qs(url.query).get("events", ["0"])[0] not in ("", "0", "false")
            return (200, {}, self.stats(events=events)), 0.0
        return (404, {}, {"message": f"no route for {method} {url.path}"}), 0.0

    # -- the provider --------------------------------------------------------------------

    def _rerank(self, headers: dict[str, str], raw: bytes) -> tuple[Reply, float]:
        now, clock = time.time(), time.monotonic()
        config, stats = self.config, self.counters
        stats.requests += 1
        if stats.first_request is None:
            stats.first_request = now
        stats.last_request = now
        status, extra, payload = self._answer(headers, raw, clock)
        stats.events.append((now, status))
        if status == 200:
            stats.ok_2xx += 1
            stats.first_2xx = stats.first_2xx or now
            stats.last_2xx = now
        delayed = config.latency_ms > 0 and status in (200, 503) and not config.down
        return (status, extra, payload), config.latency_ms / 1000 if delayed else 0.0

    def _answer(self, headers: dict[str, str], raw: bytes, clock: float) -> Reply:
        config, stats = self.config, self.counters
        if config.down:
            stats.down_503 += 1
            return 503, {}, {"message": "service unavailable (down)"}
        if headers.get("authorization") != f"Bearer {config.api_key}":
            stats.unauthorized_401 += 1
            return 401, {}, {"message": "invalid api token"}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if problem := check_body(body):
            stats.bad_request_400 += 1
            return 400, {}, {"message": problem}
        if self.limiter is not None and (wait := self.limiter.admit(clock)) > 0:
            stats.violations_429 += 1
            retry_after = max(1, math.ceil(wait))
            message = f"rate limit of {config.rps:g} requests/s exceeded; retry in {wait:.3f}s"
            return 429, {"retry-after": str(retry_after)}, {"message": message}
        roll = self.random.random()
        if roll < config.fail_503:
            stats.injected_503 += 1
            return 503, {}, {"message": "injected failure: service unavailable"}
        if roll < config.fail_503 + config.fail_429:
            stats.injected_429 += 1
            injected = {"retry-after": str(config.retry_after)}
            return 429, injected, {"message": "injected failure: too many requests"}
        return 200, {}, RANKERS[config.scores](body)


def response(status: int, extra: dict[str, str], payload: dict[str, Any], keep_alive: bool) -> bytes:
    data = orjson.dumps(payload)
    head = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}",
        "content-type: application/json",
        f"content-length: {len(data)}",
        f"x-request-id: {uuid.uuid4().hex}",
        f"connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{name}: {value}" for name, value in extra.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data


class Connection(asyncio.Protocol):
    """One client connection: requests are read from a buffer and answered one at a time, in
    order (a plain protocol, no stream reader or task per request: the mock's own CPU per
    request must stay small next to the clients it serves); a delayed answer is a timer."""

    def __init__(self, mock: MockProvider) -> None:
        self.mock = mock
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiting = False
        """An answer is being held back (the latency); later requests wait in the buffer."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.waiting:
            self._serve()

    def _serve(self) -> None:
        while self.transport is not None and not self.waiting:
            request = self._next_request()
            if request is None:
                return
            reply, delay = request
            if delay > 0:
                self.waiting = True
                asyncio.get_running_loop().call_later(delay, self._send_later, *reply)
            else:
                self._send(*reply)

    def _next_request(self) -> tuple[tuple[int, dict[str, str], dict[str, Any], bool], float] | None:
        """The next complete request's reply (with keep-alive) and delay, or None to read more."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > 2**16:
                self._fail(400, "request head too large")
            return None
        try:
            request_line, *lines = self.buffer[:end].decode("latin-1").split("\r\n")
            method, target, version = request_line.split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
        except ValueError:
            self._fail(400, "malformed request")
            return None
        if "transfer-encoding" in headers:
            self._fail(411, "send a Content-Length body")
            return None
        if length > MAX_BODY:
            self._fail(413, "body too large")
            return None
        if len(self.buffer) < end + 4 + length:
            return None
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        keep_alive = version.strip() == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        (status, extra, payload), delay = self.mock.answer(method, target, headers, body)
        return (status, extra, payload, keep_alive), delay

    def _fail(self, status: int, message: str) -> None:
        self._send(status, {}, {"message": message}, False)

    def _send_later(
        self, status: int, extra: dict[str, str], payload: dict[str, Any], keep_alive: bool
    ) -> None:
        self.waiting = False
        self._send(status, extra, payload, keep_alive)
        self._serve()

    def _send(self, status: int, extra: dict[str, str], payload: dict[str, Any], keep_alive: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(response(status, extra, payload, keep_alive))
        if not keep_alive:
            self.transport.close()
            self.transport = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/mock_provider.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--rps", type=float, default=0.0, help="rate limit, requests/s (0: none)")
    parser.add_argument("--burst", type=float, default=2.0, help="requests allowed at once (default 2)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="answer time of 200s and 503s")
    parser.add_argument("--fail-503", type=float, default=0.0, help="fraction of admitted requests -> 503")
    parser.add_argument("--fail-429", type=float, default=0.0, help="fraction -> 429 with Retry-After")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After of injected 429s (s)")
    parser.add_argument("--down", action="store_true", help="answer every rerank request 503")
    parser.add_argument("--api-key", default="mock-key", help="the Bearer token to accept")
    parser.add_argument("--seed", type=int, help="seed for the injected failures")
    parser.add_argument("--scores", choices=sorted(RANKERS), default="words",
                        help="words: share of the query's words in each document (default); "
                        "position: 1, 1/2, 1/3, ... by index, precomputed (a cheaper mock)")  # fmt: skip
    parser.add_argument("--stats", type=Path, help="write the stats (with events) here at exit")
    args = parser.parse_args(argv)
    for name in ("fail_503", "fail_429"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            parser.error(f"--{name.replace('_', '-')} must be a fraction in [0, 1]")
    if args.fail_503 + args.fail_429 > 1.0:
        parser.error("--fail-503 + --fail-429 must not exceed 1")
    if args.rps < 0 or args.burst < 1:
        parser.error("--rps must be >= 0 and --burst >= 1")
    return args


async def serve(args: argparse.Namespace) -> MockProvider:
    config = MockConfig(
        rps=args.rps,
        burst=args.burst,
        latency_ms=args.latency_ms,
        fail_503=args.fail_503,
        fail_429=args.fail_429,
        retry_after=args.retry_after,
        down=args.down,
        api_key=args.api_key,
        seed=args.seed,
        scores=args.scores,
    )
    mock = await MockProvider(config, args.host, args.port).start()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, mock.request_stop)
    print(f"mock-provider listening on {mock.base_url}", flush=True)
    await mock.serve_until_stopped()
    return mock


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mock = event_loop.run(serve(args), event_loop.default_event_loop())
    if args.stats:
        args.stats.write_bytes(orjson.dumps(mock.stats(events=True)) + b"\n")
    summary = {k: v for k, v in mock.stats().items() if k != "config"}
    print(f"mock-provider stopped: {orjson.dumps(summary).decode()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
