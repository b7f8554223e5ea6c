"""Pipelined, idempotent enqueue of dataset lines as arq jobs.

One Lua script call enqueues a whole chunk of lines atomically: a line whose job
is already queued or running, or whose result exists, is skipped; others get an
arq-compatible JSON job payload and a queue entry.  Job ids are ``batch:line id``,
so running the same enqueue again adds nothing (a resume).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgpack
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
local lines = cmsgpack.unpack(ARGV[6])
local lines_prefix, lines_ttl, bucket_size = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local new_lines = 0
if redis.call('EXISTS', legacy_lines) == 1 then
  local members = {}
  for i = 1, #lines, 4 do
    members[#members + 1] = lines[i + 2]
    members[#members + 1] = lines[i + 1]
  end
  new_lines = redis.call('ZADD', legacy_lines, 'NX', unpack(members))
else
  local buckets, top = {}, -1
  for i = 1, #lines, 4 do
    local bucket = math.floor(lines[i + 2] / bucket_size)
    local members = buckets[bucket]
    if not members then
      members = {}
      buckets[bucket] = members
    end
    members[#members + 1] = lines[i + 2]
    members[#members + 1] = lines[i + 1]
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
    script = redis.register_script(ENQUEUE_LUA)
    store = DocumentWriter(redis, document_ttl_ms(result_ttl_ms, job_expiry_ms), store_min_bytes)
    counts = EnqueueCounts()
    script_keys = [keys.QUEUE, keys.batch(batch), keys.batch_lines(batch)]
    buckets = [keys.batch_line_bucket(batch, ""), result_ttl_ms, keys.LINES_PER_BUCKET]
    in_flight: deque[tuple[asyncio.Task[list[Any]], dict[str, bytes]]] = deque()

    async def settle(task: asyncio.Task[list[Any]], documents: dict[str, bytes]) -> None:
        added, queued, done = (await task)[-1]
        store.written(documents)
        counts.added += added
        counts.already_queued += queued
        counts.already_done += done
        if on_chunk:
            on_chunk(counts)

    async def send(pipe: Pipeline) -> list[Any]:
        async with pipe:
            return await pipe.execute()

    async def flush(enqueue_ms: int, entries: list[Any], documents: dict[str, bytes]) -> None:
        while len(in_flight) >= IN_FLIGHT:
            await settle(*in_flight.popleft())
        prefixes = [keys.ARQ_JOB_PREFIX, keys.ARQ_IN_PROGRESS_PREFIX, keys.RESULT_PREFIX]
        # One packed argument per chunk: redis-py's per-argument encoding would cost more
        # than the script itself.
        args = [job_expiry_ms, enqueue_ms, *prefixes, msgpack.packb(entries, use_bin_type=False), *buckets]
        pipe = redis.pipeline(transaction=False)
        await store.queue_writes(pipe, documents)  # before the jobs: no worker sees a job without them
        await script(keys=script_keys, args=args, client=pipe)  # queued, not yet sent
        # Redis runs this chunk while the next one is read and built.
        in_flight.append((asyncio.ensure_future(send(pipe)), documents))
        await asyncio.sleep(0)

    verbatim = VerbatimJobs(batch, default_model, run, corpus, no_cache)
    documents: dict[str, bytes] = {}
    enqueue_ms, entries, chunk_bytes = int(time.time() * 1000), [], 0
    for each in lines:
        if isinstance(each, VerbatimLine) and not store.active:
            job = verbatim.job(each)
            entries += [keys.job_id(batch, each.key), each.member, each.line_no, job]
        else:
            line = trusted_line(each.line_no, each.raw) if isinstance(each, VerbatimLine) else each
            payload = line_payload(batch, line, line.model or default_model, run, corpus)
            if no_cache:
                payload["no_cache"] = True
            chunk_bytes += store.stash(payload, documents)
            job = serialize(payload)  # arq's envelope is put back when it is read (jobs.serializer)
            entries += [keys.job_id(batch, line.id), keys.line_member(line.id), line.line_no, job]
        chunk_bytes += len(job)
        if len(entries) >= 4 * CHUNK_LINES or chunk_bytes >= CHUNK_BYTES:
            await flush(enqueue_ms, entries, documents)
            enqueue_ms, entries, chunk_bytes, documents = int(time.time() * 1000), [], 0, {}
    if entries:
        await flush(enqueue_ms, entries, documents)
    while in_flight:
        await settle(*in_flight.popleft())
    if result_ttl_ms:  # a batch enqueued by an older version keeps its one line set
        await redis.pexpire(keys.batch_lines(batch), result_ttl_ms)
    return counts
