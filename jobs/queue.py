"""Pipelined, idempotent enqueue of dataset lines as arq jobs.

One Lua script call enqueues a whole chunk of lines atomically: a line whose job
is already queued or running, or whose result exists, is skipped; others get an
arq-compatible JSON job payload and a queue entry.  Job ids are ``batch:line id``,
so running the same enqueue again adds nothing (a resume).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgpack
from arq.jobs import serialize_job
from redis.asyncio import Redis

from jobs import keys
from jobs.dataset import DatasetLine
from jobs.payload import line_payload
from jobs.serializer import serialize

CHUNK_LINES = 500
CHUNK_BYTES = 4 * 1024 * 1024
"""A chunk closes at whichever limit comes first, so long lines cannot blow up memory."""

ENQUEUE_LUA = """
local queue, batch_key, lines_key = KEYS[1], KEYS[2], KEYS[3]
local ttl, score = ARGV[1], ARGV[2]
local job_prefix, progress_prefix, result_prefix = ARGV[3], ARGV[4], ARGV[5]
local lines = cmsgpack.unpack(ARGV[6])
local members = {}
for i = 1, #lines, 4 do
  members[#members + 1] = lines[i + 2]
  members[#members + 1] = lines[i + 1]
end
local new_lines = redis.call('ZADD', lines_key, 'NX', unpack(members))
if new_lines > 0 then
  redis.call('HINCRBY', batch_key, 'total', new_lines)
end
local added, queued, done, entries = 0, 0, 0, {}
for i = 1, #lines, 4 do
  local jid, payload = lines[i], lines[i + 3]
  local result_key = result_prefix .. jid
  if redis.call('EXISTS', result_key, job_prefix .. jid, progress_prefix .. jid) == 0 then
    redis.call('SET', job_prefix .. jid, payload, 'PX', ttl)
    entries[#entries + 1] = score
    entries[#entries + 1] = jid
    added = added + 1
  elseif redis.call('EXISTS', result_key) == 1 then
    done = done + 1
  else
    queued = queued + 1
  end
end
if added > 0 then
  redis.call('ZADD', queue, unpack(entries))
end
return {added, queued, done}
"""


@dataclass
class EnqueueCounts:
    added: int = 0
    already_queued: int = 0
    already_done: int = 0

    @property
    def skipped(self) -> int:
        return self.already_queued + self.already_done


async def register_batch(redis: Redis, batch: str, source: str, default_model: str, ttl_ms: int) -> None:
    now = time.time()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hsetnx(keys.batch(batch), "created_at", f"{now:.3f}")
        pipe.hset(keys.batch(batch), mapping={"source": source, "default_model": default_model})
        pipe.hdel(keys.batch(batch), "cancelled")
        pipe.zadd(keys.BATCHES, {batch: now}, nx=True)
        if ttl_ms:
            pipe.pexpire(keys.batch(batch), ttl_ms)
        await pipe.execute()


async def enqueue_lines(
    redis: Redis,
    batch: str,
    lines: Iterable[DatasetLine],
    *,
    default_model: str,
    job_expiry_ms: int,
    result_ttl_ms: int,
    on_chunk: Callable[[EnqueueCounts], None] | None = None,
) -> EnqueueCounts:
    script = redis.register_script(ENQUEUE_LUA)
    counts = EnqueueCounts()
    script_keys = [keys.QUEUE, keys.batch(batch), keys.batch_lines(batch)]
    in_flight: asyncio.Task[list[int]] | None = None

    async def settle(task: asyncio.Task[list[int]]) -> None:
        added, queued, done = await task
        counts.added += added
        counts.already_queued += queued
        counts.already_done += done
        if on_chunk:
            on_chunk(counts)

    async def flush(enqueue_ms: int, entries: list[Any]) -> None:
        nonlocal in_flight
        if in_flight:
            await settle(in_flight)
        prefixes = [keys.ARQ_JOB_PREFIX, keys.ARQ_IN_PROGRESS_PREFIX, keys.RESULT_PREFIX]
        # One packed argument per chunk: redis-py's per-argument encoding would cost more
        # than the script itself.
        args = [job_expiry_ms, enqueue_ms, *prefixes, msgpack.packb(entries, use_bin_type=False)]
        # Redis runs this chunk while the next one is read and built.
        in_flight = asyncio.ensure_future(script(keys=script_keys, args=args))
        await asyncio.sleep(0)

    enqueue_ms, entries, chunk_bytes = int(time.time() * 1000), [], 0
    for line in lines:
        payload = line_payload(batch, line, line.model or default_model)
        job = serialize_job(keys.JOB_FUNCTION, (payload,), {}, None, enqueue_ms, serializer=serialize)
        entries += [keys.job_id(batch, line.id), keys.line_member(line.id), line.line_no, job]
        chunk_bytes += len(job)
        if len(entries) >= 4 * CHUNK_LINES or chunk_bytes >= CHUNK_BYTES:
            await flush(enqueue_ms, entries)
            enqueue_ms, entries, chunk_bytes = int(time.time() * 1000), [], 0
    if entries:
        await flush(enqueue_ms, entries)
    if in_flight:
        await settle(in_flight)
    if result_ttl_ms:
        await redis.pexpire(keys.batch_lines(batch), result_ttl_ms)
    return counts
