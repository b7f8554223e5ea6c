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
from typing import Any

import orjson
from redis.asyncio import Redis

from jobs import keys
from jobs.payload import LinePayload
from providers.types import RerankResponse

__all__ = ["FAILED", "SUCCEEDED", "WRITE_LUA", "RecordWriter", "failure_record", "success_record"]

SUCCEEDED = "succeeded"
FAILED = "failed"

WRITE_LUA = """
local result_key, batch_key, failed_key = KEYS[1], KEYS[2], KEYS[3]
local status, record, ttl, job_id, line = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local run, cache_hits, cache_misses = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
if (redis.call('HGET', batch_key, 'run') or '') ~= run then
  return -1
end
local previous = redis.call('HGET', result_key, 'status')
if previous == 'succeeded' then
  return 0
end
if status == 'failed' then
  redis.call('HSET', failed_key, job_id, line)
else
  redis.call('HDEL', failed_key, job_id)
end
redis.call('HSET', result_key, 'status', status, 'record', record, 'run', run)
local now = redis.call('TIME')
local stamp = now[1] .. '.' .. string.format('%06d', now[2])
redis.call('HSETNX', batch_key, 'started_at', stamp)
redis.call('HSET', batch_key, 'updated_at', stamp)
if ttl > 0 then
  redis.call('PEXPIRE', result_key, ttl)
  redis.call('PEXPIRE', batch_key, ttl)
end
if previous == status then
  return 0
end
if previous then
  redis.call('HINCRBY', batch_key, previous, -1)
end
redis.call('HINCRBY', batch_key, status, 1)
if status == 'succeeded' and cache_hits + cache_misses > 0 then
  redis.call('HINCRBY', batch_key, 'cache_hits', cache_hits)
  redis.call('HINCRBY', batch_key, 'cache_misses', cache_misses)
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


class RecordWriter:
    def __init__(self, redis: Redis, ttl_ms: int) -> None:
        self._script = redis.register_script(WRITE_LUA)
        self._ttl_ms = ttl_ms

    async def write(
        self, batch: str, job_id: str, status: str, record: dict[str, Any], line: LinePayload
    ) -> bool:
        """True when this write changed the line's outcome (and the counters).  A failed
        line's payload goes to the batch's dead-letter store; a success takes it out.  Nothing
        is written when the batch now holds another run than the line's."""
        changed = await self._script(
            keys=[keys.result(job_id), keys.batch(batch), keys.batch_failed(batch)],
            args=[
                status,
                orjson.dumps(record),
                self._ttl_ms,
                job_id,
                orjson.dumps(line) if status == FAILED else b"",  # only a dead letter keeps it
                line.get("run", ""),
                record.get("cache", {}).get("hits", 0),
                record.get("cache", {}).get("misses", 0),
            ],
        )
        return int(changed) == 1
