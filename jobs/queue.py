"""Pipelined, idempotent enqueue of dataset lines as arq jobs.

One Lua script call enqueues a whole chunk of lines atomically: a line whose job
is already queued or running, or whose result exists, is skipped; others get an
arq-compatible JSON job payload and a queue entry.  Job ids are ``batch:line id``,
so running the same enqueue again adds nothing (a resume).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import orjson
from arq.jobs import serialize_job
from redis.asyncio import Redis

from jobs import keys
from jobs.dataset import DatasetLine
from jobs.serializer import serialize

CHUNK_LINES = 500

ENQUEUE_LUA = """
local queue, batch_key, lines_key = KEYS[1], KEYS[2], KEYS[3]
local ttl, score = ARGV[1], ARGV[2]
local job_prefix, progress_prefix, result_prefix = ARGV[3], ARGV[4], ARGV[5]
local added, queued, done = 0, 0, 0
for i = 6, #ARGV, 4 do
  local jid, member, line_no, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('ZADD', lines_key, 'NX', line_no, member) == 1 then
    redis.call('HINCRBY', batch_key, 'total', 1)
  end
  if redis.call('EXISTS', result_prefix .. jid) == 1 then
    done = done + 1
  elseif redis.call('EXISTS', job_prefix .. jid, progress_prefix .. jid) > 0 then
    queued = queued + 1
  else
    redis.call('SET', job_prefix .. jid, payload, 'PX', ttl)
    redis.call('ZADD', queue, score, jid)
    added = added + 1
  end
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


def job_payload(batch: str, line: DatasetLine, model: str) -> dict[str, Any]:
    """The JSON argument of one ``rerank_line`` job: everything the worker and the
    result record need, nothing else."""
    payload: dict[str, Any] = {
        "batch": batch,
        "line": line.line_no,
        "id": line.id,
        "model": model,
        "query": line.query,
        "documents": line.documents,
    }
    for name in ("top_n", "rank_fields", "max_chunks_per_doc", "max_tokens_per_doc"):
        if (value := getattr(line, name)) is not None:
            payload[name] = value
    if line.return_documents:
        payload["return_documents"] = True
    if line.has_metadata:
        payload["metadata"] = line.metadata
    return payload


def member(line_id: str | int) -> str:
    """How a line id is kept in the batch's line set: JSON, so its type survives export."""
    return orjson.dumps(line_id).decode()


def _chunks(lines: Iterable[DatasetLine], size: int) -> Iterator[list[DatasetLine]]:
    iterator = iter(lines)
    while chunk := list(islice(iterator, size)):
        yield chunk


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
    for chunk in _chunks(lines, CHUNK_LINES):
        enqueue_ms = int(time.time() * 1000)
        args: list[Any] = [
            job_expiry_ms,
            enqueue_ms,
            keys.ARQ_JOB_PREFIX,
            keys.ARQ_IN_PROGRESS_PREFIX,
            keys.RESULT_PREFIX,
        ]
        for line in chunk:
            payload = job_payload(batch, line, line.model or default_model)
            job = serialize_job(keys.JOB_FUNCTION, (payload,), {}, None, enqueue_ms, serializer=serialize)
            args += [keys.job_id(batch, line.key), member(line.id), line.line_no, job]
        added, queued, done = await script(keys=script_keys, args=args)
        counts.added += added
        counts.already_queued += queued
        counts.already_done += done
        if on_chunk:
            on_chunk(counts)
    if result_ttl_ms:
        await redis.pexpire(keys.batch_lines(batch), result_ttl_ms)
    return counts
