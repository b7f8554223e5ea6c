"""The worker's own job runner against a real Redis (jobs/runner.py, jobs/resilience.py): jobs
arrive claimed with their value and try, keep arq's semantics, and a line finishes in its
record write, with no arq transaction around it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
import pytest
from arq import ArqRedis, Retry

from jobs import keys
from jobs.queue import register_batch
from jobs.records import RecordWriter
from jobs.resilience import ResilientWorker
from jobs.runner import FINISHED
from jobs.serializer import deserialize, serialize
from jobs.work import rerank_line
from tests.jobs.test_work_redis_errors import CountingReranker, state_for
from tests.support import RUN, unit_line

JOB = keys.job_id("b", "x")
SEEN: list[dict[str, Any]] = []


def worker(
    redis: ArqRedis,
    functions: Sequence[Callable[..., Awaitable[Any]]],
    *,
    on_startup: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    **options: Any,
) -> ResilientWorker:
    return ResilientWorker(
        functions=list(functions),
        redis_pool=redis,
        queue_name=keys.QUEUE,
        keep_result=0,
        burst=True,
        poll_delay=0.05,
        handle_signals=False,
        job_serializer=serialize,
        job_deserializer=deserialize,
        on_startup=on_startup,
        heartbeat_seconds=30,
        worker_ttl_seconds=60,
        redis_outage_seconds=5,
        worker_id="w",
        **options,
    )


async def run(redis: ArqRedis, *args: Any, **kwargs: Any) -> ResilientWorker:
    running = worker(redis, *args, **kwargs)
    await asyncio.wait_for(running.main(), 30)
    return running


async def leftovers(redis: ArqRedis, job: str = JOB) -> int:
    """How many of a job's arq keys (value, retry counter, in-progress marker, queue entry) remain."""
    found = await redis.exists(keys.arq_job(job), keys.arq_retry(job), keys.arq_in_progress(job))
    return int(found) + (await redis.zscore(keys.QUEUE, job) is not None)


async def deferred_once(ctx: dict[str, Any]) -> None:
    SEEN.append({"job_try": ctx["job_try"], "score": ctx["score"]})
    if ctx["job_try"] == 1:
        raise Retry(defer=0.4)


async def marks_finished(ctx: dict[str, Any]) -> None:
    SEEN.append({"job_try": ctx["job_try"]})
    ctx[FINISHED] = True


async def sleeps(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(5)


@pytest.fixture(autouse=True)
def forget_runs() -> None:
    SEEN.clear()


async def test_a_line_is_claimed_run_and_finished_by_its_record_write_without_arq_transactions(
    redis: ArqRedis,
) -> None:
    await register_batch(redis, "b", RUN, "src", 0)
    await redis.enqueue_job(keys.JOB_FUNCTION, unit_line(), _job_id=JOB, _queue_name=keys.QUEUE)

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["state"] = state_for(reranker, RecordWriter(redis, 0))

    async with httpx.AsyncClient() as client:
        reranker = CountingReranker(client)
        await redis.config_resetstat()
        done = await run(redis, [rerank_line], on_startup=startup)
        stats = await redis.info("commandstats")
        await done.close()
    assert await redis.hget(keys.result(JOB), "status") == b"succeeded"  # type: ignore[misc]
    assert reranker.calls == 1 and done.jobs_complete == 1
    assert await leftovers(redis) == 0
    assert "cmdstat_multi" not in stats  # neither arq's start pipeline nor its finish transaction ran


async def test_a_retry_moves_the_job_on_frees_it_and_counts_the_next_try(redis: ArqRedis) -> None:
    await redis.enqueue_job("deferred_once", _job_id=JOB, _queue_name=keys.QUEUE)
    enqueued = await redis.zscore(keys.QUEUE, JOB)
    done = await run(redis, [deferred_once])
    await done.close()
    assert [seen["job_try"] for seen in SEEN] == [1, 2]
    # a first try's score is not read by the claim (None); the Retry read it to move it on
    assert SEEN[0]["score"] is None and enqueued is not None
    assert SEEN[1]["score"] - enqueued >= 400  # deferred by the Retry's delay
    assert (done.jobs_retried, done.jobs_complete) == (1, 1)
    assert await leftovers(redis) == 0  # the second run ended normally: arq's finish ran


async def test_a_job_that_finished_itself_is_not_finished_again(redis: ArqRedis) -> None:
    await redis.enqueue_job("marks_finished", _job_id=JOB, _queue_name=keys.QUEUE)
    done = await run(redis, [marks_finished], max_burst_jobs=1)
    await done.close()
    assert SEEN == [{"job_try": 1}]
    # the job said its own write finished it, so the runner left its keys alone
    assert await redis.exists(keys.arq_job(JOB), keys.arq_in_progress(JOB)) == 2


async def test_a_job_past_its_tries_fails_without_running(redis: ArqRedis) -> None:
    await redis.enqueue_job("marks_finished", _job_id=JOB, _queue_name=keys.QUEUE)
    await redis.set(keys.arq_retry(JOB), 3)
    done = await run(redis, [marks_finished], max_tries=3)
    await done.close()
    assert SEEN == [] and done.jobs_failed == 1
    assert await leftovers(redis) == 0


CANNOT_START = [
    (None, "expired"),
    (b"not json", "deserializing job b:x failed"),
    (b'{"f": "unknown", "a": [], "k": {}, "t": 1, "et": 1}', "function 'unknown' not found"),
]


@pytest.mark.parametrize(("value", "logged"), CANNOT_START)
async def test_a_job_that_cannot_start_fails_and_leaves_the_queue(
    redis: ArqRedis, caplog: pytest.LogCaptureFixture, value: bytes | None, logged: str
) -> None:
    """Its value expired, does not decode, or names a function this worker does not have."""
    await redis.zadd(keys.QUEUE, {JOB: 1000})
    if value is not None:
        await redis.set(keys.arq_job(JOB), value)
    with caplog.at_level(logging.WARNING, logger="arq.worker"):
        done = await run(redis, [marks_finished])
    await done.close()
    assert SEEN == [] and done.jobs_failed == 1
    assert await leftovers(redis) == 0
    assert any(logged in r.getMessage() for r in caplog.records if r.name == "arq.worker")


async def test_a_job_out_of_time_is_a_failure_and_finished(redis: ArqRedis) -> None:
    await redis.enqueue_job("sleeps", _job_id=JOB, _queue_name=keys.QUEUE)
    done = await run(redis, [sleeps], job_timeout=0.2)
    await done.close()
    assert done.jobs_failed == 1
    assert await leftovers(redis) == 0


async def test_a_job_another_worker_runs_is_not_asked_for_again_at_once(redis: ArqRedis) -> None:
    await redis.enqueue_job("deferred_once", _job_id=JOB, _queue_name=keys.QUEUE)
    await redis.set(keys.arq_in_progress(JOB), b"other")
    await redis.enqueue_job("sleeps", _job_id="b:free", _queue_name=keys.QUEUE)
    polling = worker(redis, [deferred_once, sleeps], job_timeout=0.1)
    running = asyncio.create_task(polling.main())  # the other worker's job is asked for, the free one run
    for _ in range(200):
        if polling.jobs_failed:
            break
        await asyncio.sleep(0.05)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert SEEN == [] and polling.jobs_failed == 1
    await redis.config_resetstat()
    await polling._poll_iteration()  # the head of the queue is the other worker's job
    stats = await redis.info("commandstats")
    await polling.close()
    assert "cmdstat_zrangebyscore" in stats  # it polled and saw the job ...
    assert "cmdstat_evalsha" not in stats and "cmdstat_set" not in stats  # ... and did not claim it
    assert await redis.get(keys.arq_in_progress(JOB)) == b"other"


async def test_free_jobs_behind_a_full_read_of_jobs_running_elsewhere_are_taken(redis: ArqRedis) -> None:
    # more jobs run elsewhere than one read returns: the head alone would never offer this one
    running_elsewhere = [keys.job_id("b", f"busy{n}") for n in range(5)]
    for job in running_elsewhere:
        await redis.enqueue_job("sleeps", _job_id=job, _queue_name=keys.QUEUE)
        await redis.set(keys.arq_in_progress(job), b"other")
    await redis.enqueue_job("marks_finished", _job_id=JOB, _queue_name=keys.QUEUE)
    polling = worker(redis, [sleeps, marks_finished], queue_read_limit=2)
    running = asyncio.create_task(polling.main())
    for _ in range(60):
        if SEEN:
            break
        await asyncio.sleep(0.05)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    await polling.close()
    assert SEEN == [{"job_try": 1}]
    assert [await redis.get(keys.arq_in_progress(job)) for job in running_elsewhere] == [b"other"] * 5
