"""Worker liveness: heartbeats, job leases, and a reaper that hands a dead worker's lines back.

arq alone re-runs a killed worker's job only when its in-progress key expires
(``RR_JOB_TIMEOUT + 10 s``).  Here a worker marks a job in progress (arq's key, holding the
worker's id) and leases it (a set per worker) in one atomic step (:meth:`Liveness.take`), so no
crash can leave a running job unleased, and renews a short-lived heartbeat key and its leases
every ``RR_HEARTBEAT_SECONDS``.  On the same beat any live worker runs the reaper: for each
registered worker whose heartbeat has expired, it deletes the in-progress key of every leased
job that the dead worker still holds and makes sure the job is in the queue, in one Lua script.
A slow worker keeps beating, so its lines are never taken from it; a killed one's lines are
queued again within ``RR_WORKER_TTL_SECONDS + RR_HEARTBEAT_SECONDS``.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from jobs import keys

__all__ = [
    "BEAT_LUA",
    "FORGET_AFTER_MS",
    "REAP_LUA",
    "RETRY_KEY_SECONDS",
    "TAKE_LUA",
    "Claim",
    "Liveness",
    "WorkerInfo",
    "list_workers",
    "new_worker_id",
]

RETRY_KEY_SECONDS = 88_400
"""arq's lifetime of a job's retry counter (its ``run_job`` sets the same)."""
FORGET_AFTER_MS = 3_600_000
"""A worker's registry entry is dropped this long after its last heartbeat."""

TAKE_LUA = """
local queue, leases, claim = KEYS[1], KEYS[2], KEYS[3]
local worker_id, ttl, now, keep = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local progress_prefix, job_prefix, retry_prefix, retry_ttl = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
-- only a call retried after it ran can find jobs already held by this worker (the caller never
-- asks for a job it runs), so only then is a job's holder read
local retried = redis.call('SET', claim, ARGV[9], 'GET', 'PX', keep) == ARGV[9]
local replies, taken = {}, {}
for i = 10, #ARGV do
  local job = ARGV[i]
  local in_progress = progress_prefix .. job
  local fresh = redis.call('SET', in_progress, worker_id, 'NX', 'PX', ttl)
  local again = not fresh and retried and redis.call('GET', in_progress) == worker_id
  local reply = {-2}
  if fresh or again then
    reply = {-1}
    local retry = retry_prefix .. job
    local value = redis.call('GET', job_prefix .. job)
    local try, score = 1, -3
    -- a job never tried is queued as the poll found it, due: only a try moves a job's score or
    -- takes it off the queue (a finish deletes its value and retry counter with it), so the
    -- score of a first try is not read
    if not (fresh and value and redis.call('SET', retry, 1, 'NX', 'EX', retry_ttl)) then
      local queued = redis.call('ZSCORE', queue, job)
      score = queued and tonumber(queued) <= now and tonumber(queued)
      if score and again then
        -- a call retried after it ran: this worker already counted this try
        redis.call('PEXPIRE', in_progress, ttl)
        try = tonumber(redis.call('GET', retry) or '1')
      elseif score and value then
        try = redis.call('INCR', retry)
        redis.call('EXPIRE', retry, retry_ttl)
      end
    end
    if score then
      taken[#taken + 1] = job
      reply = {score, value or false, try}
    elseif fresh then
      redis.call('DEL', in_progress)
    end
  end
  replies[#replies + 1] = reply
end
if #taken > 0 then
  redis.call('SADD', leases, unpack(taken))
  redis.call('PEXPIRE', leases, keep)
end
return replies
"""
"""Claims jobs: for each one due and held by nobody else, marks it in progress (arq's key,
holding the worker's id), reads its value and counts its try (arq's retry key, as arq's
``run_job`` start pipeline does; a first try costs one ``SET NX`` instead of ``INCR`` +
``EXPIRE``; no ``SET NX GET``, which needs Redis 7), and leases it.  Answers
``{score, value, try}`` per job (score ``-3``: a first try, whose score was not read),
``{-1}`` when not taken (not due, not queued), ``{-2}`` when another worker runs it.  The
in-progress key is set first (undone when the job is not taken): a first try costs three
commands (``SET NX`` in progress, ``GET`` value, ``SET NX`` retry), a later one five (plus
``ZSCORE``, ``INCR`` + ``EXPIRE`` instead of the ``SET NX``), one another worker runs one
(with several workers each poll meets the others' running jobs at the head of the queue).
Each call carries its number (one ``SET GET`` a call, Redis 6.2+): a job held by this worker
is told apart from one held by another (a ``GET`` of its holder) only in a call retried after
it ran, so claims must not overlap (the poll loop makes them one at a time)."""


BEAT_LUA = """
local registry, heartbeat, leases = KEYS[1], KEYS[2], KEYS[3]
local worker_id, ttl, info, keep = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local released = tonumber(ARGV[5])
local t = redis.call('TIME')
redis.call('SET', heartbeat, info, 'PX', ttl)
redis.call('ZADD', registry, t[1] * 1000 + math.floor(t[2] / 1000), worker_id)
if released > 0 then
  redis.call('SREM', leases, unpack(ARGV, 6, 5 + released))
end
if #ARGV > 5 + released then
  redis.call('SADD', leases, unpack(ARGV, 6 + released))
end
redis.call('PEXPIRE', leases, keep)
return 1
"""

REAP_LUA = """
local registry, queue = KEYS[1], KEYS[2]
local worker_prefix, progress_prefix, job_prefix = ARGV[1], ARGV[2], ARGV[3]
local forget = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local dead = {}
for _, worker in ipairs(redis.call('ZRANGE', registry, 0, -1)) do
  if redis.call('EXISTS', worker_prefix .. worker) == 0 then
    dead[#dead + 1] = worker
  end
end
local handed = {}
for _, worker in ipairs(dead) do
  local leases = worker_prefix .. worker .. ':leases'
  for _, job in ipairs(redis.call('SMEMBERS', leases)) do
    -- arq's in-progress key names its holder: hand back only what the dead worker still holds
    if redis.call('GET', progress_prefix .. job) == worker then
      redis.call('DEL', progress_prefix .. job)
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


@dataclass(frozen=True, slots=True)
class Claim:
    """A job this worker took: its queue score (None: a first try, due, whose score was not
    read), its value (None: expired, gone) and its try."""

    score: int | None
    value: bytes | None
    job_try: int


BUSY, FIRST_TRY = -2, -3


def _claim(reply: list[Any]) -> Claim | None:
    score = int(reply[0])
    if score < 0 and score != FIRST_TRY:
        return None
    return Claim(None if score == FIRST_TRY else score, reply[1], int(reply[2]))


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
        self._take = redis.register_script(TAKE_LUA)
        self._calls = itertools.count(1)
        self._beat = redis.register_script(BEAT_LUA)
        self._reap = redis.register_script(REAP_LUA)

    async def take(self, job: str, in_progress_ms: int, now_ms: int) -> bool:
        """Mark ``job`` in progress (arq's key, holding this worker's id) and lease it, in one
        step, if it is due and nobody else runs it: whether it was taken.  A call retried after
        it ran takes again what it took (a command retried after it ran)."""
        return (await self.take_many([job], in_progress_ms, now_ms))[0]

    async def take_many(self, jobs: Sequence[str], in_progress_ms: int, now_ms: int) -> list[bool]:
        """:meth:`take` for several jobs in one round trip (each taken or not on its own)."""
        claims, _ = await self.claim(jobs, in_progress_ms, now_ms)
        return [claim is not None for claim in claims]

    async def claim(
        self, jobs: Sequence[str], in_progress_ms: int, now_ms: int
    ) -> tuple[list[Claim | None], set[str]]:
        """:meth:`take_many`, answering for each job taken its value and try number too (what
        arq's ``run_job`` reads in its own round trip before it runs a job), and which of the
        jobs not taken another worker runs."""
        replies = await self._take(
            keys=[keys.QUEUE, keys.worker_leases(self.worker_id), keys.worker_claim(self.worker_id)],
            args=[
                self.worker_id,
                in_progress_ms,
                now_ms,
                self.lease_keep_ms,
                keys.ARQ_IN_PROGRESS_PREFIX,
                keys.ARQ_JOB_PREFIX,
                keys.ARQ_RETRY_PREFIX,
                RETRY_KEY_SECONDS,
                next(self._calls),
                *jobs,
            ],
        )
        claims = [_claim(reply) for reply in replies]
        return claims, {job for job, r in zip(jobs, replies, strict=True) if int(r[0]) == BUSY}

    async def beat(self, running: Iterable[str], released: Iterable[str] = ()) -> None:
        """Renew the heartbeat; lease ``running`` and drop the leases of ``released`` jobs."""
        gone = sorted(set(released) - set(running))
        await self._beat(
            keys=[keys.WORKERS, keys.worker(self.worker_id), keys.worker_leases(self.worker_id)],
            args=[
                self.worker_id,
                self.ttl_ms,
                self.info,
                self.lease_keep_ms,
                len(gone),
                *gone,
                *sorted(running),
            ],
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
            own = (keys.worker, keys.worker_leases, keys.worker_claim)
            pipe.delete(*(key(self.worker_id) for key in own))
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
