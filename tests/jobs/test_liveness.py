"""Taking jobs, heartbeats, leases and the reaper against a real Redis (jobs/liveness.py)."""

from __future__ import annotations

import asyncio
import itertools

from arq import ArqRedis

from jobs import keys
from jobs.liveness import RETRY_KEY_SECONDS, Claim, Liveness, list_workers
from tests.support import command_calls

IN_PROGRESS_MS = 310_000
NOW_MS = 10_000


def liveness(redis: ArqRedis, worker_id: str, ttl: float = 60.0) -> Liveness:
    facts = {"max_jobs": 4}
    return Liveness(redis, worker_id=worker_id, ttl_seconds=ttl, lease_keep_seconds=600, facts=facts)


def retry_last_call(worker: Liveness) -> Liveness:
    """The next call carries the last one's number, as redis-py's retry of a call that ran does."""
    worker._calls = itertools.count(next(worker._calls) - 1)
    return worker


async def queued(redis: ArqRedis, *jobs: str, score: int = 1000) -> None:
    """What enqueue leaves in Redis for a job: its payload and its queue entry."""
    for job in jobs:
        await redis.set(keys.arq_job(job), b"payload")
        await redis.zadd(keys.QUEUE, {job: score})


async def deferred(redis: ArqRedis, job: str) -> None:
    """A job whose try was deferred (arq's ``Retry``): its score moved ahead, its try counted."""
    await queued(redis, job, score=NOW_MS + 5000)
    await redis.set(keys.arq_retry(job), 1)


async def test_a_job_is_taken_once_and_only_when_due(redis: ArqRedis) -> None:
    one, other = liveness(redis, "one"), liveness(redis, "other")
    await queued(redis, "b:1")
    await deferred(redis, "b:later")
    assert await one.take("b:later", IN_PROGRESS_MS, NOW_MS) is False  # deferred: not yet
    assert await one.take("b:gone", IN_PROGRESS_MS, NOW_MS) is False  # finished: not queued
    assert await one.take("b:1", IN_PROGRESS_MS, NOW_MS)
    assert await other.take("b:1", IN_PROGRESS_MS, NOW_MS) is False  # held by one
    assert await retry_last_call(one).take("b:1", IN_PROGRESS_MS, NOW_MS)  # still one's
    assert await redis.get(keys.arq_in_progress("b:1")) == b"one"
    assert 0 < await redis.pttl(keys.arq_in_progress("b:1")) <= IN_PROGRESS_MS
    assert await redis.smembers(keys.worker_leases("one")) == {b"b:1"}  # type: ignore[misc]


async def test_several_jobs_are_taken_in_one_step_each_on_its_own(redis: ArqRedis) -> None:
    one, other = liveness(redis, "one"), liveness(redis, "other")
    await queued(redis, "b:1", "b:2", "b:3")
    await deferred(redis, "b:later")
    assert await other.take("b:2", IN_PROGRESS_MS, NOW_MS)
    jobs = ["b:1", "b:2", "b:gone", "b:later", "b:3"]
    assert await one.take_many(jobs, IN_PROGRESS_MS, NOW_MS) == [True, False, False, False, True]
    assert await redis.smembers(keys.worker_leases("one")) == {b"b:1", b"b:3"}  # type: ignore[misc]
    assert await redis.get(keys.arq_in_progress("b:2")) == b"other"
    assert await other.take_many(["b:1", "b:later"], IN_PROGRESS_MS, NOW_MS) == [False, False]
    assert await redis.exists(keys.worker_leases("other")) == 1  # its one lease, untouched
    assert await redis.smembers(keys.worker_leases("other")) == {b"b:2"}  # type: ignore[misc]


async def test_a_dead_workers_jobs_go_back_to_the_queue_once(redis: ArqRedis) -> None:
    dead, alive = liveness(redis, "dead", ttl=0.2), liveness(redis, "alive")
    await queued(redis, "b:1", "b:2", "b:3")
    for worker, job in ((dead, "b:1"), (dead, "b:2"), (alive, "b:3")):
        await worker.take(job, IN_PROGRESS_MS, NOW_MS)
    await dead.beat(["b:1", "b:2"])
    await alive.beat(["b:3"])
    assert await alive.reap() == []  # the dead one still has a heartbeat
    await asyncio.sleep(0.3)

    assert sorted(await alive.reap()) == ["b:1", "b:2"]
    assert not await redis.exists(keys.arq_in_progress("b:1"), keys.arq_in_progress("b:2"))
    assert await redis.get(keys.arq_in_progress("b:3")) == b"alive"  # a live worker's job is untouched
    assert await redis.zrange(keys.QUEUE, 0, -1) == [b"b:1", b"b:2", b"b:3"]
    assert await redis.zscore(keys.QUEUE, "b:1") == 1000  # queue entries keep their place
    assert not await redis.exists(keys.worker_leases("dead"))
    assert await alive.reap() == []

    listed = {w.worker_id: w for w in await list_workers(redis)}
    assert (listed["alive"].live, listed["alive"].in_flight) == (True, 1)
    assert (listed["dead"].live, listed["dead"].in_flight) == (False, 0)
    assert listed["alive"].facts["max_jobs"] == 4


async def test_a_job_finished_or_taken_over_is_not_handed_back(redis: ArqRedis) -> None:
    dead, alive = liveness(redis, "dead", ttl=0.2), liveness(redis, "alive")
    await queued(redis, "b:taken", "b:done")
    await dead.take("b:done", IN_PROGRESS_MS, NOW_MS)
    await dead.take("b:taken", IN_PROGRESS_MS, NOW_MS)
    await dead.beat(["b:done", "b:taken"])
    # b:done finished after the last beat (arq removed its keys); b:taken was handed back by
    # arq (a shutdown) and the live worker took it
    await redis.delete(keys.arq_job("b:done"), keys.arq_in_progress("b:done"))
    await redis.zrem(keys.QUEUE, "b:done")
    await redis.delete(keys.arq_in_progress("b:taken"))
    await alive.take("b:taken", IN_PROGRESS_MS, NOW_MS)
    await asyncio.sleep(0.3)

    assert await alive.reap() == []
    assert await redis.get(keys.arq_in_progress("b:taken")) == b"alive"
    assert await redis.zrange(keys.QUEUE, 0, -1) == [b"b:taken"]


async def test_a_beat_adds_running_drops_released_and_a_clean_stop_withdraws(redis: ArqRedis) -> None:
    worker = liveness(redis, "w")
    await worker.beat(["b:1", "b:2"])
    await worker.beat(["b:2", "b:3"], released=["b:1", "b:3"])  # b:3 ended and was taken again
    assert await redis.smembers(keys.worker_leases("w")) == {b"b:2", b"b:3"}  # type: ignore[misc]
    await worker.beat([], released=["b:2", "b:3"])
    assert not await redis.exists(keys.worker_leases("w"))
    await worker.withdraw()
    assert await list_workers(redis) == []
    assert not await redis.exists(keys.worker("w"))


async def test_a_claim_reads_the_job_and_counts_each_try_once(redis: ArqRedis) -> None:
    one = liveness(redis, "one")
    await queued(redis, "b:1")
    await redis.zadd(keys.QUEUE, {"b:gone": 1000})  # its value expired
    [first, gone], _ = await one.claim(["b:1", "b:gone"], IN_PROGRESS_MS, NOW_MS)
    # a first try's score is not read (nothing but a try moves it); a job without its value is
    # told apart from a finished one by its queue entry
    assert first == Claim(None, b"payload", 1) and gone == Claim(1000, None, 1)
    [again], _ = await retry_last_call(one).claim(["b:1"], IN_PROGRESS_MS, NOW_MS)  # the same try
    assert again == Claim(1000, b"payload", 1)
    await redis.delete(keys.arq_in_progress("b:1"))  # handed back (a reaper, a Retry)
    [second], _ = await one.claim(["b:1"], IN_PROGRESS_MS, NOW_MS)
    assert second == Claim(1000, b"payload", 2)
    await deferred(redis, "b:later")
    other = liveness(redis, "other")
    # another worker learns which jobs one runs; a job not due yet is left as it was
    assert await other.claim(["b:1", "b:later"], IN_PROGRESS_MS, NOW_MS) == ([None, None], {"b:1"})
    assert await redis.exists(keys.arq_in_progress("b:later")) == 0
    assert 0 < await redis.ttl(keys.arq_retry("b:1")) <= RETRY_KEY_SECONDS


async def test_a_job_another_worker_runs_costs_one_command_and_only_a_retried_call_reads_its_holder(
    redis: ArqRedis,
) -> None:
    one, other = liveness(redis, "one"), liveness(redis, "other")
    jobs = [f"b:{n}" for n in range(10)]
    await queued(redis, *jobs)
    await other.take_many(jobs, IN_PROGRESS_MS, NOW_MS)
    await redis.config_resetstat()
    assert await one.claim(jobs, IN_PROGRESS_MS, NOW_MS) == ([None] * 10, set(jobs))
    assert await command_calls(redis) == {"evalsha": 1, "set": 11}  # its call number, and one SET NX a job
    # a call of other's retried after it ran: its jobs are still its own, each try counted once
    [claim, *_], busy = await retry_last_call(other).claim(jobs, IN_PROGRESS_MS, NOW_MS)
    assert claim == Claim(1000, b"payload", 1) and not busy
    assert await redis.smembers(keys.worker_leases("other")) == {j.encode() for j in jobs}  # type: ignore[misc]


async def test_a_first_try_costs_three_commands_and_a_job_finished_meanwhile_is_not_taken(
    redis: ArqRedis,
) -> None:
    one = liveness(redis, "one")
    jobs = [f"b:{n}" for n in range(10)]
    await queued(redis, *jobs)
    await redis.config_resetstat()
    claims, busy = await one.claim(jobs, IN_PROGRESS_MS, NOW_MS)
    assert claims == [Claim(None, b"payload", 1)] * 10 and not busy
    # per job SET NX (in progress), GET (value), SET NX (retry); per call SET (its number),
    # SADD + PEXPIRE (leases)
    assert await command_calls(redis) == {"evalsha": 1, "set": 21, "get": 10, "sadd": 1, "pexpire": 1}
    # polled by another worker before one finished it (the record script: keys gone, dequeued)
    await redis.delete(keys.arq_job("b:0"), keys.arq_retry("b:0"), keys.arq_in_progress("b:0"))
    await redis.zrem(keys.QUEUE, "b:0")
    assert await liveness(redis, "other").claim(["b:0"], IN_PROGRESS_MS, NOW_MS) == ([None], set())
    assert await redis.exists(keys.arq_in_progress("b:0"), keys.arq_retry("b:0")) == 0
