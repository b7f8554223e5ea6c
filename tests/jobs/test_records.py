"""Result records against a real Redis: written once, counted once."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from arq import ArqRedis

from jobs import keys
from jobs.batches import batch_status
from jobs.payload import LinePayload
from jobs.queue import register_batch
from jobs.records import FAILED, SUCCEEDED, RecordWriter
from jobs.work import WorkerState, rerank_line
from tests.support import RUN, unit_line

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
