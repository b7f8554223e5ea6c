"""Heartbeats, leases and the reaper against a real Redis (jobs/liveness.py)."""

from __future__ import annotations

import asyncio

from arq import ArqRedis

from jobs import keys
from jobs.liveness import Liveness, list_workers


def liveness(redis: ArqRedis, worker_id: str, ttl: float = 60.0) -> Liveness:
    return Liveness(
        redis, worker_id=worker_id, ttl_seconds=ttl, lease_keep_seconds=600, facts={"max_jobs": 4}
    )


async def running(redis: ArqRedis, *jobs: str) -> None:
    """What arq leaves in Redis for jobs that a worker is running."""
    for job in jobs:
        await redis.set(keys.arq_job(job), b"payload")
        await redis.set(keys.arq_in_progress(job), b"1", px=310_000)
        await redis.zadd(keys.QUEUE, {job: 1000})


async def test_a_dead_workers_jobs_go_back_to_the_queue(redis: ArqRedis) -> None:
    dead, alive = liveness(redis, "dead", ttl=0.2), liveness(redis, "alive")
    await running(redis, "b:1", "b:2", "b:3")
    await dead.beat(["b:1", "b:2"])
    await alive.beat(["b:3"])
    assert await alive.reap() == []  # the dead one still has a heartbeat
    await asyncio.sleep(0.3)

    assert sorted(await alive.reap()) == ["b:1", "b:2"]
    assert not await redis.exists(keys.arq_in_progress("b:1"), keys.arq_in_progress("b:2"))
    assert await redis.exists(keys.arq_in_progress("b:3"))  # a live worker's job is untouched
    assert await redis.zrange(keys.QUEUE, 0, -1) == [b"b:1", b"b:2", b"b:3"]
    assert await redis.zscore(keys.QUEUE, "b:1") == 1000  # queue entries keep their place
    assert not await redis.exists(keys.worker_leases("dead"))
    assert await alive.reap() == []  # handed back once

    listed = {w.worker_id: w for w in await list_workers(redis)}
    assert (listed["alive"].live, listed["alive"].in_flight) == (True, 1)
    assert (listed["dead"].live, listed["dead"].in_flight) == (False, 0)
    assert listed["alive"].facts["max_jobs"] == 4


async def test_a_finished_job_or_one_leased_by_a_live_worker_is_not_queued_again(redis: ArqRedis) -> None:
    dead, alive = liveness(redis, "dead", ttl=0.2), liveness(redis, "alive")
    await running(redis, "b:taken")
    await dead.beat(["b:done", "b:taken"])  # b:done finished after the last beat: arq removed its keys
    await alive.beat(["b:taken"])  # b:taken was handed back and picked up by the live worker
    await asyncio.sleep(0.3)

    assert await alive.reap() == []
    assert await redis.exists(keys.arq_in_progress("b:taken"))
    assert not await redis.exists(keys.arq_job("b:done"))
    assert await redis.zrange(keys.QUEUE, 0, -1) == [b"b:taken"]


async def test_a_beat_replaces_the_leases_and_a_clean_stop_withdraws(redis: ArqRedis) -> None:
    worker = liveness(redis, "w")
    await worker.beat(["b:1", "b:2"])
    await worker.beat(["b:2"])
    assert await redis.smembers(keys.worker_leases("w")) == {b"b:2"}  # type: ignore[misc]
    await worker.beat([])
    assert not await redis.exists(keys.worker_leases("w"))
    await worker.withdraw()
    assert await list_workers(redis) == []
    assert not await redis.exists(keys.worker("w"))
