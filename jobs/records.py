"""Result records: one per line, written once, counted once.

A job may run twice (arq is at-least-once).  The write is a Lua script that sets
the record and moves the batch counters in one atomic step: a line that already
succeeded is never overwritten or counted again; a failure may later be replaced
by a success (the counters move from failed to succeeded).  A record of another run
than the one the batch now holds (a job left over from before ``enqueue --replace``) is
never written: the batch's ``run`` must equal the line's.
"""

from __future__ import annotations

import time
from enum import IntEnum
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from jobs import keys
from jobs.cache import CacheWrite
from jobs.coalescer import Coalescer
from jobs.payload import LinePayload
from providers.types import RerankResponse

__all__ = [
    "FAILED",
    "SUCCEEDED",
    "WRITE_LUA",
    "RecordWriter",
    "Written",
    "failure_record",
    "success_record",
]

SUCCEEDED = "succeeded"
FAILED = "failed"

WRITE_LUA = """
local result_key, batch_key, failed_key, cache_key = KEYS[1], KEYS[2], KEYS[3], KEYS[8]
local status, record, ttl, job_id, line = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local run, cache_hits, cache_misses, now = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local finish, cache_op, cache_ttl = ARGV[10] == '1', ARGV[11], ARGV[12]
-- the scores are right whatever becomes of the record
if cache_op == 'hash' then
  redis.call('HSET', cache_key, unpack(ARGV, 13))
  redis.call('PEXPIRE', cache_key, cache_ttl)
elseif cache_op == 'string' then
  redis.call('SET', cache_key, ARGV[13], 'PX', cache_ttl)
elseif cache_op == 'touch' then
  redis.call('PEXPIRE', cache_key, cache_ttl)
end
local batch = redis.call(
  'HMGET', batch_key, 'run', 'started_at', 'updated_at', 'total', 'succeeded', 'failed')
if (batch[1] or '') ~= run then
  return -1
end
if finish then
  redis.call('DEL', KEYS[4], KEYS[5], KEYS[6])
  redis.call('ZREM', KEYS[7], job_id)
end
local previous = redis.call('HGET', result_key, 'status')
if previous == 'succeeded' then
  return 0
end
if status == 'failed' then
  redis.call('HSET', failed_key, job_id, line)
elseif previous == 'failed' then
  redis.call('HDEL', failed_key, job_id)
end
redis.call('HSET', result_key, 'status', status, 'record', record, 'run', run)
if ttl > 0 then
  redis.call('PEXPIRE', result_key, ttl)
end
local counts = {succeeded = tonumber(batch[5] or '0'), failed = tonumber(batch[6] or '0')}
if previous ~= status then
  if previous then
    redis.call('HINCRBY', batch_key, previous, -1)
    counts[previous] = counts[previous] - 1
  end
  redis.call('HINCRBY', batch_key, status, 1)
  counts[status] = counts[status] + 1
  if status == 'succeeded' and cache_hits > 0 then
    redis.call('HINCRBY', batch_key, 'cache_hits', cache_hits)
  end
  if status == 'succeeded' and cache_misses > 0 then
    redis.call('HINCRBY', batch_key, 'cache_misses', cache_misses)
  end
end
-- stamped (and the batch's expiry renewed) once a second, and by the line that ends the batch
local done = counts.succeeded + counts.failed >= tonumber(batch[4] or '0')
local stamp = {}
if not batch[2] then
  stamp = {'started_at', now}
end
if done or not batch[3] or math.floor(tonumber(batch[3])) ~= math.floor(tonumber(now)) then
  stamp[#stamp + 1] = 'updated_at'
  stamp[#stamp + 1] = now
end
if #stamp > 0 then
  redis.call('HSET', batch_key, unpack(stamp))
  if ttl > 0 then
    redis.call('PEXPIRE', batch_key, ttl)
  end
end
if previous == status then
  return 0
end
return 1
"""


def _base(line: LinePayload) -> dict[str, Any]:
    record: dict[str, Any] = {"id": line["id"], "line": line["line"], "model": line["model"]}
    if "run" in line:
        record["run"] = line["run"]
    if "metadata" in line:
        record["metadata"] = line["metadata"]
    return record


def success_record(line: LinePayload, response: RerankResponse, latency_s: float) -> dict[str, Any]:
    documents = line["documents"]
    ranked = []
    for result in response.results:
        item: dict[str, Any] = {"index": result.index, "relevance_score": result.relevance_score}
        document = documents[result.index]
        if isinstance(document, dict) and "id" in document:
            item["document_id"] = document["id"]
        if line.get("return_documents"):
            item["document"] = document
        ranked.append(item)
    record = _base(line)
    record.update(
        results=ranked,
        deployment=response.deployment,
        **({"fallback_from": response.fallback_from} if response.fallback_from else {}),
        usage=response.usage,
        response_id=response.response_id,
        request_id=response.request_id,
        attempts=response.attempts,
        requests=response.requests,
        latency_ms=round(latency_s * 1000, 1),
        finished_at=round(time.time(), 3),
    )
    return record


def failure_record(line: LinePayload, error: dict[str, Any], latency_s: float) -> dict[str, Any]:
    record = _base(line)
    record.update(error=error, latency_ms=round(latency_s * 1000, 1), finished_at=round(time.time(), 3))
    return record


class Written(IntEnum):
    """What a record write did."""

    STALE = -1
    """Nothing: the batch holds another run than the line's (the job was not finished)."""
    KEPT = 0
    """The line's outcome stays as it was (a success is final; a failure rewritten as one)."""
    CHANGED = 1
    """The outcome and the counters moved."""


class RecordWriter:
    """Writes records; the writes of lines that finish in the same event-loop turn share a round
    trip (:mod:`jobs.coalescer`: a re-sent round trip runs the script again, which counts
    nothing twice)."""

    def __init__(self, redis: Redis, ttl_ms: int, coalescer: Coalescer | None = None) -> None:
        self._redis = redis
        self._script = redis.register_script(WRITE_LUA)
        self._ttl_ms = ttl_ms
        self._writes = coalescer or Coalescer()

    async def write(
        self, batch: str, job_id: str, status: str, record: dict[str, Any], line: LinePayload
    ) -> bool:
        """True when this write changed the line's outcome (and the counters).  A failed
        line's payload goes to the batch's dead-letter store; a success takes it out.  Nothing
        is written when the batch now holds another run than the line's."""
        return await self.record(batch, job_id, status, record, line) == Written.CHANGED

    async def record(
        self,
        batch: str,
        job_id: str,
        status: str,
        record: dict[str, Any],
        line: LinePayload,
        *,
        finish: bool = False,
        cache: CacheWrite | None = None,
    ) -> Written:
        """:meth:`write`, and in the same atomic step, with ``finish``, what arq's ``finish_job``
        does for a finished job (its value, retry and in-progress keys deleted, its queue entry
        removed: not for a stale line) and the score cache's write (done even for a stale line)."""
        cache_args: list[Any] = [cache.op, cache.ttl_ms, *cache.args] if cache else ["", 0]
        written = await self._run(
            [
                keys.result(job_id),
                keys.batch(batch),
                keys.batch_failed(batch),
                keys.arq_job(job_id),
                keys.arq_retry(job_id),
                keys.arq_in_progress(job_id),
                keys.QUEUE,
                cache.key if cache else keys.QUEUE,  # unused without a cache write
            ],
            [
                status,
                orjson.dumps(record),
                self._ttl_ms,
                job_id,
                orjson.dumps(line) if status == FAILED else b"",  # only a dead letter keeps it
                line.get("run", ""),
                record.get("cache", {}).get("hits", 0),
                record.get("cache", {}).get("misses", 0),
                f"{time.time():.6f}",
                int(finish),
                *cache_args,
            ],
        )
        return Written(int(written))

    async def _run(self, keys: list[str], args: list[Any]) -> Any:
        def queue(pipe: Pipeline) -> None:
            pipe.evalsha(self._script.sha, len(keys), *keys, *args)

        try:
            [written] = await self._writes.execute(self._redis, queue)
        except NoScriptError:  # a restarted or flushed Redis: nothing ran
            await self._redis.script_load(WRITE_LUA)
            [written] = await self._writes.execute(self._redis, queue)
        return written
