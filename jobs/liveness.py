"""Worker liveness: heartbeats, job leases, and a reaper that hands a dead worker's lines back.

arq alone re-runs a killed worker's job only when its in-progress key expires
(``RR_JOB_TIMEOUT + 10 s``).  Here every worker renews a short-lived heartbeat key and the set
of jobs it runs (its leases) every ``RR_HEARTBEAT_SECONDS``.  Any live worker, on the same beat,
runs the reaper: for each registered worker whose heartbeat has expired it deletes arq's
in-progress key of each leased job (unless a live worker leases it) and makes sure the job is
in the queue, all in one Lua script.  A slow worker keeps beating, so its lines are never taken
from it; a killed one's lines are queued again within ``RR_WORKER_TTL_SECONDS +
RR_HEARTBEAT_SECONDS``.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from jobs import keys

FORGET_AFTER_MS = 3_600_000
"""A worker's registry entry is dropped this long after its last heartbeat."""

BEAT_LUA = """
local registry, heartbeat, leases = KEYS[1], KEYS[2], KEYS[3]
local worker_id, ttl, info, keep = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local t = redis.call('TIME')
redis.call('SET', heartbeat, info, 'PX', ttl)
redis.call('ZADD', registry, t[1] * 1000 + math.floor(t[2] / 1000), worker_id)
redis.call('DEL', leases)
if #ARGV > 4 then
  redis.call('SADD', leases, unpack(ARGV, 5))
  redis.call('PEXPIRE', leases, keep)
end
return 1
"""

REAP_LUA = """
local registry, queue = KEYS[1], KEYS[2]
local worker_prefix, progress_prefix, job_prefix = ARGV[1], ARGV[2], ARGV[3]
local forget = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local live, dead = {}, {}
for _, worker in ipairs(redis.call('ZRANGE', registry, 0, -1)) do
  if redis.call('EXISTS', worker_prefix .. worker) == 1 then
    live[#live + 1] = worker
  else
    dead[#dead + 1] = worker
  end
end
local handed = {}
for _, worker in ipairs(dead) do
  local leases = worker_prefix .. worker .. ':leases'
  for _, job in ipairs(redis.call('SMEMBERS', leases)) do
    local held = false
    for _, other in ipairs(live) do
      if redis.call('SISMEMBER', worker_prefix .. other .. ':leases', job) == 1 then
        held = true
        break
      end
    end
    if not held and redis.call('DEL', progress_prefix .. job) == 1 then
      if redis.call('EXISTS', job_prefix .. job) == 1 then
        redis.call('ZADD', queue, 'NX', now, job)
        handed[#handed + 1] = job
      end
    end
  end
  redis.call('DEL', leases)
end
redis.call('ZREMRANGEBYSCORE', registry, '-inf', now - forget)
return handed
"""


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Liveness:
    """One worker's heartbeat and leases, and the reaper it runs for the others."""

    def __init__(self, redis: Redis, *, worker_id: str, ttl_seconds: float, lease_keep_seconds: float,
                 facts: dict[str, Any]) -> None:  # fmt: skip
        self.redis = redis
        self.worker_id = worker_id
        self.ttl_ms = int(ttl_seconds * 1000)
        self.lease_keep_ms = int(lease_keep_seconds * 1000)
        self.info = orjson.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), **facts, "started_at": round(time.time(), 3)}
        )
        self._beat = redis.register_script(BEAT_LUA)
        self._reap = redis.register_script(REAP_LUA)

    async def beat(self, jobs: Iterable[str]) -> None:
        """Renew the heartbeat and replace the lease set with ``jobs``."""
        await self._beat(
            keys=[keys.WORKERS, keys.worker(self.worker_id), keys.worker_leases(self.worker_id)],
            args=[self.worker_id, self.ttl_ms, self.info, self.lease_keep_ms, *sorted(jobs)],
        )

    async def reap(self) -> list[str]:
        """Hand dead workers' jobs back to the queue; returns their job ids."""
        handed = await self._reap(
            keys=[keys.WORKERS, keys.QUEUE],
            args=[keys.WORKER_PREFIX, keys.ARQ_IN_PROGRESS_PREFIX, keys.ARQ_JOB_PREFIX, FORGET_AFTER_MS],
        )
        return [job.decode() if isinstance(job, bytes) else str(job) for job in handed]

    async def withdraw(self) -> None:
        """A clean stop: arq has already handed back what was running."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.worker(self.worker_id), keys.worker_leases(self.worker_id))
            pipe.zrem(keys.WORKERS, self.worker_id)
            await pipe.execute()


@dataclass
class WorkerInfo:
    worker_id: str
    live: bool
    last_seen_s: float
    """Seconds since the last heartbeat (Redis clock)."""
    in_flight: int
    facts: dict[str, Any]


async def list_workers(redis: Redis) -> list[WorkerInfo]:
    """Registered workers, live first, with the number of jobs each holds (a stale worker's
    leases are what the reaper has not handed back yet)."""
    seconds, micros = cast(tuple[int, int], await redis.time())
    now_ms = seconds * 1000 + micros // 1000
    entries = cast(list[tuple[bytes, float]], await redis.zrange(keys.WORKERS, 0, -1, withscores=True))
    async with redis.pipeline(transaction=False) as pipe:
        for raw_id, _ in entries:
            pipe.get(keys.worker(raw_id.decode()))
            pipe.scard(keys.worker_leases(raw_id.decode()))
        replies = await pipe.execute()
    found = []
    for n, (raw_id, seen_ms) in enumerate(entries):
        heartbeat, in_flight = replies[2 * n], replies[2 * n + 1]
        found.append(
            WorkerInfo(
                worker_id=raw_id.decode(),
                live=heartbeat is not None,
                last_seen_s=max(now_ms - seen_ms, 0) / 1000,
                in_flight=int(in_flight),
                facts=orjson.loads(heartbeat) if heartbeat else {},
            )
        )
    return sorted(found, key=lambda w: (not w.live, w.last_seen_s))
