"""The enqueue's chunk transaction (one MSET of job values, then the line script): what a resume
leaves behind for lines done, queued, new or half-written, and how a refused command fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from arq import ArqRedis
from redis.exceptions import ResponseError

from jobs import keys
from jobs.resp import Command, transaction
from tests.integration.test_pipeline_inprocess import enqueue, run_burst
from tests.support import synthetic_lines, write_dataset


async def job_values(redis: ArqRedis) -> dict[bytes, bytes | None]:
    found = sorted(await redis.keys(keys.arq_job("b:*")))
    return dict(zip(found, await redis.mget(found), strict=True)) if found else {}


async def test_a_resume_of_finished_lines_leaves_no_job_value_behind(
    redis: ArqRedis, redis_url: str, tmp_path: Path
) -> None:
    """The MSET writes every line's value; for a line already done the script takes it back."""
    path = write_dataset(tmp_path / "d.jsonl", synthetic_lines(12, docs_per_line=2))
    assert await enqueue(redis, path) == (12, 0, 0)
    await run_burst(redis_url)
    assert await enqueue(redis, path) == (0, 0, 12)
    assert await job_values(redis) == {}
    assert await redis.zcard(keys.QUEUE) == 0


async def test_a_chunk_mixing_new_lines_with_known_ones_sorts_each_out(
    redis: ArqRedis, redis_url: str, tmp_path: Path
) -> None:
    """A chunk whose lines are all new to the batch's line set skips the per-line lookups (the
    first run); one that mixes new lines with known ones takes them, line by line: here six done
    by an enqueue interrupted halfway, then six new, in one chunk."""
    lines = synthetic_lines(12, docs_per_line=2)
    half, whole = (
        write_dataset(tmp_path / "half.jsonl", lines[:6]),
        write_dataset(tmp_path / "d.jsonl", lines),
    )
    assert await enqueue(redis, half, run_of=whole) == (6, 0, 0)
    assert [0 < await redis.pttl(key) <= 60_000 for key in await job_values(redis)] == [True] * 6
    await run_burst(redis_url)
    assert await enqueue(redis, whole) == (6, 0, 6)
    values = await job_values(redis)
    assert [0 < await redis.pttl(key) <= 60_000 for key in values] == [True] * 6
    assert sorted(await redis.zrange(keys.QUEUE, 0, -1)) == sorted(
        key[len(keys.ARQ_JOB_PREFIX) :] for key in values
    )
    assert await enqueue(redis, whole) == (0, 6, 6)


async def test_a_resume_keeps_queued_jobs_as_they_were_and_expiring(redis: ArqRedis, tmp_path: Path) -> None:
    path = write_dataset(tmp_path / "d.jsonl", synthetic_lines(30, docs_per_line=2))
    assert await enqueue(redis, path) == (30, 0, 0)
    before = await job_values(redis)
    assert await enqueue(redis, path) == (0, 30, 0)
    assert await job_values(redis) == before
    expiries = [await redis.pttl(key) for key in before]
    assert all(0 < ms <= 60_000 for ms in expiries), expiries  # the MSET dropped them; put back
    assert await redis.zcard(keys.QUEUE) == 30


async def test_a_value_left_without_a_queue_entry_is_replaced_and_queued(
    redis: ArqRedis, tmp_path: Path
) -> None:
    """A value no queue entry names (an interrupted write of other content under this batch name)
    is never trusted: the line's own job replaces it and is queued, so the line is not lost."""
    path = write_dataset(tmp_path / "d.jsonl", synthetic_lines(4, docs_per_line=2))
    await redis.set(keys.arq_job("b:q2"), b'{"stale": true}')
    assert await enqueue(redis, path) == (4, 0, 0)
    value = await redis.get(keys.arq_job("b:q2"))
    assert value is not None and b"stale" not in value and b'"id":"q2"' in value
    assert 0 < await redis.pttl(keys.arq_job("b:q2")) <= 60_000
    assert await redis.zscore(keys.QUEUE, "b:q2") is not None


async def test_a_refused_command_runs_nothing_and_a_failed_one_is_raised(redis: ArqRedis) -> None:
    with pytest.raises(ResponseError, match="wrong number of arguments"):
        await transaction(redis, Command("SET", "a", "1"), Command("SET", "b"))
    assert await redis.exists("a") == 0  # EXECABORT: the first command never ran either
    await redis.set("text", "x")
    with pytest.raises(ResponseError, match="not an integer"):
        await transaction(redis, Command("SET", "c", b"\r\n\x00"), Command("INCR", "text"))
    assert await redis.get("c") == b"\r\n\x00"  # a transaction is no rollback: the SET ran
    assert await transaction(redis, Command("INCRBY", "n", 41), Command("INCR", "n")) == [41, 42]
