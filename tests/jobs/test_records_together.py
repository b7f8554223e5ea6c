"""Record writes of lines that finish together share a round trip (jobs/records.py through
jobs/coalescer.py): still written once, counted once, each write told its own outcome."""

from __future__ import annotations

import asyncio

import pytest
from arq import ArqRedis
from redis.exceptions import ResponseError

from jobs import keys
from jobs.batches import batch_status
from jobs.queue import register_batch
from jobs.records import SUCCEEDED, RecordWriter, Written
from tests.jobs.test_coalescer import CountingPipelines
from tests.support import RUN, unit_line

LINE = unit_line()


async def test_writes_of_one_turn_share_a_round_trip_and_count_each_line_once(
    redis: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await register_batch(redis, "b", RUN, "src", 0)
    writer = RecordWriter(redis, ttl_ms=0)
    await writer.write("b", "b:warm", SUCCEEDED, {"id": "warm"}, LINE)  # the script is loaded
    counted = CountingPipelines(redis)
    monkeypatch.setattr(redis, "pipeline", counted)
    jobs = [f"b:{n}" for n in range(8)] + ["b:0", "b:1"]  # two lines delivered twice
    written = await asyncio.gather(
        *(writer.record("b", job, SUCCEEDED, {"id": job}, LINE, finish=True) for job in jobs)
    )
    assert counted.made == 1
    assert written.count(Written.CHANGED) == 8 and written.count(Written.KEPT) == 2
    status = await batch_status(redis, "b")
    assert (status.succeeded, status.failed) == (9, 0)


async def test_writes_go_on_after_redis_forgot_the_script(redis: ArqRedis) -> None:
    """A restarted (or flushed) Redis has no scripts: every write of the turn loads it and
    is written once."""
    await register_batch(redis, "b", RUN, "src", 0)
    writer = RecordWriter(redis, ttl_ms=0)
    await redis.script_flush()
    written = await asyncio.gather(
        *(writer.record("b", f"b:{n}", SUCCEEDED, {"id": n}, LINE, finish=True) for n in range(3))
    )
    assert written == [Written.CHANGED] * 3
    assert (await batch_status(redis, "b")).succeeded == 3


async def test_a_write_that_fails_in_redis_fails_alone(redis: ArqRedis) -> None:
    await register_batch(redis, "b", RUN, "src", 0)
    await redis.set(keys.batch("broken"), "not a hash")  # its record script errs in Redis
    writer = RecordWriter(redis, ttl_ms=0)
    found = await asyncio.gather(
        writer.record("b", "b:1", SUCCEEDED, {"id": "1"}, LINE),
        writer.record("broken", "broken:1", SUCCEEDED, {"id": "1"}, LINE),
        writer.record("b", "b:2", SUCCEEDED, {"id": "2"}, LINE),
        return_exceptions=True,
    )
    assert found[0] == found[2] == Written.CHANGED
    assert isinstance(found[1], ResponseError)
    assert (await batch_status(redis, "b")).succeeded == 2
