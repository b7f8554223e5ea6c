"""Cohere end to end: enqueue.py -> Redis -> two worker.py processes -> the local Cohere wire server
-> batch.py status / results, with injected 429s and 503s."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from providers.render import document_text
from tests.adapter_kit import serving
from tests.process_tools import Workers, export_batch
from tests.ranking_lines import expected_results as ranked_as
from tests.servers.cohere import V2_FIELDS, CohereServer, v1_text
from tests.support import WORDS, run_script, wait_until, write_dataset
from tests.wire_server import Fault, rate_limited, unavailable

pytestmark = pytest.mark.integration

KEY = "e2e-cohere-key"
MODEL = "cohere/rerank-v3.5"
FINISH_TIMEOUT = 120.0


server = serving(lambda: CohereServer(KEY))


def word(n: int) -> str:
    return WORDS[n % len(WORDS)]


def main_lines(count: int) -> list[dict[str, Any]]:
    """Four shapes in turn: strings + top_n; objects with ids + rank_fields + return_documents;
    strings + return_documents + metadata; mixed objects (some without id) and strings."""
    lines: list[dict[str, Any]] = []
    for n in range(count):
        a, b, c = word(n), word(n * 7 + 3), word(n * 5 + 11)
        query = f"{a} {b} topic{n}"
        line: dict[str, Any] = {"id": f"line-{n}", "query": query, "model": MODEL}
        if n % 4 == 0:
            line |= {"documents": [f"{b} notes", f"{a} {b} topic{n}", f"{c} filler", f"{a} only", "nothing"]}
            line["top_n"] = 3
        elif n % 4 == 1:
            line["id"] = n  # an integer id must come back as an integer
            line["documents"] = [
                {"id": f"doc-{n}-{k}", "title": word(n + k), "body": f"{word(n * 7 + 3 + k)} text", "rank": k}
                for k in range(6)
            ]
            line |= {"rank_fields": ["title", "body"], "return_documents": True, "metadata": {"n": n}}
        elif n % 4 == 2:
            line["documents"] = [f"{a} {c}", f"{b} {c} topic{n}", c, f"{a} {b}"]
            line |= {"return_documents": True, "metadata": None if n % 8 == 2 else {"tags": [a, b], "n": n}}
        else:
            line["documents"] = [
                {"id": f"doc-{n}", "text": f"{a} {b}"},
                {"title": b, "text": c},
                f"plain {a}",
                {"id": f"doc-{n}-x", "summary": f"topic{n}", "year": 2000 + n},
            ]
            line |= {"top_n": 2, "max_tokens_per_doc": 256, "metadata": {"source": "mixed"}}
        lines.append(line)
    return lines


def faults_for(n: int) -> list[Fault]:
    if n % 10 == 1:
        return [rate_limited("0")]
    if n % 10 == 4:
        return [rate_limited("0"), unavailable("0")]
    if n % 50 == 7:
        return [Fault(429, retry_after_date_in=1)]  # Retry-After as an HTTP date
    if n % 50 == 8:
        return [unavailable()]  # no Retry-After: jittered backoff
    return []


def expected_results(line: dict[str, Any], version: int) -> list[dict[str, Any]]:
    """What the result record must hold, recomputed from the wire server's scoring."""
    docs, fields = line["documents"], line.get("rank_fields")
    return ranked_as(line, [document_text(d, fields) if version == 2 else v1_text(d, fields) for d in docs])


def worker_env(redis_url: str, base: str, key: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "COHERE_API_KEY": key,
        "COHERE_API_BASE": base,
        "RR_JOB_TIMEOUT": "45",
        "RR_HTTP_TIMEOUT": "15",  # generous: CI machines are noisy
        "RR_RETRY_MAX_SECONDS": "20",
        "RR_SHUTDOWN_GRACE": "2",
        # these tests check how each line's own parameters (top_n included) reach the wire;
        # the score cache would ask per-document scorers without top_n
        "RR_CACHE_TTL_DAYS": "0",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def batch_status(redis_url: str, batch: str) -> dict[str, Any] | None:
    done = run_script("batch.py", "--redis-url", redis_url, "status", batch, "--json", env={}, timeout=60)
    return json.loads(done.stdout) if done.returncode == 0 else None


def run_batch(
    *, lines: list[dict[str, Any]], batch: str, base: str, key: str,
    redis_url: str, workers: Workers, tmp_path: Path,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:  # fmt: skip
    """Enqueue with --redis-url, run two worker processes, wait for the batch, export it."""
    dataset = write_dataset(tmp_path / f"{batch}.jsonl", lines)
    for _ in range(2):
        workers.start(worker_env(redis_url, base, key))
    enqueued = run_script(
        "enqueue.py", str(dataset), "--redis-url", redis_url, "--batch", batch, "--no-progress",
        "--rejects", str(tmp_path / "rejects.jsonl"), env={}, timeout=120,
    )  # fmt: skip
    assert enqueued.returncode == 0, enqueued.stdout + enqueued.stderr
    assert f"enqueued {len(lines)} new lines" in enqueued.stdout
    assert f"python batch.py status {batch}" in enqueued.stdout  # no --wait: it hands over to the workers

    final: dict[str, Any] = {}

    def finished() -> bool:
        status = batch_status(redis_url, batch)
        final.update(status or {})
        return bool(status and status["finished"])

    try:
        wait_until(finished, FINISH_TIMEOUT, f"batch {batch} to finish")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last status {final}\nworker logs:\n{workers.logs()[-5000:]}") from exc
    assert all(p.poll() is None for p in workers.processes), workers.logs()[-5000:]

    results, errors, _ = export_batch(redis_url, batch, tmp_path)
    return results, errors, final


def test_cohere_batch_end_to_end_with_rate_limits(
    server: CohereServer, redis_url: str, workers: Workers, tmp_path: Path
) -> None:
    lines = main_lines(220)
    plans = {line["query"]: faults_for(n) for n, line in enumerate(lines)}
    for query, plan in plans.items():
        if plan:
            server.fail_query(query, *plan)

    results, errors, status = run_batch(
        lines=lines, batch="cohere-e2e", base=server.base_url, key=KEY,
        redis_url=redis_url, workers=workers, tmp_path=tmp_path,
    )  # fmt: skip

    assert errors == []
    assert (status["total"], status["succeeded"], status["failed"], status["pending"]) == (220, 220, 0, 0)
    assert [r["id"] for r in results] == [
        line["id"] for line in lines
    ]  # one each, dataset order, id type kept
    answered = {r.request_id: r for r in server.requests if r.status == 200}
    for n, (line, record) in enumerate(zip(lines, results, strict=True)):
        where = f"line {n + 1} ({line['id']!r})"
        assert (record["line"], record["model"]) == (n + 1, MODEL), where
        assert record["results"] == expected_results(line, 2), where
        scores = [item["relevance_score"] for item in record["results"]]
        assert scores == sorted(scores, reverse=True), where
        assert all(0.0 <= s <= 1.0 for s in scores), where
        assert len(scores) == min(line.get("top_n") or 99, len(line["documents"])), where
        if "metadata" in line:
            assert record["metadata"] == line["metadata"], where
        else:
            assert "metadata" not in record, where
        assert record["usage"] == {"billed_units": {"search_units": 1}}, where
        assert record["attempts"] == len(plans[line["query"]]) + 1, where
        assert record["job_try"] == 1, where
        seen = answered[record["request_id"]]  # the request id is the one the server sent on success
        assert record["response_id"] == seen.response_id, where
        assert seen.body["query"] == line["query"], where
    assert sum(r["attempts"] > 1 for r in results) == sum(bool(p) for p in plans.values()) > 40
    assert any(item.get("document_id") for r in results for item in r["results"])
    assert sum("document" in item for r in results for item in r["results"]) > 200

    # what went over the wire: v2, the right key, string documents only, nothing Cohere v2 rejects
    statuses = Counter(r.status for r in server.requests)
    injected = Counter(f.status for plan in plans.values() for f in plan)
    assert statuses == {200: 220, 429: injected[429], 503: injected[503]}
    assert {(r.method, r.path) for r in server.requests} == {("POST", "/v2/rerank")}
    assert {r.headers["authorization"] for r in server.requests} == {f"Bearer {KEY}"}
    bodies = {r.body["query"]: r.body for r in answered.values()}
    for line in lines:
        body = bodies[line["query"]]
        assert set(body) <= V2_FIELDS
        assert all(isinstance(d, str) for d in body["documents"])
        wanted = {
            "model": "rerank-v3.5",
            "query": line["query"],
            "documents": [document_text(d, line.get("rank_fields")) for d in line["documents"]],
        }
        wanted |= {k: line[k] for k in ("top_n", "max_tokens_per_doc") if k in line}
        assert body == wanted


def test_cohere_v1_base_sends_objects_and_rank_fields(
    server: CohereServer, redis_url: str, workers: Workers, tmp_path: Path
) -> None:
    lines: list[dict[str, Any]] = []
    for n in range(40):
        a, b = word(n), word(n * 3 + 1)
        line: dict[str, Any] = {"id": f"v1-{n}", "model": MODEL, "query": f"{a} {b} q{n}"}
        if n % 2 == 0:
            line["documents"] = [
                {"id": f"d{k}", "title": word(n + k), "text": f"{word(n * 3 + 1 + k)} words", "views": k}
                for k in range(5)
            ]
            line |= {"rank_fields": ["title", "text"], "top_n": 3}
        else:
            line["documents"] = [{"id": "x", "text": f"{a} {b}"}, {"text": "other"}, f"{b} string"]
        if n % 5 == 0:
            line["max_chunks_per_doc"] = 4
        if n % 3 == 0:
            line["return_documents"] = True
        lines.append(line)
    truncated = {
        "id": "v1-truncated",
        "model": MODEL,
        "query": "alpha omega",
        "documents": ["alpha beta gamma omega", {"text": "omega alpha"}],
        "max_tokens_per_doc": 2,
    }

    results, errors, _ = run_batch(
        lines=[*lines, truncated], batch="cohere-v1", base=f"{server.base_url}/v1", key=KEY,
        redis_url=redis_url, workers=workers, tmp_path=tmp_path,
    )  # fmt: skip

    assert [r["id"] for r in results] == [line["id"] for line in [*lines, truncated]]
    for line, record in zip(lines, results[:-1], strict=True):
        assert record["results"] == expected_results(line, 1), line["id"]
        assert record["usage"] == {"billed_units": {"search_units": 1}}
    assert errors == []
    # v1 has no max_tokens_per_doc: documents were cut to 2 words client-side (objects rendered)
    assert [r["index"] for r in results[-1]["results"]] == [1, 0]

    assert {(r.path, r.status) for r in server.requests} == {("/v1/rerank", 200)}
    bodies = {r.body["query"]: r.body for r in server.requests}
    assert bodies["alpha omega"]["documents"] == ["alpha beta", "omega alpha"]
    assert "max_tokens_per_doc" not in bodies["alpha omega"]
    for line in lines:
        wanted = {"model": "rerank-v3.5", "query": line["query"], "documents": line["documents"]}
        wanted |= {k: line[k] for k in ("rank_fields", "top_n", "max_chunks_per_doc") if k in line}
        assert bodies[line["query"]] == {**wanted, "return_documents": False}
    assert any(isinstance(d, dict) for body in bodies.values() for d in body["documents"])
    assert sum("rank_fields" in body for body in bodies.values()) == 20


def test_cohere_wrong_key_fails_every_line_as_authentication(
    server: CohereServer, redis_url: str, workers: Workers, tmp_path: Path
) -> None:
    lines = [
        {"id": f"k{n}", "model": MODEL, "query": f"{word(n)} {word(n + 5)}", "documents": ["a", word(n)]}
        for n in range(30)
    ]

    results, errors, status = run_batch(
        lines=lines, batch="cohere-badkey", base=server.base_url, key="not-the-key",
        redis_url=redis_url, workers=workers, tmp_path=tmp_path,
    )  # fmt: skip

    assert results == []
    assert (status["succeeded"], status["failed"]) == (0, 30)
    assert [e["id"] for e in errors] == [line["id"] for line in lines]
    request_ids = {r.request_id for r in server.requests}
    for record in errors:
        error = record["error"]
        assert (error["code"], error["status"], error["retryable"]) == ("authentication", 401, False)
        assert (error["provider"], error["message"]) == ("cohere", "invalid api token")
        assert error["request_id"] in request_ids
    # permanent: one request per line, no retries
    assert len(server.requests) == 30
    assert {(r.status, r.headers["authorization"]) for r in server.requests} == {(401, "Bearer not-the-key")}
