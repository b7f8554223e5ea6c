"""A provider that echoes the key: through enqueue, a real worker process and the export, the
key reaches neither Redis, nor the errors file, nor the worker's log."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import redis as sync_redis

from tests.support import read_jsonl, run_script, write_dataset

KEY = "sk-e2e-Zq8x3kTrLm0"
FRAGMENT = "Zq8x3kTr"
"""What must not appear anywhere, in any encoding."""


class EchoHandler(BaseHTTPRequestHandler):
    """Answers each query with a different fault, each repeating the Authorization header."""

    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        auth = self.headers.get("authorization", "")
        self.seen.append(auth)
        said = f"invalid api key {KEY}; you sent Authorization: {auth}"
        status, payload = {
            "unauthorized": (401, json.dumps({"message": said, "headers": {"authorization": auth}})),
            "lying": (200, json.dumps({"results": [{"index": "0", "relevance_score": auth}]})),
            "broken": (500, f"upstream failed for {auth} (key {KEY})"),
        }[body["query"]]
        data = payload.encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", f"req-{body['query']}")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def redis_contents(url: str) -> str:
    client = sync_redis.Redis.from_url(url, decode_responses=True)
    dumped = []
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == "string":
            dumped.append(repr(client.get(key)))
        elif kind == "hash":
            dumped.append(repr(client.hgetall(key)))
        elif kind == "zset":
            dumped.append(repr(client.zrange(key, 0, -1)))
        elif kind == "list":
            dumped.append(repr(client.lrange(key, 0, -1)))
        elif kind == "set":
            dumped.append(repr(client.smembers(key)))
    client.close()
    return "\n".join(dumped)


def test_an_echoed_key_is_never_stored_exported_or_logged(
    redis_url: str, echo_server: str, tmp_path: Path
) -> None:
    lines = [
        {"id": name, "query": name, "documents": ["a", "b"], "model": "cohere/rerank-v3.5"}
        for name in ("unauthorized", "lying", "broken")
    ]
    dataset = write_dataset(tmp_path / "echo.jsonl", lines)
    env = {
        "REDIS_URL": redis_url,
        "COHERE_API_KEY": KEY,
        "COHERE_API_BASE": echo_server,
        "RR_RETRY_ATTEMPTS": "1",
    }
    enqueued = run_script("enqueue.py", str(dataset), "--batch", "echo", "--no-progress", env=env)
    assert enqueued.returncode == 0, enqueued.stderr
    worker = run_script("worker.py", "--burst", "-v", env=env)
    assert worker.returncode == 0, worker.stderr
    errors_path = tmp_path / "errors.jsonl"
    exported = run_script(
        "batch.py",
        "results",
        "echo",
        "--output",
        str(tmp_path / "out.jsonl"),
        "--errors",
        str(errors_path),
        env=env,
    )
    assert exported.returncode == 0, exported.stderr

    assert f"Bearer {KEY}" in EchoHandler.seen  # the provider did echo the real key
    errors = {e["id"]: e["error"] for e in read_jsonl(errors_path)}
    assert {i: (e["code"], e["request_id"]) for i, e in errors.items()} == {
        "unauthorized": ("authentication", "req-unauthorized"),
        "lying": ("bad_response", "req-lying"),
        "broken": ("server_error", "req-broken"),
    }
    assert all("[REDACTED]" in e["message"] + e.get("body_excerpt", "") for e in errors.values())
    assert "failed" in worker.stderr  # the failures were logged, scrubbed
    for where, text in [
        ("errors export", errors_path.read_text()),
        ("worker log", worker.stdout + worker.stderr),
        ("redis", redis_contents(redis_url)),
        ("enqueue output", enqueued.stdout + enqueued.stderr + exported.stdout + exported.stderr),
    ]:
        assert FRAGMENT not in text, where
