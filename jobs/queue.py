"""Pipelined, idempotent enqueue of dataset lines as arq jobs.

Each chunk of lines takes two round trips.  A small read-only script (:data:`CHECK_LUA`) says
per line whether it is new (no result, no job, not running), queued or running, or done.  Then
one MULTI/EXEC transaction writes the new lines' jobs with plain ``SET NX PX`` (a job value never
passes through Lua: handing Redis's Lua a 4 KB string and setting it from there costs about ten
times a plain ``SET``, docs/performance.md), the line set and the batch's total
(:data:`ENQUEUE_LUA`, ids and line numbers only) and their queue entries, all or nothing.  Job
ids are ``batch:line id``, so running the same enqueue again adds nothing (a resume).  A line
that a concurrent enqueue of the same batch adds between the two steps is written once (``NX``);
one that then also finishes is at worst queued again, and a worker skips a line whose record
already exists.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from jobs import keys
from jobs.dataset import DatasetLine, trusted_line
from jobs.docstore import STORE_MIN_BYTES, DocumentWriter
from jobs.identity import RunIdentity
from jobs.payload import line_payload
from jobs.serializer import serialize
from jobs.verbatim import VerbatimJobs, VerbatimLine

__all__ = [
    "CHECK_LUA",
    "CHUNK_BYTES",
    "CHUNK_LINES",
    "ENQUEUE_LUA",
    "IN_FLIGHT",
    "REGISTER_LUA",
    "BatchConflictError",
    "EnqueueCounts",
    "document_ttl_ms",
    "enqueue_lines",
    "register_batch",
]

CHUNK_LINES = 500
CHUNK_BYTES = 4 * 1024 * 1024
"""A chunk closes at whichever limit comes first, so long lines cannot blow up memory."""
IN_FLIGHT = 2
"""Chunk writes sent and not yet answered: Redis always has the next one while this process
builds a third.  Each chunk is idempotent on its own, so their order does not matter."""
NEW, QUEUED, DONE = ord("n"), ord("q"), ord("d")

CHECK_LUA = """
local job_prefix, progress_prefix, result_prefix = ARGV[1], ARGV[2], ARGV[3]
local found = {}
for i = 4, #ARGV do
  local jid = ARGV[i]
  local result_key = result_prefix .. jid
  if redis.call('EXISTS', result_key, job_prefix .. jid, progress_prefix .. jid) == 0 then
    found[#found + 1] = 'n'
  elseif redis.call('EXISTS', result_key) == 1 then
    found[#found + 1] = 'd'
  else
    found[#found + 1] = 'q'
  end
end
return table.concat(found)
"""
"""Per job id: ``n`` new, ``q`` queued or running, ``d`` done (its record exists)."""

ENQUEUE_LUA = """
local batch_key, legacy_lines = KEYS[1], KEYS[2]
local lines_prefix, lines_ttl, bucket_size = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local new_lines = 0
if redis.call('EXISTS', legacy_lines) == 1 then
  local members = {}
  for i = 4, #ARGV, 2 do
    members[#members + 1] = ARGV[i + 1]
    members[#members + 1] = ARGV[i]
  end
  new_lines = redis.call('ZADD', legacy_lines, 'NX', unpack(members))
else
  local buckets, top = {}, -1
  for i = 4, #ARGV, 2 do
    local bucket = math.floor(tonumber(ARGV[i + 1]) / bucket_size)
    local members = buckets[bucket]
    if not members then
      members = {}
      buckets[bucket] = members
    end
    members[#members + 1] = ARGV[i + 1]
    members[#members + 1] = ARGV[i]
    if bucket > top then
      top = bucket
    end
  end
  for bucket, members in pairs(buckets) do
    local key = lines_prefix .. bucket
    new_lines = new_lines + redis.call('ZADD', key, 'NX', unpack(members))
    if lines_ttl > 0 then
      redis.call('PEXPIRE', key, lines_ttl)
    end
  end
  if top + 1 > tonumber(redis.call('HGET', batch_key, 'line_buckets') or '0') then
    redis.call('HSET', batch_key, 'line_buckets', top + 1)
  end
end
if new_lines > 0 then
  redis.call('HINCRBY', batch_key, 'total', new_lines)
end
return new_lines
"""
"""The chunk's lines (member, line number) into the batch's line set, new ones counted in its
total; runs in the transaction that writes the chunk's new jobs."""


@dataclass
class EnqueueCounts:
    added: int = 0
    already_queued: int = 0
    already_done: int = 0

    @property
    def skipped(self) -> int:
        return self.already_queued + self.already_done


REGISTER_LUA = """
local batch_key, batches = KEYS[1], KEYS[2]
local run, identity, source, default_model = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, ttl = ARGV[5], tonumber(ARGV[6])
local current = redis.call('HGET', batch_key, 'run')
if current and current ~= run then
  return {0, redis.call('HGET', batch_key, 'identity') or ''}
end
if not current and redis.call('EXISTS', batch_key) == 1 then
  return {0, ''}
end
redis.call('HSETNX', batch_key, 'created_at', now)
redis.call('HSET', batch_key, 'run', run, 'identity', identity, 'source', source,
  'default_model', default_model)
redis.call('HDEL', batch_key, 'cancelled')
redis.call('ZADD', batches, 'NX', now, ARGV[7])
if ttl > 0 then
  redis.call('PEXPIRE', batch_key, ttl)
end
return {1, ''}
"""


class BatchConflictError(Exception):
    """The batch name already holds a run of other content (lines, model or settings)."""

    def __init__(self, batch: str, stored: dict[str, Any] | None) -> None:
        super().__init__(f"batch {batch!r} already holds another run")
        self.batch = batch
        self.stored = stored


async def register_batch(redis: Redis, batch: str, identity: RunIdentity, source: str, ttl_ms: int) -> None:
    """Create the batch, or resume it when it holds the same run; raises
    :class:`BatchConflictError` when the name holds another run (never mixing the two)."""
    script = redis.register_script(REGISTER_LUA)
    summary = orjson.dumps(identity.summary())
    created, stored = await script(
        keys=[keys.batch(batch), keys.BATCHES],
        args=[identity.digest, summary, source, identity.default_model, f"{time.time():.3f}", ttl_ms, batch],
    )
    if not created:
        raise BatchConflictError(batch, orjson.loads(stored) if stored else None)


def document_ttl_ms(result_ttl_ms: int, job_expiry_ms: int) -> int:
    """How long a batch's stored documents must live: as long as its records (0: forever), and
    never less than its queued jobs."""
    return max(result_ttl_ms, job_expiry_ms) if result_ttl_ms else 0


@dataclass
class _Chunk:
    enqueue_ms: int
    job_ids: list[str] = field(default_factory=list)
    lines: list[str | int] = field(default_factory=list)
    """member, line number, member, line number, ... (:data:`ENQUEUE_LUA`'s arguments)"""
    jobs: list[bytes] = field(default_factory=list)
    documents: dict[str, bytes] = field(default_factory=dict)
    size: int = 0


async def enqueue_lines(  # noqa: C901 (one flat loop; its helpers share its state)
    redis: Redis,
    batch: str,
    lines: Iterable[DatasetLine | VerbatimLine],
    *,
    default_model: str,
    run: str,
    no_cache: bool = False,
    corpus: str | None = None,
    job_expiry_ms: int,
    result_ttl_ms: int,
    on_chunk: Callable[[EnqueueCounts], None] | None = None,
    store_min_bytes: int = STORE_MIN_BYTES,
) -> EnqueueCounts:
    check, commit = redis.register_script(CHECK_LUA), redis.register_script(ENQUEUE_LUA)
    store = DocumentWriter(redis, document_ttl_ms(result_ttl_ms, job_expiry_ms), store_min_bytes)
    counts = EnqueueCounts()
    prefixes = [keys.ARQ_JOB_PREFIX, keys.ARQ_IN_PROGRESS_PREFIX, keys.RESULT_PREFIX]
    commit_keys = [keys.batch(batch), keys.batch_lines(batch)]
    buckets: list[str | int] = [keys.batch_line_bucket(batch, ""), result_ttl_ms, keys.LINES_PER_BUCKET]
    in_flight: deque[tuple[asyncio.Task[list[Any]], dict[str, bytes], EnqueueCounts]] = deque()
    checked: list[tuple[asyncio.Task[bytes], _Chunk]] = []

    async def settle(
        task: asyncio.Task[list[Any]], documents: dict[str, bytes], found: EnqueueCounts
    ) -> None:
        await task
        store.written(documents)
        counts.added += found.added
        counts.already_queued += found.already_queued
        counts.already_done += found.already_done
        if on_chunk:
            on_chunk(counts)

    async def send(pipe: Pipeline) -> list[Any]:
        async with pipe:
            return await pipe.execute()

    async def write(task: asyncio.Task[bytes], chunk: _Chunk) -> None:
        answer = await task
        statuses = answer.encode() if isinstance(answer, str) else answer  # one byte a line
        while len(in_flight) >= IN_FLIGHT:
            await settle(*in_flight.popleft())
        pipe = redis.pipeline(transaction=True)
        await store.queue_writes(pipe, chunk.documents)  # before the jobs: no worker sees a job without them
        queued: dict[str, int] = {}
        for n, status in enumerate(statuses):
            if status == NEW:
                job_id = chunk.job_ids[n]
                pipe.execute_command("SET", keys.arq_job(job_id), chunk.jobs[n], "PX", job_expiry_ms, "NX")
                queued[job_id] = chunk.enqueue_ms
        await commit(keys=commit_keys, args=[*buckets, *chunk.lines], client=pipe)
        if queued:
            pipe.zadd(keys.QUEUE, queued, nx=True)
        found = EnqueueCounts(len(queued), statuses.count(QUEUED), statuses.count(DONE))
        # Redis runs this chunk while the next one is read and built.
        in_flight.append((asyncio.ensure_future(send(pipe)), chunk.documents, found))

    async def flush(chunk: _Chunk) -> None:
        checking = asyncio.ensure_future(check(args=[*prefixes, *chunk.job_ids]))
        while checked:
            await write(*checked.pop())
        checked.append((checking, chunk))
        await asyncio.sleep(0)

    verbatim = VerbatimJobs(batch, default_model, run, corpus, no_cache)
    chunk = _Chunk(int(time.time() * 1000))
    for each in lines:
        if isinstance(each, VerbatimLine) and not store.active:
            job = verbatim.job(each)
            chunk.job_ids.append(keys.job_id(batch, each.key))
            chunk.lines += (each.member, each.line_no)
        else:
            line = trusted_line(each.line_no, each.raw) if isinstance(each, VerbatimLine) else each
            payload = line_payload(batch, line, line.model or default_model, run, corpus)
            if no_cache:
                payload["no_cache"] = True
            chunk.size += store.stash(payload, chunk.documents)
            job = serialize(payload)  # arq's envelope is put back when it is read (jobs.serializer)
            chunk.job_ids.append(keys.job_id(batch, line.id))
            chunk.lines += (keys.line_member(line.id), line.line_no)
        chunk.jobs.append(job)
        chunk.size += len(job)
        if len(chunk.jobs) >= CHUNK_LINES or chunk.size >= CHUNK_BYTES:
            await flush(chunk)
            chunk = _Chunk(int(time.time() * 1000))
    if chunk.jobs:
        await flush(chunk)
    while checked:
        await write(*checked.pop())
    while in_flight:
        await settle(*in_flight.popleft())
    if result_ttl_ms:  # a batch enqueued by an older version keeps its one line set
        await redis.pexpire(keys.batch_lines(batch), result_ttl_ms)
    return counts
