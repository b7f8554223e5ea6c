"""Result records against a real Redis: written once, counted once."""

from __future__ import annotations

from arq import ArqRedis

from jobs import keys
from jobs.batches import batch_status
from jobs.payload import LinePayload
from jobs.queue import register_batch
from jobs.records import FAILED, SUCCEEDED, RecordWriter

LINE: LinePayload = {
    "batch": "b",
    "line": 1,
    "id": "x",
    "model": "local/bm25",
    "query": "q",
    "documents": ["d"],
}


async def counts(redis: ArqRedis) -> tuple[int, int]:
    status = await batch_status(redis, "b")
    return status.succeeded, status.failed


async def test_duplicate_success_is_counted_once(redis: ArqRedis) -> None:
    await register_batch(redis, "b", "src", "local/bm25", 0)
    writer = RecordWriter(redis, ttl_ms=0)
    assert await writer.write("b", "b:1", SUCCEEDED, {"id": "1", "n": 1}, LINE)
    assert not await writer.write("b", "b:1", SUCCEEDED, {"id": "1", "n": 2}, LINE)
    assert not await writer.write("b", "b:1", FAILED, {"id": "1", "error": {}}, LINE)
    assert await counts(redis) == (1, 0)
    assert await redis.hget(keys.result("b:1"), "record") == b'{"id":"1","n":1}'  # type: ignore[misc]


async def test_failure_replaced_by_success_moves_the_counters(redis: ArqRedis) -> None:
    await register_batch(redis, "b", "src", "local/bm25", 0)
    writer = RecordWriter(redis, ttl_ms=0)
    assert await writer.write("b", "b:2", FAILED, {"id": "2", "error": {"code": "server_error"}}, LINE)
    assert not await writer.write("b", "b:2", FAILED, {"id": "2", "error": {"code": "timeout"}}, LINE)
    assert await counts(redis) == (0, 1)
    assert await redis.hkeys(keys.batch_failed("b")) == [b"b:2"]  # type: ignore[misc]
    assert await writer.write("b", "b:2", SUCCEEDED, {"id": "2"}, LINE)
    assert await counts(redis) == (1, 0)
    assert await redis.hlen(keys.batch_failed("b")) == 0  # type: ignore[misc]


async def test_ttl_applies_to_records_and_batch(redis: ArqRedis) -> None:
    await register_batch(redis, "b", "src", "local/bm25", 0)
    writer = RecordWriter(redis, ttl_ms=60_000)
    await writer.write("b", "b:3", SUCCEEDED, {"id": "3"}, LINE)
    assert 0 < await redis.pttl(keys.result("b:3")) <= 60_000
    assert 0 < await redis.pttl(keys.batch("b")) <= 60_000
    status = await batch_status(redis, "b")
    assert status.started_at is not None and status.updated_at is not None
