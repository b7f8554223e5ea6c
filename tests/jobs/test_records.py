"""Result records against a real Redis: written once, counted once."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from arq import ArqRedis

from jobs import keys
from jobs.batches import batch_status
from jobs.cache import CacheWrite
from jobs.payload import LinePayload
from jobs.queue import register_batch
from jobs.records import FAILED, SUCCEEDED, RecordWriter, Written
from jobs.work import WorkerState, rerank_line
from tests.support import RUN, command_calls, unit_line

LINE = unit_line()


async def counts(redis: ArqRedis) -> tuple[int, int]:
    status = await batch_status(redis, "b")
    return status.succeeded, status.failed


async def test_duplicate_success_is_counted_once(redis: ArqRedis) -> None:
    await register_batch(redis, "b", RUN, "src", 0)
    writer = RecordWriter(redis, ttl_ms=0)
    assert await writer.write("b", "b:1", SUCCEEDED, {"id": "1", "n": 1}, LINE)
    assert not await writer.write("b", "b:1", SUCCEEDED, {"id": "1", "n": 2}, LINE)
    assert not await writer.write("b", "b:1", FAILED, {"id": "1", "error": {}}, LINE)
    assert await counts(redis) == (1, 0)
    assert await redis.hget(keys.result("b:1"), "record") == b'{"id":"1","n":1}'  # type: ignore[misc]


async def test_failure_replaced_by_success_moves_the_counters(redis: ArqRedis) -> None:
    await register_batch(redis, "b", RUN, "src", 0)
    writer = RecordWriter(redis, ttl_ms=0)
    assert await writer.write("b", "b:2", FAILED, {"id": "2", "error": {"code": "server_error"}}, LINE)
    assert not await writer.write("b", "b:2", FAILED, {"id": "2", "error": {"code": "timeout"}}, LINE)
    assert await counts(redis) == (0, 1)
    assert await redis.hkeys(keys.batch_failed("b")) == [b"b:2"]  # type: ignore[misc]
    assert await writer.write("b", "b:2", SUCCEEDED, {"id": "2"}, LINE)
    assert await counts(redis) == (1, 0)
    assert await redis.hlen(keys.batch_failed("b")) == 0  # type: ignore[misc]


async def test_ttl_applies_to_records_and_batch(redis: ArqRedis) -> None:
    await register_batch(redis, "b", RUN, "src", 0)
    writer = RecordWriter(redis, ttl_ms=60_000)
    await writer.write("b", "b:3", SUCCEEDED, {"id": "3"}, LINE)
    assert 0 < await redis.pttl(keys.result("b:3")) <= 60_000
    assert 0 < await redis.pttl(keys.batch("b")) <= 60_000
    status = await batch_status(redis, "b")
    assert status.started_at is not None and status.updated_at is not None


async def test_a_record_of_another_run_is_never_written(redis: ArqRedis) -> None:
    await register_batch(redis, "b", RUN, "src", 0)
    writer = RecordWriter(redis, ttl_ms=0)
    stale: LinePayload = {**LINE, "run": "run-0"}
    assert not await writer.write("b", "b:4", SUCCEEDED, {"id": "4"}, stale)
    assert await redis.exists(keys.result("b:4")) == 0
    assert await counts(redis) == (0, 0)


async def test_a_worker_skips_a_job_of_another_run_without_a_request(redis: ArqRedis) -> None:
    """A job queued before ``enqueue --replace`` gave the batch other content costs nothing."""
    await register_batch(redis, "b", RUN, "src", 0)
    calls: list[str] = []

    class Refusing:
        async def rerank(self, model: str, request: object) -> None:
            calls.append(model)

    state = WorkerState(reranker=Refusing(), writer=RecordWriter(redis, 0), line_deadline=10, max_tries=25)  # type: ignore[arg-type]
    await rerank_line({"redis": redis, "state": state, "job_try": 1}, {**LINE, "run": "run-0"})
    assert calls == [] and await redis.exists(keys.result("b:x")) == 0
    await rerank_line({"redis": redis, "state": state, "job_try": 1}, LINE)
    assert calls == ["local/bm25"]


async def test_a_line_out_of_time_is_failed_and_logged_with_its_code(
    redis: ArqRedis, caplog: pytest.LogCaptureFixture
) -> None:
    await register_batch(redis, "b", RUN, "src", 0)

    class Stalling:
        async def rerank(self, model: str, request: object) -> None:
            await asyncio.sleep(30)

    state = WorkerState(reranker=Stalling(), writer=RecordWriter(redis, 0), line_deadline=0.05, max_tries=3)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="rerank_runner.worker"):
        await rerank_line({"redis": redis, "state": state, "job_try": 1}, LINE)
    record = orjson.loads(await redis.hget(keys.result("b:x"), "record"))  # type: ignore[misc]
    assert record["error"]["code"] == "deadline_exceeded"
    [logged] = [r for r in caplog.records if r.name == "rerank_runner.worker"]
    assert (
        getattr(logged, "code", None) == "deadline_exceeded" and "line x of b failed" in logged.getMessage()
    )


async def arq_keys_left(redis: ArqRedis, job: str) -> int:
    found = await redis.exists(keys.arq_job(job), keys.arq_retry(job), keys.arq_in_progress(job))
    return int(found) + (await redis.zscore(keys.QUEUE, job) is not None)


async def running(redis: ArqRedis, job: str) -> None:
    """What arq leaves in Redis for a job that is running: its value, try, marker, queue entry."""
    await redis.set(keys.arq_job(job), b"value")
    await redis.set(keys.arq_retry(job), 1)
    await redis.set(keys.arq_in_progress(job), b"w")
    await redis.zadd(keys.QUEUE, {job: 1000})


async def test_the_record_write_finishes_the_job_unless_the_line_is_stale(redis: ArqRedis) -> None:
    await register_batch(redis, "b", RUN, "src", 0)
    writer = RecordWriter(redis, ttl_ms=0)
    for job in ("b:1", "b:2", "b:3"):
        await running(redis, job)
    assert await writer.record("b", "b:1", SUCCEEDED, {"id": "1"}, LINE, finish=True) == Written.CHANGED
    assert await arq_keys_left(redis, "b:1") == 0
    # a line that already succeeded is finished too: its job is done
    assert await writer.record("b", "b:2", SUCCEEDED, {"id": "2"}, LINE) == Written.CHANGED
    assert await writer.record("b", "b:2", FAILED, {"id": "2"}, LINE, finish=True) == Written.KEPT
    assert await arq_keys_left(redis, "b:2") == 0
    # a job of another run is left for arq's own finish (its id may be queued again by the new run)
    stale: LinePayload = {**LINE, "run": "run-0"}
    assert await writer.record("b", "b:3", SUCCEEDED, {"id": "3"}, stale, finish=True) == Written.STALE
    assert await arq_keys_left(redis, "b:3") == 4


async def test_the_cache_write_rides_with_the_record_even_for_a_stale_line(redis: ArqRedis) -> None:
    await register_batch(redis, "b", RUN, "src", 0)
    writer = RecordWriter(redis, ttl_ms=0)
    pairs = CacheWrite("rr:cache:t:pairs", "hash", 60_000, ("h1", "0.5", "h2", "0.25"))
    line = CacheWrite("rr:cache:t:line", "string", 60_000, (b"[[0,0.5]]",))
    stale: LinePayload = {**LINE, "run": "run-0"}
    await writer.record("b", "b:1", SUCCEEDED, {"id": "1"}, LINE, cache=pairs)
    await writer.record("b", "b:2", SUCCEEDED, {"id": "2"}, stale, cache=line)
    assert await redis.hgetall(pairs.key) == {b"h1": b"0.5", b"h2": b"0.25"}  # type: ignore[misc]
    assert await redis.get(line.key) == b"[[0,0.5]]"
    await redis.persist(line.key)
    await writer.record("b", "b:1", SUCCEEDED, {"id": "1"}, LINE, cache=CacheWrite(line.key, "touch", 60_000))
    assert 0 < await redis.pttl(line.key) <= 60_000  # a hit renews the entry's expiry


async def test_the_line_that_ends_the_batch_stamps_its_end(redis: ArqRedis) -> None:
    await register_batch(redis, "b", RUN, "src", 0)
    await redis.hset(keys.batch("b"), "total", "2")  # type: ignore[misc]
    writer = RecordWriter(redis, ttl_ms=0)
    await writer.write("b", "b:1", SUCCEEDED, {"id": "1"}, LINE)
    first = await batch_status(redis, "b")
    await asyncio.sleep(0.05)
    await writer.write("b", "b:2", FAILED, {"id": "2", "error": {}}, LINE)
    last = await batch_status(redis, "b")
    assert last.finished and first.updated_at is not None and last.updated_at is not None
    assert last.updated_at > first.updated_at and last.started_at == first.started_at


async def test_counters_stay_exact_over_many_concurrent_writes_in_one_hset_each(redis: ArqRedis) -> None:
    await register_batch(redis, "b", RUN, "src", 0)
    writer = RecordWriter(redis, ttl_ms=60_000)
    await writer.write("b", "b:0", FAILED, {"id": "0", "error": {}}, LINE)

    def hits(n: int) -> dict[str, object]:
        return {"id": str(n), "cache": {"hits": n % 3, "misses": 2}}

    await redis.config_resetstat()
    written = await asyncio.gather(
        *(writer.write("b", f"b:{n}", SUCCEEDED, hits(n), LINE) for n in range(60)),  # b:0 was a failure
        *(writer.write("b", f"b:{n}", SUCCEEDED, hits(n), LINE) for n in range(50, 60)),  # run twice
    )
    assert written.count(True) == 60
    status = await batch_status(redis, "b")
    assert (status.succeeded, status.failed) == (60, 0)
    assert (status.cache_hits, status.cache_misses) == (sum(n % 3 for n in range(60)), 120)
    calls = await command_calls(redis)
    assert "hincrby" not in calls
    assert calls["hset"] <= 2 * 60 + 1  # the record's and the counters' (b:0: one more)
