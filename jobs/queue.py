"""Pipelined, idempotent enqueue of dataset lines as arq jobs.

One MULTI/EXEC transaction a chunk of lines, all or nothing: one ``MSET`` writes every line's job
value, then :data:`ENQUEUE_LUA` (job ids and line numbers only) sorts the lines out: a line whose
record exists is done (the value just written goes again unless its job is still queued or
running), one queued or running stays as it is, any other is new and gets a queue entry; every
job keeps an expiry.  Job values never pass through Lua: handing Redis's Lua a 4 KB string and setting it
from there costs about ten times a plain write (docs/performance.md).  Job ids are
``batch:line id``, so running the same enqueue again adds nothing (a resume).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from jobs import keys
from jobs.dataset import DatasetLine, trusted_line
from jobs.docstore import STORE_MIN_BYTES, DocumentWriter
from jobs.identity import RunIdentity
from jobs.payload import line_payload
from jobs.resp import Command, transaction
from jobs.serializer import serialize
from jobs.verbatim import VerbatimJobs, VerbatimLine

__all__ = [
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
"""Chunks sent and not yet answered: Redis always has the next one while this process builds
a third.  Each chunk is idempotent on its own, so their order does not matter."""

ENQUEUE_LUA = """
local queue, batch_key, legacy_lines = KEYS[1], KEYS[2], KEYS[3]
local ttl, score = ARGV[1], ARGV[2]
local job_prefix, progress_prefix, result_prefix = ARGV[3], ARGV[4], ARGV[5]
local lines_prefix, lines_ttl, bucket_size = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local first = 9
local new_lines = 0
if redis.call('EXISTS', legacy_lines) == 1 then
  local members = {}
  for i = first, #ARGV, 3 do
    members[#members + 1] = ARGV[i + 2]
    members[#members + 1] = ARGV[i + 1]
  end
  new_lines = redis.call('ZADD', legacy_lines, 'NX', unpack(members))
else
  local buckets, top = {}, -1
  for i = first, #ARGV, 3 do
    local bucket = math.floor(tonumber(ARGV[i + 2]) / bucket_size)
    local members = buckets[bucket]
    if not members then
      members = {}
      buckets[bucket] = members
    end
    members[#members + 1] = ARGV[i + 2]
    members[#members + 1] = ARGV[i + 1]
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
local added, queued, done, entries = 0, 0, 0, {}
if new_lines * 3 == #ARGV - first + 1 then
  -- every line of the chunk is new to the batch's line set: never enqueued in it before, so
  -- none is queued, running or done (the common first run skips three lookups a line)
  for i = first, #ARGV, 3 do
    redis.call('PEXPIRE', job_prefix .. ARGV[i], ttl)
    entries[#entries + 1] = score
    entries[#entries + 1] = ARGV[i]
  end
  redis.call('ZADD', queue, unpack(entries))
  return {new_lines, 0, 0}
end
for i = first, #ARGV, 3 do
  local jid = ARGV[i]
  local job_key = job_prefix .. jid
  local waiting = redis.call('ZSCORE', queue, jid) or redis.call('EXISTS', progress_prefix .. jid) == 1
  if redis.call('EXISTS', result_prefix .. jid) == 1 then
    done = done + 1
    if waiting then
      redis.call('PEXPIRE', job_key, ttl)
    else
      redis.call('DEL', job_key)
    end
  else
    redis.call('PEXPIRE', job_key, ttl)
    if waiting then
      queued = queued + 1
    else
      entries[#entries + 1] = score
      entries[#entries + 1] = jid
      added = added + 1
    end
  end
end
if added > 0 then
  redis.call('ZADD', queue, unpack(entries))
end
return {added, queued, done}
"""
"""Runs right after the chunk's ``MSET`` in its transaction, so a job value that is neither queued
nor running is one this chunk wrote (the ``MSET`` also dropped every value's expiry)."""


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


class _Chunk:
    """A chunk's two commands, built line by line: ``MSET`` of its job values and the
    :data:`ENQUEUE_LUA` that sorts its lines out."""

    def __init__(self, head: list[str | int], batch: str) -> None:
        self.jobs = Command("MSET")
        self.lines = Command("EVAL", ENQUEUE_LUA, 3, *head[:3], head[3], int(time.time() * 1000), *head[4:])
        self.documents: dict[str, bytes] = {}
        self.size = 0
        self._id_prefix = keys.job_id(batch, "").encode()
        self._job_prefix = keys.arq_job(keys.job_id(batch, "")).encode()

    def add(self, key: bytes, job: bytes, member: bytes, line_no: int) -> None:
        """A line's job value and its place in the script's arguments: ``key`` is its id as job
        ids write it, ``member`` as the line set keeps it (both UTF-8)."""
        job_prefix, id_prefix = self._job_prefix, self._id_prefix
        job_key = b"$%d\r\n%s%s\r\n$%d\r\n" % (len(job_prefix) + len(key), job_prefix, key, len(job))
        self.jobs.add_encoded(2, job_key, job, b"\r\n")
        number = b"%d" % line_no
        arguments = (len(id_prefix) + len(key), id_prefix, key, len(member), member, len(number), number)
        self.lines.add_encoded(3, b"$%d\r\n%s%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % arguments)
        self.size += len(job)


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
    documents_recur: bool = True,
) -> EnqueueCounts:
    """``documents_recur``: False when validation's sample of the documents found (almost) none
    recurring (:class:`jobs.docstore.DocumentSample`): the document store starts off."""
    ttl_ms = document_ttl_ms(result_ttl_ms, job_expiry_ms)
    store = DocumentWriter(redis, ttl_ms, store_min_bytes, recurring=documents_recur)
    counts = EnqueueCounts()
    head: list[str | int] = [
        *(keys.QUEUE, keys.batch(batch), keys.batch_lines(batch)),
        job_expiry_ms,  # the enqueue time follows it (each chunk's own)
        *(keys.ARQ_JOB_PREFIX, keys.ARQ_IN_PROGRESS_PREFIX, keys.RESULT_PREFIX),
        *(keys.batch_line_bucket(batch, ""), result_ttl_ms, keys.LINES_PER_BUCKET),
    ]
    in_flight: deque[tuple[asyncio.Task[list[Any]], dict[str, bytes]]] = deque()

    async def settle(task: asyncio.Task[list[Any]], documents: dict[str, bytes]) -> None:
        added, queued, done = (await task)[-1]
        store.written(documents)
        counts.added += added
        counts.already_queued += queued
        counts.already_done += done
        if on_chunk:
            on_chunk(counts)

    async def send(chunk: _Chunk) -> list[Any]:
        if chunk.documents:  # before the jobs: no worker sees a job without them
            pipe = redis.pipeline(transaction=False)
            await store.queue_writes(pipe, chunk.documents)
            async with pipe:
                await pipe.execute()
        return await transaction(redis, chunk.jobs, chunk.lines)

    async def flush(chunk: _Chunk) -> None:
        while len(in_flight) >= IN_FLIGHT:
            await settle(*in_flight.popleft())
        # Redis runs this chunk while the next one is read and built.
        in_flight.append((asyncio.ensure_future(send(chunk)), chunk.documents))
        await asyncio.sleep(0)

    verbatim = VerbatimJobs(batch, default_model, run, corpus, no_cache)
    chunk = _Chunk(head, batch)
    for each in lines:
        if isinstance(each, VerbatimLine) and not store.active:
            chunk.add(each.key, verbatim.job(each), each.member, each.line_no)
        else:
            line = trusted_line(each.line_no, each.raw) if isinstance(each, VerbatimLine) else each
            payload = line_payload(batch, line, line.model or default_model, run, corpus)
            if no_cache:
                payload["no_cache"] = True
            chunk.size += store.stash(payload, chunk.documents)
            job = serialize(payload)  # arq's envelope is put back when it is read (jobs.serializer)
            chunk.add(keys.line_key(line.id).encode(), job, keys.line_member(line.id).encode(), line.line_no)
        if chunk.jobs.count >= 1 + 2 * CHUNK_LINES or chunk.size >= CHUNK_BYTES:
            await flush(chunk)
            chunk = _Chunk(head, batch)
    if chunk.jobs.count > 1:
        await flush(chunk)
    while in_flight:
        await settle(*in_flight.popleft())
    if result_ttl_ms:  # a batch enqueued by an older version keeps its one line set
        await redis.pexpire(keys.batch_lines(batch), result_ttl_ms)
    return counts
