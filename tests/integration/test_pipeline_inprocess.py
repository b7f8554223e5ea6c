"""Enqueue, run and export a batch inside one process, against a real Redis."""

from __future__ import annotations

import io
import pickle
import time
from pathlib import Path
from typing import Any

import orjson
from arq import ArqRedis
from arq.worker import Worker

from enqueue import enqueue_and_follow, parse_args
from jobs import keys
from jobs.batches import batch_status, cancel, drop, export
from jobs.connection import open_pool
from jobs.identity import run_identity
from jobs.preflight import Paths, valid_lines
from jobs.queue import enqueue_lines, register_batch
from jobs.runs import Run
from jobs.serializer import deserialize
from jobs.settings import RunnerSettings
from jobs.validation import ModelCheck, validate_file
from tests.support import synthetic_lines, write_dataset
from worker import worker_options


async def enqueue(
    redis: ArqRedis, path: Path, batch: str = "b", run_of: Path | None = None
) -> tuple[int, int, int]:
    """Enqueue ``path`` as enqueue.py does; ``run_of``: under the run identity of that file
    instead (as an enqueue of it interrupted after ``path``'s lines would have)."""
    report = validate_file(path, ModelCheck(), lambda error: None)
    whole = run_of or path
    identity = run_identity(
        whole, validate_file(whole, ModelCheck(), lambda error: None), "local/bm25", None, {}
    )
    await register_batch(redis, batch, identity, str(path), 0)
    counts = await enqueue_lines(
        redis,
        batch,
        valid_lines(path, report),
        default_model="local/bm25",
        run=identity.digest,
        job_expiry_ms=60_000,
        result_ttl_ms=0,
    )
    return counts.added, counts.already_queued, counts.already_done


async def run_burst(redis_url: str) -> Worker:
    settings = RunnerSettings(redis_url=redis_url)
    worker = Worker(
        **worker_options(settings),
        redis_pool=await open_pool(redis_url),
        burst=True,
        handle_signals=False,
    )
    await worker.main()
    await worker.close()
    return worker


async def exported(redis: ArqRedis, batch: str = "b") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    results, errors = io.BytesIO(), io.BytesIO()
    await export(redis, batch, results, errors)

    def parse(buffer: io.BytesIO) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in buffer.getvalue().splitlines()]

    return parse(results), parse(errors)


async def test_enqueue_is_idempotent_and_jobs_are_json(redis: ArqRedis, tmp_path: Path) -> None:
    path = write_dataset(tmp_path / "d.jsonl", synthetic_lines(120))
    assert await enqueue(redis, path) == (120, 0, 0)
    assert await enqueue(redis, path) == (0, 120, 0)
    assert await redis.zcard(keys.QUEUE) == 120
    raw = await redis.get(keys.arq_job("b:q7"))
    payload = orjson.loads(raw)  # JSON, never a pickle: the bare line, arq's envelope left out
    assert "f" not in payload and "batch" in payload
    assert payload["id"] == "q7" and payload["model"] == "local/bm25"
    assert deserialize(raw)["f"] == keys.JOB_FUNCTION and deserialize(raw)["a"] == [payload]
    assert (await batch_status(redis, "b")).total == 120


async def test_batch_runs_to_one_record_per_line_in_dataset_order(
    redis: ArqRedis, redis_url: str, tmp_path: Path
) -> None:
    lines = synthetic_lines(60, top_n=3)
    lines[5]["documents"] = [{"id": f"d{i}", "text": d} for i, d in enumerate(lines[5]["documents"])]
    lines[5]["return_documents"] = True
    lines[9]["metadata"] = {"qrel": [1, 0]}
    lines[7]["id"] = "q-é-日本:7"  # non-ASCII and a colon survive keys, Lua and export
    lines[11]["model"] = "cohere/rerank-v3.5"  # no key configured: fails with a record, never lost
    path = write_dataset(tmp_path / "d.jsonl", lines)
    await enqueue(redis, path)
    await run_burst(redis_url)
    status = await batch_status(redis, "b")
    assert (status.total, status.succeeded, status.failed, status.finished) == (60, 59, 1, True)
    results, errors = await exported(redis)
    assert [r["id"] for r in results] == [line["id"] for i, line in enumerate(lines) if i != 11]
    assert errors == [
        {
            **errors[0],
            "id": "q11",
            "error": {
                "code": "configuration",
                "message": "no API key for 'cohere/rerank-v3.5': set COHERE_API_KEY or CO_API_KEY",
                "retryable": False,
                "provider": "cohere",
            },
        }
    ]
    first = results[0]
    assert first["results"][0]["index"] == 0 and len(first["results"]) == 3
    with_docs = results[5]["results"][0]
    assert with_docs["document_id"] == "d0" and with_docs["document"] == lines[5]["documents"][0]
    assert results[9]["metadata"] == {"qrel": [1, 0]}
    assert "metadata" not in results[8]
    # the worker deleted arq's copy of every finished job: results are ours alone
    assert await redis.zcard(keys.QUEUE) == 0
    assert not await redis.keys("arq:result:*")
    assert await enqueue(redis, path) == (0, 0, 60)


async def test_cancel_keeps_finished_lines_and_drops_queued_ones(
    redis: ArqRedis, redis_url: str, tmp_path: Path
) -> None:
    first = write_dataset(tmp_path / "a.jsonl", synthetic_lines(10))
    more = write_dataset(tmp_path / "b.jsonl", synthetic_lines(25))
    await enqueue(redis, first, run_of=more)  # an enqueue of b.jsonl interrupted after 10 lines
    await run_burst(redis_url)
    assert await enqueue(redis, more) == (15, 0, 10)
    assert await cancel(redis, "b") == 15
    await run_burst(redis_url)
    status = await batch_status(redis, "b")
    assert (status.succeeded, status.pending, status.cancelled) == (10, 15, True)
    results, errors = await exported(redis)
    assert len(results) == 10
    assert {e["error"]["code"] for e in errors} == {"cancelled"} and len(errors) == 15
    # enqueue again resumes the cancelled batch
    assert await enqueue(redis, more) == (15, 0, 10)
    await run_burst(redis_url)
    assert (await batch_status(redis, "b")).succeeded == 25


async def test_lost_lines_are_reported_and_requeued_by_enqueue(
    redis: ArqRedis, redis_url: str, tmp_path: Path
) -> None:
    path = write_dataset(tmp_path / "d.jsonl", synthetic_lines(5))
    await enqueue(redis, path)
    await redis.delete(keys.arq_job("b:q2"))  # as if arq had expired the queued job
    await run_burst(redis_url)
    results, errors = await exported(redis)
    assert len(results) == 4 and errors[0]["id"] == "q2" and errors[0]["error"]["code"] == "lost"
    assert await enqueue(redis, path) == (1, 0, 4)
    await run_burst(redis_url)
    assert (await batch_status(redis, "b")).succeeded == 5


class Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


async def test_worker_never_unpickles_a_payload(redis: ArqRedis, redis_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    job = pickle.dumps({"t": 1, "f": keys.JOB_FUNCTION, "a": (Exploit(marker),), "k": {}, "et": 0})
    await redis.set(keys.arq_job("evil:1"), job)
    await redis.zadd(keys.QUEUE, {"evil:1": int(time.time() * 1000)})
    worker = await run_burst(redis_url)
    assert not marker.exists()
    assert worker.jobs_failed == 1
    assert await redis.zcard(keys.QUEUE) == 0


async def test_a_file_changed_since_validation_is_not_enqueued(
    redis: ArqRedis, redis_url: str, tmp_path: Path
) -> None:
    path = write_dataset(tmp_path / "d.jsonl", synthetic_lines(3))
    report = validate_file(path, ModelCheck(), lambda error: None)
    with path.open("a") as handle:
        handle.write('{"id": "late", "query": "", "documents": []}\n')
    args = parse_args([str(path), "--redis-url", redis_url, "--no-progress"])
    paths = Paths(tmp_path / "r.jsonl", tmp_path / "e.jsonl", tmp_path / "x.jsonl")
    identity = run_identity(path, report, "local/bm25", None, {})
    run = Run(args, RunnerSettings(redis_url=redis_url), "b", paths, report, identity)
    assert await enqueue_and_follow(run) == 1
    assert await redis.dbsize() == 0


async def test_the_line_set_spans_buckets_in_dataset_order_and_drop_removes_them(
    redis: ArqRedis, redis_url: str, tmp_path: Path
) -> None:
    """Lines 1-99, 200-250 valid; lines 100-199 (one whole bucket of the line set) invalid."""
    lines = synthetic_lines(250, docs_per_line=2)
    for line in lines[99:199]:
        line["query"] = ""
    path = write_dataset(tmp_path / "d.jsonl", lines)
    assert await enqueue(redis, path) == (150, 0, 0)
    assert await enqueue(redis, path) == (0, 150, 0)
    assert (await batch_status(redis, "b")).total == 150
    assert sorted(await redis.keys(keys.batch_line_bucket("b", "*"))) == [
        keys.batch_line_bucket("b", n).encode() for n in (0, 2)
    ]
    await run_burst(redis_url)
    results, errors = await exported(redis)
    assert errors == []
    assert [r["id"] for r in results] == [line["id"] for n, line in enumerate(lines) if not 99 <= n < 199]
    assert [r["line"] for r in results] == [*range(1, 100), *range(200, 251)]
    assert await drop(redis, "b") == 150
    assert await redis.keys("rr:batch:b*") == []


async def test_a_batch_with_an_older_versions_single_line_set_keeps_it(
    redis: ArqRedis, redis_url: str, tmp_path: Path
) -> None:
    """A resume of a batch an older version enqueued (one sorted set of its lines) adds to that
    set: nothing counted twice, no bucket written, every line exported in order."""
    path = write_dataset(tmp_path / "d.jsonl", synthetic_lines(30, docs_per_line=2))
    head = write_dataset(tmp_path / "head.jsonl", synthetic_lines(10, docs_per_line=2))
    assert await enqueue(redis, head, run_of=path) == (10, 0, 0)
    bucket = keys.batch_line_bucket("b", 0)
    await redis.rename(bucket, keys.batch_lines("b"))  # as an older version wrote it
    await redis.hdel(keys.batch("b"), "line_buckets")  # type: ignore[misc]
    assert await enqueue(redis, path) == (20, 10, 0)
    assert await redis.zcard(keys.batch_lines("b")) == 30 and not await redis.exists(bucket)
    assert (await batch_status(redis, "b")).total == 30
    await run_burst(redis_url)
    results, _ = await exported(redis)
    assert [r["line"] for r in results] == list(range(1, 31))
