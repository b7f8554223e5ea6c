"""Documents stored once, end to end: enqueue.py -> Redis -> a real ``worker.py --burst`` -> the local
Cohere wire server -> batch.py.  Users see the same records as with inline documents; Redis holds
each large document once; a document that is gone fails its line by name, and enqueue again plus
``retry-failed`` recovers it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import pytest

from jobs import keys
from tests.adapter_kit import serving
from tests.e2e import WORKER_ENV, run_batch
from tests.process_tools import RedisProbe, export_batch
from tests.servers.cohere import CohereServer
from tests.support import WORDS, run_script, write_dataset
from tests.wire_server import score

pytestmark = pytest.mark.integration

KEY = "docstore-cohere-key"
MODEL = "cohere/rerank-v3.5"
HASH = re.compile(r"[0-9a-f]{24}")
FILLER = " ".join(["filler"] * 60)  # makes every passage a stored one (over 256 bytes)


cohere = serving(lambda: CohereServer(KEY))


def passage(n: int) -> str:
    return f"{WORDS[n % len(WORDS)]} {WORDS[(n * 3) % len(WORDS)]} passage {n} {FILLER}"


def candidates(count: int) -> list[dict[str, Any]]:
    """Top-6 lists over a pool of 9 passages (every passage in several lines), plus one object
    document ranked on its text and returned, and a short inline text."""
    made = []
    for n in range(count):
        documents: list[Any] = [passage((n + k) % 9) for k in range(6)]
        documents.append({"id": f"o{n % 2}", "title": "ignored by rank_fields", "text": passage(n % 2)})
        documents.append(f"{WORDS[n % len(WORDS)]} short")
        made.append(
            {
                "id": f"q{n}",
                "query": f"{WORDS[n % len(WORDS)]} {WORDS[(n * 3) % len(WORDS)]}",
                "documents": documents,
                "rank_fields": ["text"],
                "return_documents": True,
                "top_n": 5,
            }
        )
    return made


def env(redis_url: str, server: CohereServer) -> dict[str, str]:
    return {**WORKER_ENV, "REDIS_URL": redis_url, "COHERE_API_KEY": KEY, "COHERE_API_BASE": server.base_url}


def text_of(document: Any) -> str:
    return document["text"] if isinstance(document, dict) else str(document)


def test_records_are_what_inline_documents_give_and_redis_holds_each_passage_once(
    cohere: CohereServer, probe: RedisProbe, redis_url: str, tmp_path: Path
) -> None:
    lines = candidates(10)
    documents_before = len(probe.matching(keys.DOCUMENT_PREFIX))
    results, errors = run_batch(
        redis_url, lines, tmp_path, env(redis_url, cohere), extra_args=["--model", MODEL]
    )

    assert errors == []
    assert (
        len(probe.matching(keys.DOCUMENT_PREFIX)) - documents_before == 9 + 2
    )  # the pool and the two objects, once
    sent = [r.body for r in cohere.requests if isinstance(r.body, dict)]
    assert len(sent) == 10
    by_id = {line["id"]: line for line in lines}
    for record in results:
        line = by_id[record["id"]]
        assert len(record["results"]) == 5
        for result in record["results"]:
            document = line["documents"][result["index"]]
            assert result["document"] == document  # returned as written, fields and all
            assert result["relevance_score"] == score(line["query"], text_of(document))
            if isinstance(document, dict):
                assert result["document_id"] == document["id"]
    # the provider got the texts, never a hash
    assert all(not HASH.fullmatch(str(d)) for body in sent for d in body["documents"])
    assert sum(FILLER in str(d) for body in sent for d in body["documents"]) == 10 * 7


def test_a_missing_document_fails_its_line_by_name_and_enqueue_again_then_retry_failed_recovers_it(
    cohere: CohereServer, probe: RedisProbe, redis_url: str, tmp_path: Path
) -> None:
    lines = candidates(4)
    lines[2]["documents"][0] = lines[3]["documents"][0] = f"only in lines two and three {FILLER}"
    settings = env(redis_url, cohere)
    dataset = write_dataset(tmp_path / "gone.jsonl", lines)
    enqueue = ["enqueue.py", str(dataset), "--batch", "gone", "--model", MODEL, "--no-progress"]
    assert run_script(*enqueue, env=settings).returncode == 0
    stored = [keys.document(digest) for digest in probe.matching(keys.DOCUMENT_PREFIX)]
    # line two holds its first use inline, line three names it
    (only,) = [key for key in stored if b"three" in cast(bytes, probe.client.get(key))]
    probe.client.delete(only)  # expired, or evicted under maxmemory

    assert run_script("worker.py", "--burst", env=settings).returncode == 0
    results, errors, _ = export_batch(redis_url, "gone", tmp_path)
    assert sorted(r["id"] for r in results) == ["q0", "q1", "q2"]
    (error,) = errors
    assert error["id"] == "q3" and error["error"]["code"] == "document_missing"
    assert error["error"]["documents"] == [0] and "no longer in Redis" in error["error"]["message"]
    assert lines[3]["query"] not in {r.body["query"] for r in cohere.requests if isinstance(r.body, dict)}

    resumed = run_script(*enqueue, env=settings)  # writes the batch's documents again
    assert "enqueued 0 new lines" in resumed.stdout, resumed.stdout + resumed.stderr
    retried = run_script("batch.py", "retry-failed", "gone", env=settings)
    assert "1 failed lines queued again" in retried.stdout, retried.stdout + retried.stderr
    assert run_script("worker.py", "--burst", env=settings).returncode == 0
    results, errors, _ = export_batch(redis_url, "gone", tmp_path)
    assert errors == [] and len(results) == 4
    (recovered,) = [r for r in results if r["id"] == "q3"]
    assert any(r["document"] == lines[3]["documents"][0] for r in recovered["results"])
